"""``token explain``: decode a token and run every check it has inputs for, saying why each passed.

Where ``verify_token`` stops at the first failure (that is what RDS reports), an explanation runs
all checks (``verifier.run_checks``) so a user sees every problem at once, plus what RDS would
have signed: the canonical request and string to sign. Secrets never appear: the signature is
shortened and the session token replaced by its length, also inside the canonical request.

Inputs that are missing make the checks that need them *skip* (with the option that would supply
them). The IAM step runs when an ``Authorizer`` is passed in; the CLI's hooks (commands/token.py)
let the IAM package plug in a moto-backed one without this module knowing about moto.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rdsiam_emulator.auth import sigv4
from rdsiam_emulator.auth.credentials import CredentialLookup
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import (
    SECURITY_TOKEN,
    ParsedToken,
    TokenFormatError,
    parse_token,
    redact_token,
    redact_value,
)
from rdsiam_emulator.auth.verifier import (
    CHECKS,
    DEFAULT_SETTINGS,
    Authorizer,
    CheckContext,
    VerifierSettings,
    run_checks,
    signed_host_forms,
)
from rdsiam_emulator.engines import ENGINES
from rdsiam_emulator.reasons import REASONS, Reason, Rejection

FORMAT_CHECK = "token format"
SIGNATURE_CHECK = "signature"

PASS, FAIL, UNVERIFIED = "PASS", "FAIL", "UNVERIFIED"
"""The three verdicts of an explanation (``Explanation.verdict``)."""

INPUT_HINTS: dict[str, str] = {
    "endpoint": "--endpoint HOST:PORT",
    "region": "--region",
    "db_user": "--db-user",
    "credentials": "--secret-access-key (and --access-key-id / --session-token)",
    "credential": "a known, valid access key (the access key check did not pass)",
    "authorizer": "an IAM policy source (--iam-endpoint-url or AWS_ENDPOINT_URL: a moto server)",
    "now": "--at",
}
"""What to pass to get a skipped check to run, by the input it lacked."""

@dataclass(frozen=True, slots=True)
class ExplainInputs:
    """What an input provider (a ``token explain`` hook, a caller) adds to an explanation: a
    credential lookup and/or an ``Authorizer`` (None = not supplied).
    """

    credentials: CredentialLookup | None = None
    authorizer: Authorizer | None = None
    unused_secret = False


CLIENT_MESSAGES: dict[str, str] = {e.name: e.iam_refusal_text for e in ENGINES.values()}
"""What a client sees for every token rejection, by engine name: RDS never tells it why
(``Engine.iam_refusal_text``)."""


@dataclass(frozen=True, slots=True)
class CheckLine:
    """One check's outcome, ready to print or serialise."""

    name: str
    stage: str
    status: str  # "pass" | "fail" | "skip"
    detail: str
    reason: Reason | None = None
    hint: str | None = None
    not_evaluated: tuple[str, ...] = ()
    """Parts of the IAM decision a passing authorization check could not evaluate."""

    @property
    def rds_error_code(self) -> str | None:
        """The RDS error code of ``reason`` (docs/reason-codes.md); None for a pass or a skip."""
        return None if self.reason is None else REASONS[self.reason].rds_error_code

    def to_dict(self) -> dict[str, Any]:
        """This line as a JSON-ready dict, with ``reason`` as its value and ``rds_error_code``."""
        return {
            "name": self.name, "stage": self.stage, "status": self.status, "detail": self.detail,
            "reason": None if self.reason is None else self.reason.value,
            "rds_error_code": self.rds_error_code, "hint": self.hint,
            "not_evaluated": list(self.not_evaluated),
        }


