"""SigV4 for presigned RDS IAM tokens: canonical request, string to sign, signing key, compare.

Pure functions over already-decoded values. The signing key is cached per
(secret, date, region, service) because deriving it costs four HMACs and is the same for every
token a principal signs on one day; signatures themselves are never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from functools import lru_cache

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
"""RDS tokens sign the empty payload, not UNSIGNED-PAYLOAD."""

_UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]*+\Z", re.ASCII)
_NEEDS_ESCAPE = re.compile(r"[^A-Za-z0-9\-._~]+", re.ASCII)
_BYTE_ESCAPES = tuple(f"%{b:02X}" for b in range(256))
_CANONICAL_REQUEST_HEAD = "GET\n/\n"
_CANONICAL_REQUEST_TAIL = "\n\nhost\n" + EMPTY_SHA256


def is_unreserved(text: str) -> bool:
    """True when ``text`` has only ``A-Za-z0-9-._~``: SigV4 leaves it exactly as it is."""
    return _UNRESERVED.match(text) is not None


def _escape(match: re.Match[str]) -> str:
    return "".join([_BYTE_ESCAPES[b] for b in match.group().encode("utf-8", "strict")])


def uri_encode(text: str) -> str:
    """RFC 3986 encoding as SigV4 wants it: only ``A-Za-z0-9-._~`` unescaped, upper-case hex.

    Equivalent to ``urllib.parse.quote(text, safe="-_.~")`` but escapes whole runs at once instead
    of calling a function per byte. Lone surrogates raise ``UnicodeEncodeError``, as with quote.
    """
    if _UNRESERVED.match(text):
        return text
    return _NEEDS_ESCAPE.sub(_escape, text)


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Every parameter but the signature, encoded, sorted by key then value, joined with ``&``."""
    return canonical_query_encoded(
        (uri_encode(k), uri_encode(v)) for k, v in params if k != "X-Amz-Signature"
    )


def canonical_query_encoded(encoded: Iterable[tuple[str, str]]) -> str:
    """Like ``canonical_query`` for pairs that are already canonically encoded (the fast path).

    The signature is skipped by its encoded name, which is the same as its decoded name.
    """
    return "&".join([f"{k}={v}" for k, v in sorted(encoded) if k != "X-Amz-Signature"])


def canonical_request(signed_host: str, query: str) -> str:
    """SigV4's canonical request of a presigned RDS token: ``GET``, path ``/``, the canonical
    ``query``, the single signed header ``host:<signed_host>``, and the SHA-256 of the empty
    payload.

    See https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
    """
    return f"{_CANONICAL_REQUEST_HEAD}{query}\nhost:{signed_host}{_CANONICAL_REQUEST_TAIL}"


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """``AWS4-HMAC-SHA256\\n<amz_date>\\n<scope>\\n<hex SHA-256 of canonical>``.

    ``amz_date`` is ``yyyymmddTHHMMSSZ`` (UTC); ``scope`` is
    ``<yyyymmdd>/<region>/<service>/aws4_request``.
    """
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"


@lru_cache(maxsize=4096)
def signing_key(secret: str, scope_date: str, region: str, service: str) -> bytes:
    """The 32-byte SigV4 signing key: HMAC-SHA256 of ``"AWS4"+secret`` over ``scope_date``
    (``yyyymmdd``), then ``region``, ``service`` and ``aws4_request``.

    Cached (4096 entries) per argument tuple; the secret stays in that cache for the process's life.
    """
    k = hmac.digest(("AWS4" + secret).encode("utf-8"), scope_date.encode("utf-8"), "sha256")
    k = hmac.digest(k, region.encode("utf-8"), "sha256")
    k = hmac.digest(k, service.encode("utf-8"), "sha256")
    return hmac.digest(k, b"aws4_request", "sha256")


def sign(key: bytes, to_sign: str) -> str:
    """The 64-character lower-case hex HMAC-SHA256 of ``to_sign`` under ``key``."""
    return hmac.digest(key, to_sign.encode("utf-8"), "sha256").hex()


class PreparedKey:
    """A signing key with HMAC's inner and outer SHA-256 states computed once.

    HMAC(k, m) = H((k ^ opad) || H((k ^ ipad) || m)); the two padded-key blocks are the same for
    every token signed with one key, so signing copies two ready hash states instead of setting
    up an HMAC (expensive per call with OpenSSL 3). Same result as ``sign(key, ...)``.
    """

    __slots__ = ("_inner", "_outer", "key")

    def __init__(self, key: bytes) -> None:
        block = key if len(key) <= 64 else hashlib.sha256(key).digest()
        block = block.ljust(64, b"\0")
        self.key = key
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def sign(self, to_sign: str) -> str:
        """Same as ``sign(key, to_sign)``: 64 lower-case hex characters."""
        inner = self._inner.copy()
        inner.update(to_sign.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def credential_scope(scope_date: str, region: str, service: str) -> str:
    """``<yyyymmdd>/<region>/<service>/aws4_request``."""
    return f"{scope_date}/{region}/{service}/aws4_request"


def signature_of_query(
    key: PreparedKey, amz_date: str, scope: str, signed_host: str, query: str
) -> str:
    """The signature of a presigned request whose canonical ``query`` is already built:
    ``canonical_request`` → ``string_to_sign`` → ``key.sign`` (64 lower-case hex characters)."""
    return key.sign(string_to_sign(amz_date, scope, canonical_request(signed_host, query)))


def presigned_signature(
    key: PreparedKey, amz_date: str, scope: str, signed_host: str,
    encoded: Iterable[tuple[str, str]],
) -> str:
    """The signature for canonically encoded query pairs (the verifier's general path):
    ``canonical_query_encoded`` → ``signature_of_query``."""
    return signature_of_query(key, amz_date, scope, signed_host, canonical_query_encoded(encoded))


@lru_cache(maxsize=4096)
def prepared_signing_key(secret: str, scope_date: str, region: str, service: str) -> PreparedKey:
    """``signing_key`` ready for fast signing; cached per secret/date/region/service likewise."""
    return PreparedKey(signing_key(secret, scope_date, region, service))


def signatures_equal(expected: str, given: str) -> bool:
    """Constant-time comparison, so timing reveals nothing about how much of a signature matched."""
    if expected.isascii() and given.isascii():  # the usual case: compare without encoding
        return hmac.compare_digest(expected, given)
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def presign(
    *,
    host_text: str,
    params: Iterable[tuple[str, str]],
    secret: str,
    amz_date: str,
    scope_date: str,
    region: str,
    service: str = "rds-db",
    signed_host: str | None = None,
) -> str:
    """Compute the signature a client would send (used by tests and ``token explain``)."""
    scope = f"{scope_date}/{region}/{service}/aws4_request"
    canonical = canonical_request(signed_host if signed_host is not None else host_text,
                                  canonical_query(params))
    return sign(signing_key(secret, scope_date, region, service),
                string_to_sign(amz_date, scope, canonical))
