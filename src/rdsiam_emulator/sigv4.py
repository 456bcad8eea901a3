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
from urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
"""RDS tokens sign the empty payload, not UNSIGNED-PAYLOAD."""

_UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]*\Z", re.ASCII)


def uri_encode(text: str) -> str:
    """RFC 3986 encoding as SigV4 wants it: only ``A-Za-z0-9-._~`` unescaped, upper-case hex."""
    if _UNRESERVED.match(text):
        return text
    return quote(text, safe="-_.~", encoding="utf-8", errors="strict")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Every parameter but the signature, encoded, sorted by key then value, joined with ``&``."""
    encoded = sorted(
        (uri_encode(k), uri_encode(v)) for k, v in params if k != "X-Amz-Signature"
    )
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_request(signed_host: str, query: str) -> str:
    return f"GET\n/\n{query}\nhost:{signed_host}\n\nhost\n{EMPTY_SHA256}"


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"


@lru_cache(maxsize=4096)
def signing_key(secret: str, scope_date: str, region: str, service: str) -> bytes:
    k = hmac.digest(("AWS4" + secret).encode("utf-8"), scope_date.encode("utf-8"), "sha256")
    k = hmac.digest(k, region.encode("utf-8"), "sha256")
    k = hmac.digest(k, service.encode("utf-8"), "sha256")
    return hmac.digest(k, b"aws4_request", "sha256")


def sign(key: bytes, to_sign: str) -> str:
    return hmac.digest(key, to_sign.encode("utf-8"), "sha256").hex()


def signatures_equal(expected: str, given: str) -> bool:
    """Constant-time comparison, so timing reveals nothing about how much of a signature matched."""
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))


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