@dataclass(slots=True)
class Explanation:
    """Everything ``token explain`` shows; secrets already redacted."""

    token: str
    """The redacted token."""
    now: datetime
    checks: list[CheckLine]
    fields: list[tuple[str, str]] = field(default_factory=list)
    """Decoded parameters in token order, secrets redacted."""
    host: str | None = None
    port: int | None = None
    db_user: str | None = None
    access_key_id: str | None = None
    temporary: bool | None = None
    scope: str | None = None
    signed_at: datetime | None = None
    expires_at: datetime | None = None
    signed_host: str | None = None
    """The Host value the canonical request shows: the one that matched, else as written."""
    signed_host_matched: bool = False
    signed_host_forms: tuple[str, ...] = ()
    canonical_request: str | None = None
    string_to_sign: str | None = None
    login_user: str | None = None
    """The user name of the login (``db_user`` argument), when given."""
    notes: list[str] = field(default_factory=list)
    """Remarks about the input that are not checks (e.g. where the region came from)."""

    @property
    def ok(self) -> bool:
        """True when no check that ran failed (skips do not count either way).

        Not a verdict: a token whose signature was never checked can be ``ok``; see ``verdict``.
        """
        return all(line.status != "fail" for line in self.checks)

    @property
    def signature_verified(self) -> bool:
        """True when the signature check ran and passed (the token is genuine for that secret)."""
        return any(line.name == SIGNATURE_CHECK and line.status == "pass" for line in self.checks)

    @property
    def verdict(self) -> str:
        """``FAIL`` (a check failed), ``UNVERIFIED`` (none failed, but the signature was not
        checked: a forged token looks the same) or ``PASS`` (none failed, signature verified)."""
        if not self.ok:
            return FAIL
        return PASS if self.signature_verified else UNVERIFIED

    @property
    def not_evaluated(self) -> list[str]:
        """Parts of the IAM decision that were skipped although the check passed."""
        return [part for line in self.checks for part in line.not_evaluated]

    @property
    def skipped(self) -> list[CheckLine]:
        """The checks that did not run (an input was missing), in check order."""
        return [line for line in self.checks if line.status == "skip"]

    @property
    def failures(self) -> list[CheckLine]:
        """The checks that failed, in check order (RDS reports only the first)."""
        return [line for line in self.checks if line.status == "fail"]

    @property
    def first_failure(self) -> CheckLine | None:
        """What RDS would report: the first failing check in the documented order."""
        failures = self.failures
        return failures[0] if failures else None

    def to_dict(self) -> dict[str, Any]:
        """The explanation as a JSON-ready dict (``token explain --json``): times as UTC strings
        ``YYYY-MM-DDTHH:MM:SSZ``; ``reason``/``rds_error_code`` are the first failure's.
        """
        first = self.first_failure
        return {
            "verdict": self.verdict,
            "ok": self.ok,
            "signature_verified": self.signature_verified,
            "token": self.token,
            "now": _iso(self.now),
            "host": self.host,
            "port": self.port,
            "db_user": self.db_user,
            "login_user": self.login_user,
            "access_key_id": self.access_key_id,
            "temporary_credentials": self.temporary,
            "credential_scope": self.scope,
            "signed_at": None if self.signed_at is None else _iso(self.signed_at),
            "expires_at": None if self.expires_at is None else _iso(self.expires_at),
            "parameters": [[k, v] for k, v in self.fields],
            "signed_host": self.signed_host,
            "signed_host_matched": self.signed_host_matched,
            "signed_host_forms": list(self.signed_host_forms),
            "canonical_request": self.canonical_request,
            "string_to_sign": self.string_to_sign,
            "checks": [line.to_dict() for line in self.checks],
            "notes": list(self.notes),
            "not_evaluated": self.not_evaluated,
            "reason": None if first is None or first.reason is None else first.reason.value,
            "rds_error_code": None if first is None else first.rds_error_code,
        }


