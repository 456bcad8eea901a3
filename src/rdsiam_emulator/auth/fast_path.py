"""The verifier's fast path for tokens in an SDK's own layout (``tokens.CANONICAL_SDK_TOKEN``).

One regex match, no per-parameter decoding, integer time arithmetic. Both tests only ever
*accept*: each one implies that the matching check of ``verifier.CHECKS`` passes, so a False
sends the token to the ordered checks, which find and explain the first failure. The key lookup
and the result are the verifier's (``verifier.verify_token``); the canonical strings are
``sigv4``'s. Groups of the match: host:port, the canonical query up to the key id's scope,
DBUser, key id, day, region, HHMMSS, X-Amz-Expires, the three SignedHeaders positions, the
session token, the signature.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from hmac import compare_digest
from typing import TYPE_CHECKING

from rdsiam_emulator.auth import sigv4
from rdsiam_emulator.auth.credentials import ResolvedCredential
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import CANONICAL_SDK_TOKEN

if TYPE_CHECKING:
    from rdsiam_emulator.auth.verifier import VerifierSettings

SDK_TOKEN_MATCH = CANONICAL_SDK_TOKEN.match
"""``CANONICAL_SDK_TOKEN.match``: a match (groups as in the module docstring) or None."""

SdkGroups = tuple[str, ...]  # match.groups(); the optional SignedHeaders/session ones may be None

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_SECURITY_TOKEN_ITEM = "&X-Amz-Security-Token="
_SIGNED_HEADERS_ITEM = "&X-Amz-SignedHeaders=host"
_prepared_key = sigv4.prepared_signing_key
_signature_of_query = sigv4.signature_of_query
_scope = sigv4.credential_scope


@lru_cache(maxsize=256)
def _day_start(day: str) -> int | None:
    """Epoch seconds of ``yyyymmdd`` 00:00 UTC, None when it is not a date (cached per day)."""
    try:
        ordinal = date(int(day[:4]), int(day[4:6]), int(day[6:])).toordinal()
    except ValueError:
        return None
    return (ordinal - _EPOCH_ORDINAL) * 86400


@lru_cache(maxsize=64)
def _microseconds(delta: timedelta) -> int:
    """A setting's timedelta as whole microseconds (cached: settings are few and immutable)."""
    return delta // _MICROSECOND


@lru_cache(maxsize=1024)
def _encoded_session_token(session_token: str) -> str | None:
    """A credential's session token as SigV4 encodes it (cached per credential, like its key)."""
    return encoded_or_none(session_token)


def encoded_or_none(text: str) -> str | None:
    """``sigv4.uri_encode(text)``, or None when ``text`` cannot be encoded (lone surrogates)."""
    try:
        return sigv4.uri_encode(text)
    except UnicodeError:
        return None


def passes_before_lookup(
    groups: SdkGroups, endpoint: Endpoint, db_user: str, now: datetime,
    settings: VerifierSettings,
) -> bool:
    """True only when scope, time and binding all pass (``now`` aware; integer microseconds give
    the same comparisons as the checks' datetime ones, exactly)."""
    (host_port, _head, user, _akid, day, region, hms, expires_text, headers1, _session,
     headers2, _signature, headers3) = groups
    if (
        (headers1 is None) + (headers2 is None) + (headers3 is None) != 2
        or region != endpoint.region
        or not endpoint.accepts_host_port(host_port.lower())
    ):
        return False
    if user != db_user:  # DBUser with escapes: canonical exactly when it encodes db_user
        if "%" not in user or user != encoded_or_none(db_user):
            return False
    elif "%" in user:  # a '%' in db_user itself would have been written %25
        return False
    expires = int(expires_text)
    day_start = _day_start(day)
    if day_start is None or not 0 <= expires <= settings.max_expires:
        return False
    hours, rest = divmod(int(hms), 10000)
    minutes, seconds = divmod(rest, 100)
    if hours > 23 or minutes > 59 or seconds > 59:
        return False
    signed_us = (day_start + hours * 3600 + minutes * 60 + seconds) * 1_000_000
    now_us = (now - _EPOCH) // _MICROSECOND
    return not (
        signed_us - now_us > _microseconds(settings.max_future_skew)
        or now_us > signed_us + expires * 1_000_000
    )


def key_and_signature_pass(
    groups: SdkGroups, cred: ResolvedCredential | None, now: datetime
) -> bool:
    """True only when the looked-up key is usable at ``now``, the session token is the key's and
    the signature matches (constant-time compares)."""
    if cred is None or not cred.active or (cred.expires_at is not None and now > cred.expires_at):
        return False
    (host_port, head, _user, _akid, day, region, hms, _expires, _h1, session, _h2, signature,
     _h3) = groups
    expected_session = cred.session_token
    if expected_session is None:
        if session is not None:
            return False
        query = head + _SIGNED_HEADERS_ITEM
    else:
        encoded_session = _encoded_session_token(expected_session)
        if (
            session is None
            or encoded_session is None
            or not session.isascii()  # (compare_digest takes ASCII text only)
            or not compare_digest(encoded_session, session)
        ):
            return False
        query = head + _SECURITY_TOKEN_ITEM + session + _SIGNED_HEADERS_ITEM
    key = _prepared_key(cred.secret_access_key, day, region, "rds-db")
    expected = _signature_of_query(
        key, f"{day}T{hms}Z", _scope(day, region, "rds-db"), host_port, query
    )
    return compare_digest(expected, signature)
