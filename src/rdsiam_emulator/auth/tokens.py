"""Parsing an RDS IAM token into a typed value, and redacting it for logs.

A token is a SigV4 presigned URL without its scheme: ``host:port/?Action=connect&DBUser=...``.
Parsing is strict about structure (every required parameter exactly once, valid percent-escapes) and
neutral about surface form (parameter order, ``/`` before ``?``), because SDKs differ on the latter.
No I/O, no clock, no IAM here.

Speed matters (an endpoint verifies every new connection), so the parser keeps each parameter's
canonical SigV4 encoding beside its decoded value: when the token's own text is already canonical
(the normal case: SDKs encode exactly as SigV4 does) it is reused as is instead of being decoded and
re-encoded for the signature check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from functools import lru_cache

from rdsiam_emulator.auth.sigv4 import is_unreserved, uri_encode
from rdsiam_emulator.reasons import Reason

MAX_TOKEN_LENGTH = 64 * 1024
"""Far above any real token (1-2 KB, more with a long session token); bounds parsing work."""

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "rds-db"
REQUIRED_PARAMS = (
    "Action",
    "DBUser",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
SECURITY_TOKEN = "X-Amz-Security-Token"
SECRET_PARAMS = frozenset(("X-Amz-Signature", SECURITY_TOKEN))
"""Parameters never shown whole in logs or explanations."""

_HEX = frozenset("0123456789abcdefABCDEF")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z\Z", re.ASCII)
_SCOPE_DATE = re.compile(r"\d{8}\Z", re.ASCII)
_DIGITS = re.compile(r"\d{1,10}\Z", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}\Z", re.ASCII)
_PORT = re.compile(r"\d{1,5}\Z", re.ASCII)
_UNRESERVED_OR_PERCENT = re.compile(r"[A-Za-z0-9\-._~%]*+\Z", re.ASCII)
_ASCII_ESCAPES: dict[str, str] = {
    f"{b:02X}": chr(b) for b in range(0x80) if not is_unreserved(chr(b))
}
"""The canonical escapes of ASCII characters SigV4 must escape (``2F`` -> ``/``), and only those."""
_ASCII_ESCAPE_SET = frozenset("%" + code for code in _ASCII_ESCAPES)
_ESCAPE = re.compile(r"%[0-9A-F]{2}", re.ASCII)
_UNRESERVED_MATCH = re.compile(r"[A-Za-z0-9\-._~]*+\Z", re.ASCII).match
_REQUIRED_SET = frozenset(REQUIRED_PARAMS)
_NOT_IN_HOST = re.compile(r"[ \t\r\n@]")
_DECODED_KEYS = ("DBUser", "X-Amz-Credential", "X-Amz-Security-Token")
_SHARED_VALUE_KEYS = frozenset(("X-Amz-Credential", SECURITY_TOKEN))
_KNOWN_KEYS = frozenset((*REQUIRED_PARAMS, SECURITY_TOKEN))
"""Parameter names as SDKs write them: already canonical, nothing to decode."""

CANONICAL_SDK_TOKEN = re.compile(
    r"(?P<host_port>[A-Za-z0-9.-]++:[1-9][0-9]{0,4})/?\?"
    r"(?P<head>Action=connect&DBUser=(?P<db_user>[A-Za-z0-9._~%-]++)"
    r"&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    r"&X-Amz-Credential=(?P<akid>[A-Za-z0-9]++)%2F(?P<day>[0-9]{8})%2F(?P<region>[a-z0-9-]++)"
    r"%2Frds-db%2Faws4_request"
    r"&X-Amz-Date=(?P=day)T(?P<time>[0-9]{6})Z"
    r"&X-Amz-Expires=(?P<expires>[0-9]{1,10}))"
    r"(?P<headers1>&X-Amz-SignedHeaders=host)?"
    r"(?:&X-Amz-Security-Token=(?P<session>[^&]++))?"
    r"(?P<headers2>&X-Amz-SignedHeaders=host)?"
    r"&X-Amz-Signature=(?P<signature>[0-9a-f]{64})"
    r"(?P<headers3>&X-Amz-SignedHeaders=host)?\Z",
    re.ASCII,
)
"""The token layouts SDKs write (botocore/CLI order; sorted with the signature last (Go, Ruby) or
in its sorted place (JavaScript)), matched in one C-level step for the verifier's fast path.