def explain_token(
    token: str,
    *,
    now: datetime,
    endpoint: Endpoint | None = None,
    region: str | None = None,
    db_user: str | None = None,
    credentials: CredentialLookup | None = None,
    authorizer: Authorizer | None = None,
    settings: VerifierSettings = DEFAULT_SETTINGS,
    region_unknown: bool = False,
) -> Explanation:
    """Explain ``token`` as of ``now``; every argument but the token and time is optional.

    ``region`` alone (no ``endpoint``) still checks the credential scope region; with an
    ``endpoint`` its region is used. ``credentials`` resolves the token's access key (for the
    credential and signature checks) and ``authorizer`` decides ``rds-db:connect``: pass e.g. the
    IAM package's moto-backed authorizer together with its credential lookup.
    ``region_unknown`` says the endpoint's region is a placeholder: the region check is skipped.
    """
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    redacted = redact_token(token) if isinstance(token, str) else "<not text>"
    try:
        parsed = parse_token(token)
    except TokenFormatError as exc:
        lines = [CheckLine(FORMAT_CHECK, "format", "fail", exc.detail, exc.reason, exc.hint)]
        lines += [CheckLine(c.name, c.stage, "skip", "the token could not be read")
                  for c in CHECKS]
        return Explanation(redacted, now, lines, login_user=db_user)

    forced_skips: dict[str, str] = {}
    if region_unknown:
        why = "" if endpoint is None else (
            f": the endpoint host name {endpoint.host!r} is not an RDS one, so it names no region")
        forced_skips["credential scope region"] = "needs " + INPUT_HINTS["region"] + why
    effective = endpoint
    if endpoint is None and region is not None:
        # a stand-in endpoint carries the region; host binding and IAM need the real one
        effective = Endpoint(parsed.host, parsed.port or 443, region)
        forced_skips["host binding"] = "no " + INPUT_HINTS["endpoint"]
        authorizer = None
    elif endpoint is not None and region is not None and region != endpoint.region:
        effective = Endpoint(endpoint.host, endpoint.port, region, endpoint.aliases,
                             endpoint.account_id, endpoint.resource_id, endpoint.instance_id)

    ctx = CheckContext(parsed, effective, db_user, credentials, now, settings, authorizer)
    lines = [CheckLine(FORMAT_CHECK, "format", "pass", _format_summary(parsed))]
    for outcome in run_checks(ctx, stop_at_first=False):
        if outcome.name in forced_skips:
            lines.append(CheckLine(outcome.name, outcome.stage, "skip", forced_skips[outcome.name]))
        elif outcome.status == "skip":
            lines.append(CheckLine(outcome.name, outcome.stage, "skip",
                                   _skip_detail(outcome.name, outcome.detail, ctx)))
        elif outcome.rejection is not None:
            rej: Rejection = outcome.rejection
            lines.append(CheckLine(outcome.name, outcome.stage, "fail", rej.detail, rej.reason,
                                   rej.hint))
        else:
            lines.append(CheckLine(outcome.name, outcome.stage, "pass", outcome.detail,
                                   not_evaluated=_not_evaluated(outcome.name, ctx)))

    forms = signed_host_forms(parsed)
    matched = ctx.matched_signed_host
    shown_host = matched if matched is not None else forms[0]
    query = sigv4.canonical_query_encoded(parsed.canonical_encoded_params)
    canonical = sigv4.canonical_request(shown_host, query)
    to_sign = sigv4.string_to_sign(parsed.amz_date, parsed.credential.scope, canonical)
    return Explanation(
        token=redacted,
        now=now,
        checks=lines,
        fields=[(k, redact_value(k, v)) for k, v in parsed.params],
        host=parsed.host,
        port=parsed.port,
        db_user=parsed.db_user,
        access_key_id=parsed.access_key_id,
        temporary=parsed.is_temporary,
        scope=parsed.credential.scope,
        signed_at=parsed.signed_at,
        expires_at=parsed.signed_at + timedelta(seconds=parsed.expires),
        signed_host=shown_host,
        signed_host_matched=matched is not None,
        signed_host_forms=forms,
        canonical_request=_redact_canonical(canonical, parsed),
        string_to_sign=to_sign,
        login_user=db_user,
    )


_RDS_SUFFIXES = (".rds.amazonaws.com", ".rds.amazonaws.com.cn")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")


def region_from_host(host: str) -> str | None:
    """The region an RDS-style host name carries (``<id>.<hash>.<region>.rds.amazonaws.com``,
    also cluster, reader and proxy names), else None. A trailing dot and case are ignored."""
    name = host.lower().rstrip(".")
    for suffix in _RDS_SUFFIXES:
        if name.endswith(suffix):
            label = name[: -len(suffix)].rpartition(".")[2]
            return label if _REGION.fullmatch(label) else None
    return None


def _format_summary(parsed: ParsedToken) -> str:
    names = [k for k, _ in parsed.params]
    extra = [n for n in names if n not in _KNOWN_NAMES]
    text = f"{len(names)} parameters, each once; Action=connect, AWS4-HMAC-SHA256, service rds-db"
    if extra:
        text += "; extra (signed) parameters: " + ", ".join(extra)
    return text


_KNOWN_NAMES = frozenset((
    "Action", "DBUser", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Signature", SECURITY_TOKEN,
))


def _skip_detail(name: str, detail: str, ctx: CheckContext) -> str:
    """``run_checks`` says ``no endpoint, db_user``; name the options that would supply them."""
    if not detail.startswith("no "):
        return detail
    if name == "credential scope region":
        return f"needs {INPUT_HINTS['region']} (or {INPUT_HINTS['endpoint']})"
    hints = []
    for needed in (n.strip() for n in detail[3:].split(",")):
        key = "credentials" if needed == "credential" and ctx.credentials is None else needed
        hint = INPUT_HINTS.get(key, key)
        if hint not in hints:
            hints.append(hint)
    return "needs " + "; ".join(hints)


