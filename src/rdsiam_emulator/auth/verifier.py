"""The ordered checks RDS applies to a token, given a clock reading, an endpoint and a key lookup.

Checks run in a fixed order (docs/reason-codes.md): format, scope, time, binding, credentials,
signature, authorization. ``verify_token`` stops at the first failure, because that is the one RDS
would report; ``run_checks`` (used by ``token explain``) runs every check it has inputs for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from rdsiam_emulator.auth import fast_path, sigv4
from rdsiam_emulator.auth.credentials import CredentialLookup, ResolvedCredential
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import (
    MAX_TOKEN_LENGTH,
    ParsedToken,
    TokenFormatError,
    parse_sdk_layout,
    parse_token,
)
from rdsiam_emulator.reasons import REASONS, Reason, Rejection

MAX_EXPIRES = 900


@dataclass(frozen=True, slots=True)
class VerifierSettings:
    """Strictness knobs. Defaults follow RDS (the future skew is inferred: the SigV4 5 minutes).

    ``max_future_skew``: how far ``X-Amz-Date`` may lie ahead of ``now``; ``max_expires``: the
    largest accepted ``X-Amz-Expires``, in seconds (RDS: 900, tokens live 15 minutes, see
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.Connecting.html).
    """

    max_future_skew: timedelta = timedelta(minutes=5)
    max_expires: int = MAX_EXPIRES
    implicit_https_port: bool = True
    """A token without a port names port 443, as an https URL does (the Ruby SDK writes 443-port
    tokens that way). Real RDS ports are never 443, so there a port-less token always fails."""


DEFAULT_SETTINGS = VerifierSettings()


class Authorizer(Protocol):
    """Decides whether a verified principal may ``rds-db:connect`` as ``db_user`` (the IAM step)."""

    def authorize(
        self,
        *,
        credential: ResolvedCredential,
        token: ParsedToken,
        endpoint: Endpoint,
        db_user: str,
        now: datetime,
    ) -> Rejection | None:
        """None to allow; otherwise the ``Rejection`` (normally ``Reason.NOT_AUTHORIZED``) saying
        which policy did not allow ``rds-db:connect`` on the DB user's ARN. ``now`` is the aware
        UTC time of the attempt (for time conditions). An exception means the decision could not
        be made; the verifier reports it as ``INTERNAL_ERROR``. See
        https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.IAMPolicy.html
        """


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of one verification; ``reason`` is None exactly when ``ok``.

    ``detail``: one line saying what was found (never the whole token or a secret); ``hint``: what
    to change (None when accepted); ``token``: the parsed token, None when it could not be parsed
    (``malformed_token`` and the like); ``credential``: what the access key resolved to, None when
    the check never got that far or the key is unknown.
    """

    ok: bool
    reason: Reason | None = None
    detail: str = "token accepted"
    hint: str | None = None
    token: ParsedToken | None = field(default=None, repr=False)
    credential: ResolvedCredential | None = field(default=None, repr=False)

    @property
    def rds_error_code(self) -> str | None:
        """The error code RDS would log for ``reason`` (None when accepted or for engine-only
        reasons).
        """
        return None if self.reason is None else REASONS[self.reason].rds_error_code

    @property
    def principal_arn(self) -> str | None:
        """The ARN of the IAM user or assumed role the token's key belongs to, when the key was
        resolved.
        """
        return None if self.credential is None else self.credential.principal_arn

    @property
    def access_key_id(self) -> str | None:
        """The token's access key id, once it parsed."""
        return None if self.token is None else self.token.access_key_id


@dataclass(slots=True)
class CheckContext:
    """Inputs to the checks; ``None`` inputs make the checks that need them skip (explain mode)."""

    token: ParsedToken
    endpoint: Endpoint | None
    db_user: str | None
    credentials: CredentialLookup | None
    now: datetime | None
    settings: VerifierSettings = DEFAULT_SETTINGS
    authorizer: Authorizer | None = None
    credential: ResolvedCredential | None = None
    matched_signed_host: str | None = None