A match is a token ``parse_token`` reads without error, whose canonical query string is
``head`` + the session token item (if any) + ``&X-Amz-SignedHeaders=host``: ``head`` is already in
sorted order and canonical (plain names, an alphanumeric key id, digits), and the two values that
may carry escapes (DBUser, the session token) are proved canonical by the verifier comparing them
with the SigV4 encoding of the values they must equal (so the session token, the longest part,
is matched as ``[^&]++``, sre's fastest loop, and only compared). Exactly one of
``headers1..3`` must be set (otherwise SignedHeaders is missing or repeated). Anything else takes
the general parser."""


class TokenFormatError(ValueError):
    """The token cannot be read. Attributes: ``reason`` (a ``Reason``, e.g. ``malformed_token``),
    ``detail`` (one line, the message; never the whole token) and ``hint`` (what to change, or
    None)."""

    def __init__(self, reason: Reason, detail: str, hint: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.hint = hint


@dataclass(frozen=True, slots=True)
class CredentialScope:
    """The decoded ``X-Amz-Credential`` value: ``<access key
    id>/<yyyymmdd>/<region>/<service>/aws4_request``.

    ``date`` is the scope date as written (``yyyymmdd``, UTC); RDS tokens use service ``rds-db``.
    Values are as the token wrote them; the verifier checks them, parsing does not.
    """
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    _scope: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # computed once: parsed scopes are shared per principal and day (see parse_token)
        object.__setattr__(
            self, "_scope", f"{self.date}/{self.region}/{self.service}/{self.terminator}"
        )

    @property
    def scope(self) -> str:
        """``<date>/<region>/<service>/<terminator>``: the scope line of the string to sign."""
        return self._scope


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token's parts, decoded once. ``params`` keeps the decoded pairs in their original order."""

    raw: str
    host: str
    """The host exactly as written in the token (case kept; IPv6 without brackets)."""
    port: int | None
    host_text: str
    """``host[:port]`` exactly as written before the path: what SDKs sign as the Host header."""
    path: str
    params: tuple[tuple[str, str], ...]
    action: str
    db_user: str
    algorithm: str
    credential: CredentialScope
    amz_date: str
    signed_at: datetime
    expires: int
    signed_headers: str
    signature: str
    security_token: str | None
    encoded_params: tuple[tuple[str, str], ...] = ()
    """``params`` in SigV4's canonical encoding, same order (the token's own text where it is
    already canonical). Empty when the token was built by hand without it."""

    @property
    def access_key_id(self) -> str:
        """The access key id from the credential scope (``AKIA…`` or, temporary, ``ASIA…``)."""
        return self.credential.access_key_id

    @property
    def region(self) -> str:
        """The region named in the credential scope (RDS requires the instance's region)."""
        return self.credential.region

    @property
    def is_temporary(self) -> bool:
        """True when the token carries ``X-Amz-Security-Token`` (STS credentials)."""
        return self.security_token is not None

    @property
    def canonical_encoded_params(self) -> tuple[tuple[str, str], ...]:
        """The canonically encoded pairs, computing them when the token was built by hand."""
        if self.encoded_params:
            return self.encoded_params
        return tuple((uri_encode(k), uri_encode(v)) for k, v in self.params)


_PARSED_FIELDS = tuple(f.name for f in fields(ParsedToken))
(
    _set_raw, _set_host, _set_port, _set_host_text, _set_path, _set_params, _set_action,
    _set_db_user, _set_algorithm, _set_credential, _set_amz_date, _set_signed_at, _set_expires,
    _set_signed_headers, _set_signature, _set_security_token, _set_encoded_params,
) = (getattr(ParsedToken, name).__set__ for name in _PARSED_FIELDS)


def _new_parsed_token(
    raw: str, host: str, port: int | None, host_text: str, path: str,
    params: tuple[tuple[str, str], ...], action: str, db_user: str, algorithm: str,
    credential: CredentialScope, amz_date: str, signed_at: datetime, expires: int,
    signed_headers: str, signature: str, security_token: str | None,
    encoded_params: tuple[tuple[str, str], ...],
) -> ParsedToken:
    """``ParsedToken(...)`` without the frozen dataclass's ``object.__setattr__`` per field: the
    parser's single hottest allocation. Same object, same immutability afterwards."""
    token = object.__new__(ParsedToken)
    _set_raw(token, raw)
    _set_host(token, host)
    _set_port(token, port)
    _set_host_text(token, host_text)
    _set_path(token, path)
    _set_params(token, params)
    _set_action(token, action)
    _set_db_user(token, db_user)
    _set_algorithm(token, algorithm)
    _set_credential(token, credential)
    _set_amz_date(token, amz_date)
    _set_signed_at(token, signed_at)
    _set_expires(token, expires)
    _set_signed_headers(token, signed_headers)
    _set_signature(token, signature)
    _set_security_token(token, security_token)
    _set_encoded_params(token, encoded_params)
    return token


def percent_decode(text: str) -> str:
    """RFC 3986 decoding: ``%XX`` escapes as UTF-8; ``+`` stays a literal plus (unlike forms)."""
    if "%" not in text:
        return text
    parts = text.split("%")
    out = bytearray(parts[0].encode("utf-8"))
    for part in parts[1:]:
        if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
            raise TokenFormatError(
                Reason.MALFORMED_TOKEN, f"invalid percent-escape near '%{part[:2]}'"
            )
        out.append(int(part[:2], 16))
        out += part[2:].encode("utf-8")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, "percent-escapes do not decode as UTF-8"
        ) from exc