def _not_evaluated(name: str, ctx: CheckContext) -> tuple[str, ...]:
    """What the IAM authorizer could not evaluate: an allow must not hide it."""
    skipped = getattr(ctx.authorizer, "skipped_parts", None)
    if (name != "rds-db:connect authorization" or skipped is None or ctx.credential is None
            or ctx.endpoint is None or ctx.now is None):
        return ()
    parts: tuple[str, ...] = skipped(credential=ctx.credential, endpoint=ctx.endpoint,
                                     db_user=ctx.db_user or ctx.token.db_user, now=ctx.now)
    return parts


def _redact_canonical(canonical: str, parsed: ParsedToken) -> str:
    """Hide the session token inside the canonical query (its hash in the string to sign stays)."""
    if parsed.security_token is None:
        return canonical
    for key, value in parsed.canonical_encoded_params:
        if key == SECURITY_TOKEN and value:
            canonical = canonical.replace(
                f"{key}={value}", f"{key}={redact_value(SECURITY_TOKEN, parsed.security_token)}"
            )
    return canonical


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_text(explanation: Explanation, *, engine: str | None = None) -> str:
    """The human form ``token explain`` prints."""
    e = explanation
    out: list[str] = [f"token        {e.token}"]
    if e.host is not None:
        out.append(f"host         {e.host}" + (f"  port {e.port}" if e.port is not None
                                               else "  (no port)"))
        out.append(f"DBUser       {e.db_user}")
        kind = "temporary, with session token" if e.temporary else "long-term"
        out.append(f"access key   {e.access_key_id} ({kind})")
        out.append(f"scope        {e.scope}")
        assert e.signed_at is not None and e.expires_at is not None
        out.append(f"signed at    {_iso(e.signed_at)}, valid until {_iso(e.expires_at)}")
    out.append(f"checked at   {_iso(e.now)}")
    if e.fields:
        out.append("")
        out.append("parameters (decoded, in token order):")
        width = max(len(k) for k, _ in e.fields)
        out.extend(f"  {k.ljust(width)}  {v}" for k, v in e.fields)
    if e.canonical_request is not None:
        out.append("")
        how = "the form that matched" if e.signed_host_matched else "as written; not verified"
        out.append(f"canonical request (Host {e.signed_host!r}, {how}):")
        out.extend(_indent(e.canonical_request.split("\n")))
        if len(e.signed_host_forms) > 1:
            out.append("  Host forms tried: " + ", ".join(repr(f) for f in e.signed_host_forms))
        out.append("string to sign:")
        out.extend(_indent((e.string_to_sign or "").split("\n")))
    out.append("")
    out.append("checks:")
    width = max(len(line.name) for line in e.checks)
    for line in e.checks:
        label = {"pass": "pass", "fail": "FAIL", "skip": "skip"}[line.status]
        out.append(f"  {label}  {line.name.ljust(width)}  {line.detail}")
        if line.status == "fail" and line.reason is not None:
            out.append(f"        {' ' * width}  reason {line.reason.value}, "
                       f"RDS error {line.rds_error_code}")
            if line.hint:
                out.append(f"        {' ' * width}  hint: {line.hint}")
    out.append("")
    first = e.first_failure
    ran = sum(1 for line in e.checks if line.status != "skip")
    skipped = len(e.checks) - ran
    for note in e.notes:
        out.append(f"note: {note}")
    if first is None:
        out.append(f"result: {e.verdict} ({ran} checks passed, {skipped} skipped"
                   + ("; parts of the IAM decision not evaluated" if e.not_evaluated else "")
                   + ")")
        if e.verdict == UNVERIFIED:
            sig = next((line for line in e.checks if line.name == SIGNATURE_CHECK), None)
            how = sig.detail if sig is not None else "needs " + INPUT_HINTS["credentials"]
            out.append("  the signature was not checked: a forged or altered token would look "
                       "the same")
            out.append("  to verify it: " + how.replace("needs ", "pass ", 1))
        elif skipped:
            out.append("  not checked: " + ", ".join(line.name for line in e.skipped))
        for part in e.not_evaluated:  # the verdict stands, but AWS may decide otherwise
            out.append(f"  skipped: {part} (not evaluated: AWS may decide otherwise)")
    else:
        assert first.reason is not None
        out.append(f"result: FAIL ({len(e.failures)} of {ran} checks failed, {skipped} skipped); "
                   f"RDS would report {first.reason.value} ({first.rds_error_code})")
        user = e.login_user or e.db_user or "<user>"
        engines: Iterable[str] = (engine,) if engine else CLIENT_MESSAGES
        for name in engines:
            out.append(f"  a {name} client sees: " + CLIENT_MESSAGES[name].format(user=user))
    return "\n".join(out) + "\n"


def _indent(lines: Iterable[str]) -> list[str]:
    return [f"    {line}" if line else "    " for line in lines]
