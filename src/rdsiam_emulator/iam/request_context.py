"""The request context of an ``rds-db:connect`` decision: which global condition keys a login has.

IAM evaluates conditions against the *request context* the service supplies
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html,
"Processing the request context"). RDS documents which global keys IAM database authentication
does **not** supply (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.html,
the same list in the Aurora guide): ``aws:Referer``, ``aws:SourceIp``, ``aws:SourceVpc``,
``aws:SourceVpce``, ``aws:UserAgent``, ``aws:VpcSourceIp``. Those behave as absent keys (IAM's rule:
``…IfExists`` holds, plain operators fail, negated ones hold, ``Null: true`` matches).

Two readings are selectable (``GlobalKeys``):
* ``documented`` (default): every other global key IAM defines for a principal's request is
  present, valued as below (``KEYS``);
* ``none``: an older RDS guide said IAM DB authentication supports no global condition keys, and
  a login refused on RDS under an ``aws:CurrentTime`` date window fits that reading; in this mode
  *no* global key is present, so every condition on one behaves as on an absent key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rdsiam_emulator.iam.principals import Principal, PrincipalPolicies

GlobalKeys = Literal["documented", "none"]
GLOBAL_KEYS_MODES: tuple[GlobalKeys, ...] = ("documented", "none")

_KEYS_DOC = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html"
_RDS_DOC = "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.html"


@dataclass(frozen=True, slots=True)
class ContextKey:
    """One global condition key: whether a login's context has it, where its value comes from."""

    name: str
    present: bool
    source: str
    citation: str


KEYS: tuple[ContextKey, ...] = (
    ContextKey("aws:PrincipalArn", True, "user ARN; the role ARN for role sessions; the "
               "federated-user ARN", _KEYS_DOC + "#condition-keys-principalarn"),
    ContextKey("aws:PrincipalAccount", True, "the caller's account", _KEYS_DOC),
    ContextKey("aws:PrincipalType", True, "User / AssumedRole / FederatedUser", _KEYS_DOC),
    ContextKey("aws:userid", True, "user id; ROLEID:session; ACCOUNT:name", _KEYS_DOC),
    ContextKey("aws:username", True, "IAM users only (absent for sessions)", _KEYS_DOC),
    ContextKey("aws:PrincipalTag/*", True, "the user's or role's tags; session tags win",
               _KEYS_DOC),
    ContextKey("aws:PrincipalOrgID", True, "the organization of the caller's account (moto "
               "Organizations); absent outside one", _KEYS_DOC + "#condition-keys-principalorgid"),
    ContextKey("aws:PrincipalOrgPaths", True, "o-…/r-…/ou-…/ path of the caller's account",
               _KEYS_DOC),
    ContextKey("aws:CurrentTime", True, "the emulator clock at the login", _KEYS_DOC),
    ContextKey("aws:EpochTime", True, "the emulator clock at the login (seconds)", _KEYS_DOC),
    ContextKey("aws:RequestedRegion", True, "the instance's region", _KEYS_DOC),
    ContextKey("aws:SecureTransport", True, "true: IAM logins are TLS-only", _KEYS_DOC),
    ContextKey("aws:TokenIssueTime", True, "STS sessions (recorded by aws.patches)", _KEYS_DOC),
    ContextKey("aws:MultiFactorAuthPresent", True, "STS sessions; absent for long-term keys",
               _KEYS_DOC + "#condition-keys-multifactorauthpresent"),
    ContextKey("aws:ViaAWSService", True, "false", _KEYS_DOC),
    ContextKey("aws:PrincipalIsAWSService", True, "false", _KEYS_DOC),
    ContextKey("aws:Referer", False, "not supplied for IAM DB authentication", _RDS_DOC),
    ContextKey("aws:SourceIp", False, "not supplied for IAM DB authentication", _RDS_DOC),
    ContextKey("aws:SourceVpc", False, "not supplied for IAM DB authentication", _RDS_DOC),
    ContextKey("aws:SourceVpce", False, "not supplied for IAM DB authentication", _RDS_DOC),
    ContextKey("aws:UserAgent", False, "not supplied for IAM DB authentication", _RDS_DOC),
    ContextKey("aws:VpcSourceIp", False, "not supplied for IAM DB authentication", _RDS_DOC),
)
"""The documented reading; ``docs/iam.md`` renders the same table."""

UNSUPPORTED_KEYS = frozenset(k.name.lower() for k in KEYS if not k.present)
"""Condition keys RDS does not supply for rds-db:connect; they are never in the context."""


def absent_key_reason(key: str, mode: GlobalKeys) -> str | None:
    """Why ``key`` is absent from a login's context when RDS is the reason, else None."""
    lower = key.lower()
    if lower in UNSUPPORTED_KEYS:
        return f"RDS does not supply {key} to rds-db:connect ({_RDS_DOC})"
    if mode == "none" and lower.startswith("aws:"):
        return (f"{key} is absent: the stricter reading (global keys 'none') gives IAM DB "
                "authentication no global condition keys")
    return None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_context(
    principal: Principal,
    policies: PrincipalPolicies,
    *,
    region: str,
    now: datetime,
    secure_transport: bool = True,
    extra: Mapping[str, str | tuple[str, ...]] | None = None,
    global_keys: GlobalKeys = "documented",
) -> dict[str, tuple[str, ...]]:
    """The condition keys a connection supplies (lower-cased key → values).

    ``extra`` adds or overrides keys (``policy check --context``), except the six RDS never
    supplies and, with ``global_keys="none"``, every ``aws:`` key.
    """
    ctx: dict[str, tuple[str, ...]] = {
        "aws:principalarn": (principal.principal_arn_key,),
        "aws:principalaccount": (principal.account_id,),
        "aws:principaltype": (principal.type,),
        "aws:currenttime": (_iso(now),),
        "aws:epochtime": (str(int(now.timestamp())),),
        "aws:requestedregion": (region,),
        "aws:securetransport": ("true" if secure_transport else "false",),
        "aws:viaawsservice": ("false",),
        "aws:principalisawsservice": ("false",),
    }
    user_id = policies.user_id or principal.user_id
    if user_id:
        ctx["aws:userid"] = (user_id,)
    if principal.type == "User" and principal.user_name:
        ctx["aws:username"] = (principal.user_name,)
    if principal.issued_at is not None:
        ctx["aws:tokenissuetime"] = (_iso(principal.issued_at),)
    if principal.mfa_present is not None:
        ctx["aws:multifactorauthpresent"] = ("true" if principal.mfa_present else "false",)
    if policies.org is not None:
        ctx["aws:principalorgid"] = (policies.org.org_id,)
        ctx["aws:principalorgpaths"] = (policies.org.path,)
    for key, value in policies.tags:
        ctx[f"aws:principaltag/{key.lower()}"] = (value,)
    for key, extra_value in (extra or {}).items():
        ctx[key.lower()] = (extra_value,) if isinstance(extra_value, str) else tuple(extra_value)
    for key in UNSUPPORTED_KEYS:
        ctx.pop(key, None)
    if global_keys == "none":
        ctx = {k: v for k, v in ctx.items() if not k.startswith("aws:")}
    return ctx