def decode_component(raw: str) -> tuple[str, str]:
    """Decode one query key or value: ``(decoded, canonical SigV4 encoding)``.

    The fast path recognises text that is already canonical (unreserved characters and upper-case
    escapes of ASCII characters SigV4 escapes), decodes it with one ``str.replace`` per distinct
    escape, and returns the text itself as its encoding. Anything else (lower-case hex, escaped
    unreserved characters, non-ASCII) goes the general way: strict decoding, then re-encoding.
    """
    if is_unreserved(raw):
        return raw, raw
    if _UNRESERVED_OR_PERCENT.match(raw):
        escapes = _ESCAPE.findall(raw)
        if len(escapes) == raw.count("%"):  # every '%' starts an upper-case hex escape
            distinct = set(escapes)
            if distinct <= _ASCII_ESCAPE_SET:
                # Replace escape by escape (C speed); '%25' goes last so that the '%' it yields
                # is never read as the start of another escape.
                decoded = raw
                for escape in distinct:
                    if escape != "%25":
                        decoded = decoded.replace(escape, _ASCII_ESCAPES[escape[1:]])
                if "%25" in distinct:
                    decoded = decoded.replace("%25", "%")
                return decoded, raw
    decoded = percent_decode(raw)
    return decoded, uri_encode(decoded)


_decode_shared = lru_cache(maxsize=1024)(decode_component)
"""``decode_component`` for values every token of one principal repeats (the credential and the
session token): cached like signing keys, per credential, never per token."""


def split_host_port(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]``; IPv6 literals must be bracketed, as in URLs."""
    host, sep, port_text = text.rpartition(":")
    if sep and port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 and (
        "[" not in text and 0 < int(port_text) < 65536
    ):
        return host, int(port_text)  # the usual name:port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise TokenFormatError(Reason.MALFORMED_TOKEN, "unterminated '[' in the token's host")
        host, rest = text[1:end], text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise TokenFormatError(Reason.MALFORMED_TOKEN, "junk after the IPv6 host literal")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            return text, None
    if not _PORT.match(port_text) or not 0 < int(port_text) < 65536:
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, f"the token's port {port_text!r} is not a port"
        )
    return host, int(port_text)


def _parse_query(query: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The general way: item by item, in order, so errors name the first bad parameter."""
    values: dict[str, str] = {}
    encoded: list[tuple[str, str]] = []
    plain = _UNRESERVED_MATCH
    for item in query.split("&"):
        raw_key, _, raw_value = item.partition("=")
        if raw_key in _KNOWN_KEYS:
            key = enc_key = raw_key
        elif not item:
            raise TokenFormatError(Reason.MALFORMED_TOKEN, "empty parameter ('&&') in the token")
        else:
            key, enc_key = decode_component(raw_key)
        if plain(raw_value):  # also the empty value of a bare 'key' without '='
            value = enc_value = raw_value
        elif raw_key in _SHARED_VALUE_KEYS:
            value, enc_value = _decode_shared(raw_value)
        else:
            value, enc_value = decode_component(raw_value)
        if key in values:
            raise TokenFormatError(Reason.MALFORMED_TOKEN, f"parameter {key} appears twice")
        values[key] = value
        encoded.append((enc_key, enc_value))
    return values, encoded