CheckFn = Callable[[CheckContext], Rejection | None]
PassFn = Callable[[CheckContext], str]


@dataclass(frozen=True, slots=True)
class Check:
    """One named check of the fixed order: its ``stage`` (``format``, ``scope``, ``time``,
    ``binding``, ``credentials``, ``signature``, ``authorization``), the ``CheckContext`` fields
    it ``needs`` (it is skipped when one is None), the function that returns a ``Rejection``
    or None, and ``passed``: the one-line verdict ``token explain`` shows when it passes.
    """
    name: str
    stage: str
    needs: tuple[str, ...]
    run: CheckFn
    passed: PassFn


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one check did in ``run_checks``: ``status`` is ``"pass"`` (``detail`` is the check's
    ``passed`` verdict), ``"fail"`` (then ``rejection`` is set) or ``"skip"`` (an input was
    missing; ``detail`` names it).
    """
    name: str
    stage: str
    status: str  # "pass" | "fail" | "skip"
    detail: str
    rejection: Rejection | None = None


# ---------------------------------------------------------------------------------------- checks


def _check_region(ctx: CheckContext) -> Rejection | None:
    assert ctx.endpoint is not None
    region = ctx.token.region
    if region == ctx.endpoint.region:
        return None
    return Rejection(
        Reason.REGION_MISMATCH,
        f"the token is scoped to region {region!r}; the instance is in {ctx.endpoint.region!r}",
        f"sign with region_name={ctx.endpoint.region!r} (the instance's region, whatever the host "
        "name says)",
    )


def _check_scope_date(ctx: CheckContext) -> Rejection | None:
    scope_date = ctx.token.credential.date
    if scope_date == ctx.token.amz_date[:8]:
        return None
    return Rejection(
        Reason.SCOPE_DATE_MISMATCH,
        f"the credential scope date {scope_date} is not the date of X-Amz-Date "
        f"{ctx.token.amz_date}",
        "the token was altered or hand-built: sign it with an SDK",
    )


def _check_expires_range(ctx: CheckContext) -> Rejection | None:
    expires = ctx.token.expires
    if 0 <= expires <= ctx.settings.max_expires:
        return None
    return Rejection(
        Reason.EXPIRES_OUT_OF_RANGE,
        f"X-Amz-Expires is {expires}; RDS accepts at most {ctx.settings.max_expires} seconds",
        "RDS tokens live 15 minutes at most: do not pass a longer ExpiresIn",
    )


def _check_not_future(ctx: CheckContext) -> Rejection | None:
    assert ctx.now is not None
    ahead = ctx.token.signed_at - ctx.now
    if ahead <= ctx.settings.max_future_skew:
        return None
    return Rejection(
        Reason.NOT_YET_VALID,
        f"the token is dated {_span(ahead)} in the future (X-Amz-Date {ctx.token.amz_date}); "
        f"at most {_span(ctx.settings.max_future_skew)} of clock skew is tolerated",
        "the signing machine's clock runs fast: synchronise it (NTP)",
    )


def _check_not_expired(ctx: CheckContext) -> Rejection | None:
    assert ctx.now is not None
    expires_at = ctx.token.signed_at + timedelta(seconds=ctx.token.expires)
    if ctx.now <= expires_at:
        return None
    return Rejection(
        Reason.EXPIRED,
        f"the token expired {_span(ctx.now - expires_at)} ago (signed {ctx.token.amz_date}, "
        f"valid {ctx.token.expires} s)",
        "generate a fresh token for every new connection (tokens live 15 minutes); pools must mint "
        "a token per connection, not once at start-up",
    )


def _check_host(ctx: CheckContext) -> Rejection | None:
    assert ctx.endpoint is not None
    token, endpoint = ctx.token, ctx.endpoint
    port = _token_port(token, ctx.settings)
    if port is None or (token.port is None and not endpoint.accepts(token.host, port)):
        return Rejection(
            Reason.HOST_MISMATCH,
            f"the token names host {token.host!r} without a port",
            f"pass Port={endpoint.port} when generating the token",
        )
    if endpoint.accepts(token.host, port):
        return None
    if endpoint.accepts(token.host, endpoint.port):
        return Rejection(
            Reason.HOST_MISMATCH,
            f"the token was signed for port {port}; the endpoint listens on {endpoint.port}",
            f"generate the token with Port={endpoint.port}",
        )
    if (endpoint.resource_id or "").startswith("prx-"):  # an RDS Proxy's endpoint
        return Rejection(
            Reason.HOST_MISMATCH,
            f"the token was signed for {token.host}:{port}, not for this proxy endpoint "
            f"({endpoint.address})",
            f"sign for the proxy endpoint {endpoint.host!r} and port {endpoint.port} exactly, "
            "not for the database's endpoint: a proxy accepts tokens for its own name only",
        )
    if endpoint.cluster_host is not None:
        # the reader endpoint's name is accepted on the members it routes to only
        others = ("the reader endpoint, or the instance's own endpoint"
                  if any(".cluster-ro-" in h for h in endpoint.hosts()) else
                  "the instance's own endpoint; a reader-endpoint token is accepted on the "
                  "readers only, not on the writer")
        return Rejection(
            Reason.HOST_MISMATCH,
            f"the token was signed for {token.host}:{port}, not for an endpoint of this Aurora "
            f"cluster member ({', '.join(endpoint.hosts())})",
            f"sign for the cluster endpoint {endpoint.cluster_host!r} (or {others}); Aurora "
            "does not accept custom endpoints "
            "(.cluster-custom-), CNAME/Route 53 names or IP addresses in tokens: when connecting "
            "through one, sign for the cluster endpoint (AWS wrappers: iam_host / iamHost)",
        )
    return Rejection(
        Reason.HOST_MISMATCH,
        f"the token was signed for {token.host}:{port}, not for this endpoint "
        f"({endpoint.address})",
        f"sign for the instance endpoint {endpoint.host!r} exactly; RDS does not accept custom DNS "
        "names (CNAME/Route 53) or IP addresses in tokens; in the emulator, a further name is "
        "declared in the instance's aliases (serve: aliases = [...] in [[instances]]; "
        "library: InstanceConfig(aliases=...))",
    )


def _token_port(token: ParsedToken, settings: VerifierSettings) -> int | None:
    if token.port is not None:
        return token.port
    return 443 if settings.implicit_https_port else None


def _check_db_user(ctx: CheckContext) -> Rejection | None:
    assert ctx.db_user is not None
    if ctx.token.db_user == ctx.db_user:
        return None
    hint = "generate the token with DBUsername equal to the user name you log in with"
    if ctx.token.db_user.lower() == ctx.db_user.lower():
        hint = "DB user names are case-sensitive in tokens: " + hint
    return Rejection(
        Reason.DB_USER_MISMATCH,
        f"the token is for DB user {ctx.token.db_user!r}; the login user is {ctx.db_user!r}",
        hint,
    )


def _check_credentials(ctx: CheckContext) -> Rejection | None:
    assert ctx.credentials is not None
    token = ctx.token
    akid = token.access_key_id
    cred = ctx.credentials.lookup(akid)
    if cred is None:
        return Rejection(
            Reason.UNKNOWN_ACCESS_KEY,
            f"access key {akid} is not known to IAM or STS",
            "the token was signed with credentials this IAM state never issued (real AWS keys, or "
            "keys from another moto session?)",
        )
    ctx.credential = cred
    if not cred.active:
        return Rejection(
            Reason.INACTIVE_ACCESS_KEY,
            f"access key {akid} is Inactive",
            "activate the key (iam update-access-key --status Active) or use another",
        )
    if cred.expires_at is not None and ctx.now is not None and ctx.now > cred.expires_at:
        return Rejection(
            Reason.CREDENTIALS_EXPIRED,
            f"the temporary credentials {akid} expired {_span(ctx.now - cred.expires_at)} ago; "
            "they must still be valid when connecting, not only when signing",
            "refresh the session (assume the role again) before generating the token",
        )
    given = token.security_token
    if cred.session_token is None:
        if given is not None:
            return Rejection(
                Reason.SESSION_TOKEN_MISMATCH,
                f"the token carries X-Amz-Security-Token but {akid} is a long-term key",
                "do not mix a session token from one set of credentials with another key",
            )
        return None
    if given is None:
        return Rejection(
            Reason.SESSION_TOKEN_MISMATCH,
            f"{akid} is a temporary key but the token has no X-Amz-Security-Token",
            "sign with the full temporary credentials (key, secret and session token)",
        )
    if not given:
        return Rejection(
            Reason.SESSION_TOKEN_MISMATCH, "X-Amz-Security-Token is empty",
            "sign with the full temporary credentials (key, secret and session token)",
        )
    if not sigv4.signatures_equal(cred.session_token, given):
        return Rejection(
            Reason.SESSION_TOKEN_MISMATCH,
            f"X-Amz-Security-Token is not the session token issued with {akid}",
            "the session token belongs to other credentials, or was truncated",
        )
    return None


def signed_host_forms(token: ParsedToken) -> tuple[str, ...]:
    """The Host values SDKs may have signed: as written, lower-cased, and without a default :443."""
    forms = [token.host_text]
    lowered = token.host_text.lower()
    if lowered != token.host_text:
        forms.append(lowered)
    if token.port == 443:
        for form in tuple(forms):
            bare = form[: -len(":443")]
            if bare not in forms:
                forms.append(bare)
    return tuple(forms)


def _check_signature(ctx: CheckContext) -> Rejection | None:
    cred = ctx.credential
    assert cred is not None
    token = ctx.token
    query = _canonical_query(token)
    for host in signed_host_forms(token):
        if _signature_for(token, cred, host, query) is not None:
            ctx.matched_signed_host = host
            return None
    return Rejection(
        Reason.SIGNATURE_MISMATCH,
        f"the signature does not match the one computed with the secret of {token.access_key_id}",
        "the token was altered after signing (URL-decoded, truncated, re-encoded by a driver or "
        "shell), or signed with another secret; use the token exactly as generated",
    )


def _check_authorization(ctx: CheckContext) -> Rejection | None:
    assert ctx.authorizer is not None and ctx.credential is not None
    assert ctx.endpoint is not None and ctx.now is not None and ctx.db_user is not None
    return ctx.authorizer.authorize(
        credential=ctx.credential, token=ctx.token, endpoint=ctx.endpoint,
        db_user=ctx.db_user, now=ctx.now,
    )


def _seconds(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if abs(seconds) < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60} s"


def _passed_not_future(ctx: CheckContext) -> str:
    if ctx.now is None:  # not reached: the check needs ``now``
        return "ok"
    ahead = ctx.token.signed_at - ctx.now
    if ahead > timedelta(0):
        return f"dated {_seconds(ahead)} ahead, within the allowed skew"
    return f"signed {_seconds(-ahead)} before the check time"


def _passed_not_expired(ctx: CheckContext) -> str:
    if ctx.now is None:
        return "ok"
    left = ctx.token.signed_at + timedelta(seconds=ctx.token.expires) - ctx.now
    return f"valid for another {_seconds(left)}"


def _passed_host(ctx: CheckContext) -> str:
    if ctx.endpoint is None:
        return "ok"
    return f"{ctx.token.host_text} names the endpoint {ctx.endpoint.address}"


def _passed_credentials(ctx: CheckContext) -> str:
    cred = ctx.credential
    if cred is None:
        return "ok"
    kind = "temporary" if cred.is_temporary else "long-term"
    who = f" of {cred.principal_arn}" if cred.principal_arn else ""
    text = f"{ctx.token.access_key_id}: active {kind} key{who}"
    return text + ", session token matches" if cred.is_temporary else text


def _passed_authorization(ctx: CheckContext) -> str:
    """An allow must not hide what the IAM authorizer could not evaluate."""
    skipped = getattr(ctx.authorizer, "skipped_parts", None)
    if skipped is None or ctx.credential is None or ctx.endpoint is None or ctx.now is None:
        return "allowed"
    parts: tuple[str, ...] = skipped(credential=ctx.credential, endpoint=ctx.endpoint,
                                     db_user=ctx.db_user or ctx.token.db_user, now=ctx.now)
    return "allowed; not evaluated: " + "; ".join(parts) if parts else "allowed"


CHECKS: tuple[Check, ...] = (
    Check("credential scope region", "scope", ("endpoint",), _check_region,
          lambda c: f"scope region {c.token.region} is the instance's region"),
    Check("credential scope date", "scope", (), _check_scope_date,
          lambda c: f"scope date {c.token.credential.date} is the date of X-Amz-Date"),
    Check("X-Amz-Expires within 0..900", "time", (), _check_expires_range,
          lambda c: f"X-Amz-Expires={c.token.expires}"),
    Check("not dated in the future", "time", ("now",), _check_not_future, _passed_not_future),
    Check("not expired", "time", ("now",), _check_not_expired, _passed_not_expired),
    Check("host binding", "binding", ("endpoint",), _check_host, _passed_host),
    Check("DBUser equals the login user", "binding", ("db_user",), _check_db_user,
          lambda c: f"DBUser {c.token.db_user!r}"),
    Check("access key", "credentials", ("credentials",), _check_credentials, _passed_credentials),
    Check("signature", "signature", ("credential",), _check_signature,
          lambda c: f"matches, with Host {c.matched_signed_host!r} signed"),
    Check("rds-db:connect authorization", "authorization",
          ("authorizer", "credential", "endpoint", "now", "db_user"), _check_authorization,
          _passed_authorization),
)


def _missing(ctx: CheckContext, needs: tuple[str, ...]) -> list[str]:
    return [name for name in needs if getattr(ctx, name) is None]


def run_checks(ctx: CheckContext, *, stop_at_first: bool) -> Iterator[CheckOutcome]:
    """Run the checks in RDS order; yields one outcome per check (skips when inputs are missing)."""
    for check in CHECKS:
        missing = _missing(ctx, check.needs)
        if missing:
            yield CheckOutcome(check.name, check.stage, "skip", "no " + ", ".join(missing))
            continue
        try:
            rejection = check.run(ctx)
        except Exception as exc:  # a bug in a lookup or authorizer must not crash the endpoint
            rejection = Rejection(Reason.INTERNAL_ERROR, f"{check.name} raised {exc!r}")
        if rejection is None:
            yield CheckOutcome(check.name, check.stage, "pass", check.passed(ctx))
            continue
        yield CheckOutcome(check.name, check.stage, "fail", rejection.detail, rejection)
        if stop_at_first:
            return


class _Resolved:
    """A lookup that answers from one already-resolved key, so the slow path never asks twice."""

    __slots__ = ("_akid", "_cred")

    def __init__(self, akid: str, cred: ResolvedCredential | None) -> None:
        self._akid = akid
        self._cred = cred

    def lookup(self, access_key_id: str) -> ResolvedCredential | None:
        return self._cred if access_key_id == self._akid else None


def _first_failure(ctx: CheckContext, parsed: ParsedToken) -> VerifyResult:
    """The ordered, explaining path: runs the checks one by one and reports the first failure."""
    for check in CHECKS:
        if check.run is _check_authorization and ctx.authorizer is None:
            break
        try:
            rejection = check.run(ctx)
        except Exception as exc:  # a bug in a lookup or authorizer must not crash the endpoint
            rejection = Rejection(Reason.INTERNAL_ERROR, f"{check.name} raised {exc!r}")
        if rejection is not None:
            return VerifyResult(
                False, rejection.reason, rejection.detail, rejection.hint, parsed, ctx.credential
            )
    return VerifyResult(True, None, "token accepted", None, parsed, ctx.credential)


def verify_token(
    token: str,
    *,
    endpoint: Endpoint,
    db_user: str,
    credentials: CredentialLookup,
    now: datetime,
    settings: VerifierSettings = DEFAULT_SETTINGS,
    authorizer: Authorizer | None = None,
) -> VerifyResult:
    """Verify an RDS IAM token as RDS would; never raises for bad input, only rejects.

    ``token`` is the password the client sent (``host:port/?Action=connect&DBUser=…&X-Amz-…``,
    no scheme); ``endpoint`` is where the client connected, ``db_user`` the login's user name
    (compared case-sensitively with ``DBUser``), ``now`` the aware time of the attempt (UTC or
    any zone). ``authorizer`` None skips the IAM policy step. Returns a ``VerifyResult`` whose
    ``reason`` is the first failing check in RDS order. Raises ``ValueError`` only for a naive
    ``now`` (a caller bug). What RDS checks:
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.html

    Two fast paths come first and only ever accept: one for tokens in an SDK's own layout
    (``tokens.CANONICAL_SDK_TOKEN``: one regex match, no per-parameter decoding, integer time
    arithmetic, the result's ``token`` parsed only when read), and one for any parsed token, which
    tests exactly the conditions of ``CHECKS`` with plain comparisons. Whenever something fails
    they hand over to the ordered checks, which find the first failure and explain it. So every
    path gives the same verdict (property tests hold them to it), and the explaining costs nothing
    for the tokens that pass.
    """
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    if token.__class__ is str and len(token) <= MAX_TOKEN_LENGTH:
        match = _SDK_TOKEN_MATCH(token)
        if match is not None:
            groups = match.groups()
            if _passes_before_lookup(groups, endpoint, db_user, now, settings):
                return _verify_sdk_layout(
                    groups, token, endpoint, db_user, credentials, now, settings, authorizer
                )
    return _verify_general(token, endpoint, db_user, credentials, now, settings, authorizer)


def _verify_general(
    token: str,
    endpoint: Endpoint,
    db_user: str,
    credentials: CredentialLookup,
    now: datetime,
    settings: VerifierSettings,
    authorizer: Authorizer | None,
) -> VerifyResult:
    """Any token: parse it, test the checks' conditions, explain the first failure if one fails."""
    try:
        parsed = parse_token(token)
    except TokenFormatError as exc:
        return VerifyResult(False, exc.reason, exc.detail, exc.hint)
    except Exception as exc:  # defensive: parsing must never take the endpoint down
        return VerifyResult(
            False, Reason.MALFORMED_TOKEN, f"unreadable token ({type(exc).__name__})"
        )

    scope = parsed.credential
    signed_at = parsed.signed_at
    if (
        scope.region != endpoint.region
        or scope.date != parsed.amz_date[:8]
        or not 0 <= parsed.expires <= settings.max_expires
        or signed_at - now > settings.max_future_skew
        or now > signed_at + timedelta(seconds=parsed.expires)
        or (port := _token_port(parsed, settings)) is None
        or not endpoint.accepts(parsed.host, port)
        or parsed.db_user != db_user
    ):
        ctx = CheckContext(parsed, endpoint, db_user, credentials, now, settings, authorizer)
        return _first_failure(ctx, parsed)

    akid = scope.access_key_id
    try:
        cred = credentials.lookup(akid)
    except Exception as exc:
        return VerifyResult(
            False, Reason.INTERNAL_ERROR, f"access key raised {exc!r}", None, parsed, None
        )
    given = parsed.security_token
    if (
        cred is None
        or not cred.active
        or (cred.expires_at is not None and now > cred.expires_at)
        or (cred.session_token is None) != (given is None)
        or (given is not None and not _session_token_matches(cred, given))
        or not _signature_matches_as_written(parsed, cred)
    ):
        ctx = CheckContext(
            parsed, endpoint, db_user, _Resolved(akid, cred), now, settings, authorizer
        )
        return _first_failure(ctx, parsed)

    if authorizer is not None:
        return _authorized(CheckContext(parsed, endpoint, db_user, credentials, now, settings,
                                        authorizer, cred, parsed.host_text), parsed, cred)
    return _accepted(parsed, cred)


def _authorized(ctx: CheckContext, parsed: ParsedToken, cred: ResolvedCredential) -> VerifyResult:
    """The authorization step of a token that passed every other check (both paths): a raising
    authorizer is an internal error, never a crash."""
    try:
        rejection = _check_authorization(ctx)
    except Exception as exc:
        rejection = Rejection(Reason.INTERNAL_ERROR, f"{CHECKS[-1].name} raised {exc!r}")
    if rejection is not None:
        return VerifyResult(
            False, rejection.reason, rejection.detail, rejection.hint, parsed, cred
        )
    return _accepted(parsed, cred)


_SET_OK, _SET_REASON, _SET_DETAIL, _SET_HINT, _SET_TOKEN, _SET_CREDENTIAL = (
    getattr(VerifyResult, name).__set__
    for name in ("ok", "reason", "detail", "hint", "token", "credential")
)


def _accepted(parsed: ParsedToken, cred: ResolvedCredential) -> VerifyResult:
    """``VerifyResult(True, None, "token accepted", None, parsed, cred)`` without the frozen
    dataclass's per-field ``object.__setattr__`` (the result of every accepted login)."""
    result = object.__new__(VerifyResult)
    _SET_OK(result, True)
    _SET_REASON(result, None)
    _SET_DETAIL(result, "token accepted")
    _SET_HINT(result, None)
    _SET_TOKEN(result, parsed)
    _SET_CREDENTIAL(result, cred)
    return result


_SDK_TOKEN_MATCH = fast_path.SDK_TOKEN_MATCH
_passes_before_lookup = fast_path.passes_before_lookup
_key_and_signature_pass = fast_path.key_and_signature_pass


def _verify_sdk_layout(
    groups: fast_path.SdkGroups,
    token: str,
    endpoint: Endpoint,
    db_user: str,
    credentials: CredentialLookup,
    now: datetime,
    settings: VerifierSettings,
    authorizer: Authorizer | None,
) -> VerifyResult:
    """A token in an SDK's layout that passed ``fast_path.passes_before_lookup``: look its key up
    once, accept it if ``fast_path.key_and_signature_pass``, else explain it with that key."""
    akid = groups[3]
    try:
        cred = credentials.lookup(akid)
    except Exception as exc:
        return _lazy_result(token, akid, None, False, Reason.INTERNAL_ERROR,
                            f"access key raised {exc!r}")
    if not _key_and_signature_pass(groups, cred, now):
        return _explained(token, endpoint, db_user, akid, cred, now, settings, authorizer)
    assert cred is not None
    if authorizer is not None:
        parsed = parse_token(token)
        ctx = CheckContext(parsed, endpoint, db_user, _Resolved(akid, cred), now, settings,
                           authorizer, cred, groups[0])
        return _authorized(ctx, parsed, cred)
    return _lazy_result(token, akid, cred, True, None, "token accepted", db_user)


def _explained(
    token: str, endpoint: Endpoint, db_user: str, akid: str, cred: ResolvedCredential | None,
    now: datetime, settings: VerifierSettings, authorizer: Authorizer | None,
) -> VerifyResult:
    """The general path for a token whose key is already looked up (IAM is never asked twice)."""
    return _verify_general(
        token, endpoint, db_user, _Resolved(akid, cred), now, settings, authorizer
    )


class _LazyTokenResult(VerifyResult):
    """A ``VerifyResult`` whose ``token`` is parsed from the raw text on first read.

    The SDK-layout fast path never needs the parsed token, and building it is a good part of a
    verification's cost; most callers only read ``ok``, the credential and the key id. Reading
    ``token`` parses the same text, so it gives the same ``ParsedToken`` the general path would.
    Still immutable: the frozen dataclass refuses assignments to ``token`` (the setter only serves
    ``__init__``, e.g. from ``dataclasses.replace``).
    """

    __slots__ = ("_akid", "_raw", "_user")
    # _user: the proved DBUser when accepted (the token is then built without decoding again)

    @property
    def token(self) -> ParsedToken | None:
        parsed: ParsedToken | None = _GET_TOKEN(self)
        if parsed is None:
            raw: str | None = _GET_RAW(self)
            if raw is not None:
                cred = self.credential
                user: str | None = _GET_USER(self)
                parsed = (
                    parse_token(raw) if user is None or cred is None
                    else parse_sdk_layout(raw, user, cred.session_token)
                )
                _SET_TOKEN(self, parsed)
                _SET_RAW(self, None)
        return parsed

    @token.setter
    def token(self, value: ParsedToken | None) -> None:
        _SET_TOKEN(self, value)
        _SET_RAW(self, None)
        _SET_USER(self, None)
        if value is not None:
            _SET_AKID(self, value.access_key_id)

    @property
    def access_key_id(self) -> str | None:
        akid: str | None = _GET_AKID(self)
        return akid


_GET_TOKEN = getattr(VerifyResult, "token").__get__  # noqa: B009 (the slot, not the property)
_GET_RAW, _GET_AKID, _GET_USER = (
    _LazyTokenResult.__dict__[name].__get__ for name in ("_raw", "_akid", "_user")
)
_SET_RAW, _SET_AKID, _SET_USER = (
    _LazyTokenResult.__dict__[name].__set__ for name in ("_raw", "_akid", "_user")
)


def _lazy_result(
    raw: str, akid: str, cred: ResolvedCredential | None, ok: bool, reason: Reason | None,
    detail: str, user: str | None = None,
) -> VerifyResult:
    """Built without ``__init__`` (like ``_accepted``): the slots are set directly."""
    result = object.__new__(_LazyTokenResult)
    _SET_OK(result, ok)
    _SET_REASON(result, reason)
    _SET_DETAIL(result, detail)
    _SET_HINT(result, None)
    _SET_TOKEN(result, None)
    _SET_CREDENTIAL(result, cred)
    _SET_RAW(result, raw)
    _SET_AKID(result, akid)
    _SET_USER(result, user)
    return result


def _session_token_matches(cred: ResolvedCredential, given: str) -> bool:
    expected = cred.session_token
    return bool(given) and expected is not None and sigv4.signatures_equal(expected, given)


def _signature_matches_as_written(token: ParsedToken, cred: ResolvedCredential) -> bool:
    """The common case: the SDK signed the host exactly as the token's text shows it."""
    scope = token.credential
    key = sigv4.prepared_signing_key(
        cred.secret_access_key, scope.date, scope.region, scope.service
    )
    expected = sigv4.presigned_signature(
        key, token.amz_date, scope.scope, token.host_text, token.canonical_encoded_params
    )
    return sigv4.signatures_equal(expected, token.signature)


def _canonical_query(token: ParsedToken) -> str:
    return sigv4.canonical_query_encoded(token.canonical_encoded_params)


def _signature_for(
    token: ParsedToken, cred: ResolvedCredential, host: str, query: str
) -> str | None:
    """The matching signature computed for ``host``, or None when it does not match."""
    scope = token.credential
    key = sigv4.prepared_signing_key(
        cred.secret_access_key, scope.date, scope.region, scope.service
    )
    expected = key.sign(
        sigv4.string_to_sign(token.amz_date, scope.scope, sigv4.canonical_request(host, query))
    )
    return expected if sigv4.signatures_equal(expected, token.signature) else None


def _span(delta: timedelta) -> str:
    """``delta`` for a person, sign kept: a negative skew setting must read as one."""
    sign = "-" if delta.total_seconds() < 0 else ""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 120:
        return f"{sign}{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 120:
        return f"{sign}{minutes} min {seconds} s" if seconds else f"{sign}{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours} h {minutes} min"