def _parse_query_fast(query: str) -> tuple[dict[str, str], list[tuple[str, str]]] | None:
    """The SDK-made case in a few C-level steps, or None to take the general way.

    Applies only when every item is ``key=value`` with a known key, once, and the fixed-value
    parameters are already in their only valid plain form; then just DBUser, the credential and
    the session token can need decoding. Anything unusual (and every error) goes the general way,
    so both ways always give the same result.
    """
    items = query.split("&")
    raw = {key: value for key, eq, value in [item.partition("=") for item in items] if eq}
    if len(raw) != len(items) or not raw.keys() <= _KNOWN_KEYS or not raw.keys() >= _REQUIRED_SET:
        return None  # an item without '=' (or empty), a duplicate, an unknown or missing name
    if (
        raw["Action"] != "connect"
        or raw["X-Amz-Algorithm"] != ALGORITHM
        or raw["X-Amz-SignedHeaders"] != "host"
        or not _SIGNATURE.match(raw["X-Amz-Signature"])
        or not _AMZ_DATE.match(raw["X-Amz-Date"])
        or not _DIGITS.match(raw["X-Amz-Expires"])
    ):
        return None
    values = raw.copy()
    reencoded: dict[str, str] | None = None
    try:
        for key in _DECODED_KEYS:
            text = raw.get(key)
            if text is None or _UNRESERVED_MATCH(text):
                continue
            if key == "DBUser":
                value, enc_value = decode_component(text)
            else:
                value, enc_value = _decode_shared(text)
            values[key] = value
            if enc_value != text:
                reencoded = reencoded or {}
                reencoded[key] = enc_value
    except TokenFormatError:
        return None
    if reencoded is None:
        return values, list(raw.items())
    return values, [(k, reencoded.get(k, v)) for k, v in raw.items()]


def _check_fixed(
    values: dict[str, str],
) -> tuple[str, str, str, str, str, datetime, str]:
    """The general way's checks of the fixed parameters, in the order errors are reported."""
    if not values.keys() >= _REQUIRED_SET:
        missing = [name for name in REQUIRED_PARAMS if name not in values]
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, "missing required parameter(s): " + ", ".join(missing)
        )
    algorithm = values["X-Amz-Algorithm"]
    if algorithm != ALGORITHM:
        raise TokenFormatError(
            Reason.UNSUPPORTED_ALGORITHM, f"X-Amz-Algorithm is {algorithm[:40]!r}, not {ALGORITHM}"
        )
    action = values["Action"]
    if action != "connect":
        raise TokenFormatError(
            Reason.WRONG_ACTION,
            f"Action is {action[:40]!r}, not 'connect'",
            "sign with generate_db_auth_token (rds-db, Action=connect), not another presigner",
        )
    signed_headers = values["X-Amz-SignedHeaders"]
    if signed_headers != "host":
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, f"X-Amz-SignedHeaders is {signed_headers[:40]!r}, not 'host'"
        )
    signature = values["X-Amz-Signature"]
    if not _SIGNATURE.match(signature):
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, "X-Amz-Signature is not 64 lower-case hex digits"
        )
    amz_date = values["X-Amz-Date"]
    signed_at = _parse_amz_date(amz_date)
    expires_text = values["X-Amz-Expires"]
    if not _DIGITS.match(expires_text):
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, f"X-Amz-Expires {expires_text[:20]!r} is not a whole number"
        )
    return algorithm, action, signed_headers, signature, amz_date, signed_at, expires_text


def parse_token(token: str) -> ParsedToken:
    """Parse ``token`` or raise ``TokenFormatError`` with the reason RDS would log first.

    ``token`` is a presigned URL without its scheme (``host:port/?Action=connect&…``, at most
    ``MAX_TOKEN_LENGTH`` characters). Parsing checks the layout only (one of each parameter,
    known algorithm, readable date and expiry); scope, time, binding and signature are the
    verifier's checks.
    """
    if not isinstance(token, str):
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, f"the password is {type(token).__name__}, not text"
        )
    if not token:
        raise TokenFormatError(Reason.MALFORMED_TOKEN, "the password is empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, f"the password is {len(token)} characters, too long for a token"
        )
    if not token.isascii():
        try:  # a str from argv/environ may carry lone surrogates (surrogateescape)
            token.encode("utf-8")
        except UnicodeEncodeError:
            raise TokenFormatError(
                Reason.MALFORMED_TOKEN, "the password is not valid Unicode text (lone surrogates)"
            ) from None
    if token[:8].lower().startswith(("https://", "http://")):
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN,
            "the token starts with a URL scheme",
            "pass the token exactly as generate_db_auth_token returns it (no https:// prefix)",
        )
    authority_path, sep, query = token.partition("?")
    if not sep or not query:
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN,
            "the password has no '?query': it is not an IAM token",
            "is this a plain password sent to an IAM-enabled user? IAM users must log in with a "
            "token from generate_db_auth_token",
        )
    slash = authority_path.find("/")
    if slash < 0:
        host_text, path = authority_path, ""
    else:
        host_text, path = authority_path[:slash], authority_path[slash:]
    if path and path != "/":
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, f"unexpected path {path[:40]!r} in the token"
        )
    if not host_text:
        raise TokenFormatError(Reason.MALFORMED_TOKEN, "the token has no host")
    host, port = split_host_port(host_text)
    if not host or _NOT_IN_HOST.search(host):
        raise TokenFormatError(Reason.MALFORMED_TOKEN, "the token's host is not a host name")

    fast = _parse_query_fast(query)
    if fast is not None:
        # already checked: every required parameter once, the fixed values, the shapes of the
        # signature, X-Amz-Date and X-Amz-Expires
        values, encoded = fast
        algorithm, action, signed_headers = ALGORITHM, "connect", "host"
        signature = values["X-Amz-Signature"]
        amz_date = values["X-Amz-Date"]
        try:
            signed_at = datetime.fromisoformat(amz_date)
        except ValueError:
            signed_at = _parse_amz_date(amz_date)  # raises the general way's error
        expires_text = values["X-Amz-Expires"]
    else:
        values, encoded = _parse_query(query)
        algorithm, action, signed_headers, signature, amz_date, signed_at, expires_text = (
            _check_fixed(values)
        )
    credential = _parse_credential_cached(values["X-Amz-Credential"], amz_date[:8])
    db_user = values["DBUser"]
    if not db_user:
        raise TokenFormatError(Reason.MALFORMED_TOKEN, "DBUser is empty")

    return _new_parsed_token(
        token,
        host,
        port,
        host_text,
        path,
        tuple(values.items()),
        action,
        db_user,
        algorithm,
        credential,
        amz_date,
        signed_at,
        int(expires_text),
        signed_headers,
        signature,
        values.get(SECURITY_TOKEN),
        tuple(encoded),
    )


def parse_sdk_layout(token: str, db_user: str, security_token: str | None) -> ParsedToken:
    """``parse_token(token)`` for a token the verifier's SDK-layout path accepted, given the
    decoded values it proved (DBUser and the session token) instead of decoding them again.

    Only valid for such tokens: ``CANONICAL_SDK_TOKEN`` matched, DBUser is the canonical encoding
    of ``db_user`` and the session token that of ``security_token``. The key id is alphanumeric,
    so the credential's only escapes are its ``%2F`` separators.
    """
    head, _, query = token.partition("?")
    path = "/" if head[-1:] == "/" else ""
    host_text = head[:-1] if path else head
    host, _, port_text = host_text.rpartition(":")
    encoded = tuple([(key, value) for key, _, value in [item.partition("=") for item in
                                                         query.split("&")]])
    values = dict(encoded)
    values["DBUser"] = db_user
    credential_text = values["X-Amz-Credential"].replace("%2F", "/")
    values["X-Amz-Credential"] = credential_text
    if security_token is not None:
        values[SECURITY_TOKEN] = security_token
    amz_date = values["X-Amz-Date"]
    return _new_parsed_token(
        token, host, int(port_text), host_text, path, tuple(values.items()), "connect", db_user,
        ALGORITHM, _parse_credential_cached(credential_text, amz_date[:8]), amz_date,
        datetime.fromisoformat(amz_date), int(values["X-Amz-Expires"]), "host",
        values["X-Amz-Signature"], security_token, encoded,
    )


def _parse_amz_date(text: str) -> datetime:
    """``YYYYMMDDTHHMMSSZ``: the regex fixes the shape, ``fromisoformat`` (C, ~10x faster than
    strptime) checks the ranges and yields an aware UTC datetime."""
    if not _AMZ_DATE.match(text):
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, f"X-Amz-Date {text[:24]!r} is not of the form YYYYMMDDTHHMMSSZ"
        )
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, f"X-Amz-Date {text!r} is not a valid time"
        ) from exc


@lru_cache(maxsize=1024)
def _parse_credential_cached(text: str, amz_day: str) -> CredentialScope:
    """Per principal and day, like the signing key; failures raise and are never cached."""
    return _parse_credential(text, amz_day)


def _parse_credential(text: str, amz_date: str = "") -> CredentialScope:
    parts = text.split("/")
    if len(parts) != 5 or not all(parts):
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN,
            "X-Amz-Credential is not AKID/yyyymmdd/region/service/aws4_request",
        )
    akid, scope_date, region, service, terminator = parts
    if scope_date != amz_date[:8]:  # the same as the validated X-Amz-Date needs no second look
        if not _SCOPE_DATE.match(scope_date):
            raise TokenFormatError(
                Reason.MALFORMED_TOKEN,
                f"the credential scope date {scope_date[:12]!r} is not yyyymmdd",
            )
        try:
            date(int(scope_date[:4]), int(scope_date[4:6]), int(scope_date[6:]))
        except ValueError as exc:
            raise TokenFormatError(
                Reason.MALFORMED_TOKEN, f"the credential scope date {scope_date!r} is not a date"
            ) from exc
    if terminator != "aws4_request":
        raise TokenFormatError(
            Reason.MALFORMED_TOKEN, f"the credential scope ends in {terminator[:20]!r}"
        )
    if service != SERVICE:
        raise TokenFormatError(
            Reason.WRONG_SERVICE,
            f"the credential scope names service {service[:20]!r}, not {SERVICE!r}",
            "generate the token with the RDS client's generate_db_auth_token (service rds-db)",
        )
    return CredentialScope(akid, scope_date, region, service, terminator)


_HEX_RUN = re.compile(r"[0-9A-Fa-f]{32,}")
_SECRET_RUNS = re.compile(r"[0-9A-Fa-f]{32,}|[A-Za-z0-9%+=_-]{100,}")
"""What a token's secrets look like inside other text: a signature (64 hex digits) or the
percent-encoded session token / query (long runs without ``/``, ``:`` or spaces)."""


def redact_secrets(text: str) -> str:
    """``text`` (an event detail, a backend's error message) with every run that may be part of
    a token's signature (32+ hex digits) or session token (100+ token characters) replaced by
    ``<redacted N chars>``: a server may quote bytes of a token it misread (e.g. as a database
    name), and events and logs must never carry them."""
    return _SECRET_RUNS.sub(_redacted_run, text)


def _redacted_run(match: re.Match[str]) -> str:
    run = match.group()
    digits, letters = any(c.isdigit() for c in run), any(c.isalpha() for c in run)
    if len(run) < 100:  # a hex run: a signature has digits and letters ('aaaa…' is a name)
        return f"<redacted {len(run)} chars>" if digits and letters else run
    if digits and any(c.isupper() for c in run) and any(c.islower() for c in run):
        return f"<redacted {len(run)} chars>"
    # a long run of one kind (e.g. 'aaaa…') is not base64 material, but may hold a signature
    return _HEX_RUN.sub(_redacted_hex, run)


def _redacted_hex(match: re.Match[str]) -> str:
    run = match.group()
    if any(c.isdigit() for c in run) and any(c.isalpha() for c in run):
        return f"<redacted {len(run)} chars>"
    return run


def redact_value(key: str, value: str, *, keep: int = 8) -> str:
    """One parameter value made safe to show: signatures shortened, session tokens hidden."""
    if key == "X-Amz-Signature":
        return value[:keep] + "…" if len(value) > keep else value
    if key == SECURITY_TOKEN:
        return f"<redacted {len(value)} chars>"
    return value


def _decoded_length(value: str) -> int:
    try:
        return len(percent_decode(value))
    except TokenFormatError:
        return len(value)


def redact_token(token: str, *, keep: int = 8) -> str:
    """A token safe for logs: the signature shortened, the session token replaced by its length.

    Parameter names are matched after decoding and case-insensitively, so ``x-amz-security-token``
    or ``X-Amz-Security%2DToken`` are hidden too; text that is not a token is not shown at all.
    """
    head, sep, query = token.partition("?")
    if not sep:
        return f"<{len(token)} characters, not a token>"
    canonical_names = {name.lower(): name for name in SECRET_PARAMS}
    out = []
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        try:
            name = percent_decode(key)
        except TokenFormatError:
            name = key
        secret_name = canonical_names.get(name.lower())
        if secret_name == SECURITY_TOKEN:
            value = f"<redacted {_decoded_length(value)} chars>"
        elif secret_name is not None:
            value = redact_value(secret_name, value, keep=keep)
        out.append(f"{key}{eq}{value}")
    return head + sep + "&".join(out)
