"""Who signed a token, as IAM sees the caller: the principal and what its session adds.

The same value comes from moto's in-process state (``aws.iam_state``), from the IAM API of a moto
server (``api_source``) or from an ARN given on the command line, so the evaluator never touches
moto.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from rdsiam_emulator.auth.credentials import ResolvedCredential

if TYPE_CHECKING:
    from rdsiam_emulator.iam.evaluator import PolicyRef as PolicyRefLike
    from rdsiam_emulator.iam.evaluator import ScpLevel

PrincipalType = Literal["User", "AssumedRole", "FederatedUser"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller. ``user_name`` names the IAM user whose policies apply (users, GetSessionToken and
    GetFederationToken sessions); ``role_arn`` the role of an assumed-role session."""

    type: PrincipalType
    arn: str
    account_id: str
    partition: str = "aws"
    user_name: str | None = None
    role_arn: str | None = None
    session_name: str | None = None
    user_id: str | None = None
    session_policy: str | None = None
    session_policy_arns: tuple[str, ...] = ()
    session_layer: bool = False
    """True when the session has session policies (or, for federation tokens, always)."""
    session_tags: tuple[tuple[str, str], ...] = ()
    issued_at: datetime | None = None
    mfa_present: bool | None = None
    """None for long-term keys, where IAM leaves aws:MultiFactorAuthPresent out of the context."""
    source: str = "iam-user"

    @property
    def role_name(self) -> str | None:
        """The role's name (last path part of ``role_arn``), or None when not a role session."""
        return None if self.role_arn is None else self.role_arn.rsplit("/", 1)[-1]

    @property
    def principal_arn_key(self) -> str:
        """``aws:PrincipalArn``: the role ARN for role sessions, else the caller ARN."""
        return self.role_arn if self.type == "AssumedRole" and self.role_arn else self.arn


@dataclass(frozen=True)
class MotoCredential(ResolvedCredential):
    """A ``ResolvedCredential`` that also knows its principal (the authorizer needs it)."""

    principal: Principal | None = field(default=None, compare=False)


class PrincipalArnError(ValueError):
    """The text is not an IAM user, role, assumed-role or federated-user ARN."""
    pass


_USER = re.compile(r"^arn:([\w-]+):iam::(\d{12}):user/(?:.*/)?([^/]+)$")
_ROLE = re.compile(r"^arn:([\w-]+):iam::(\d{12}):role/(.+)$")
_ASSUMED = re.compile(r"^arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/(.+)$")
_FEDERATED = re.compile(r"^arn:([\w-]+):sts::(\d{12}):federated-user/(.+)$")


CLI_SESSION = "cli-check"
"""Session name of the hypothetical session a role ARN stands for (it has no session policy)."""


def principal_from_arn(arn: str, *, role_path: str = "/") -> Principal:
    """A principal named on the command line (no session policies: they live in the session).

    A role ARN stands for a session of that role; an assumed-role ARN loses the role's path (the
    ARN does not carry it), so ``role_path`` can restore it.
    """
    if m := _USER.match(arn):
        return Principal("User", arn, m.group(2), m.group(1), user_name=m.group(3), source="arn")
    if m := _ROLE.match(arn):
        name = m.group(3).rsplit("/", 1)[-1]
        session_arn = f"arn:{m.group(1)}:sts::{m.group(2)}:assumed-role/{name}/{CLI_SESSION}"
        return Principal("AssumedRole", session_arn, m.group(2), m.group(1), role_arn=arn,
                         session_name=CLI_SESSION, source="arn")
    if m := _ASSUMED.match(arn):
        role_arn = f"arn:{m.group(1)}:iam::{m.group(2)}:role{role_path}{m.group(3)}"
        return Principal("AssumedRole", arn, m.group(2), m.group(1), role_arn=role_arn,
                         session_name=m.group(4), source="arn")
    if _FEDERATED.match(arn):
        raise PrincipalArnError(
            "a federated-user ARN does not name the IAM user that issued it; check the user instead"
        )
    raise PrincipalArnError(
        f"{arn!r} is not a user, role or assumed-role ARN (arn:aws:iam::ACCT:user/NAME, "
        "arn:aws:iam::ACCT:role/NAME, arn:aws:sts::ACCT:assumed-role/ROLE/SESSION)"
    )


@dataclass(frozen=True, slots=True)
class PrincipalPolicies:
    """Everything the evaluator needs about a principal, collected from one source."""

    identity: tuple[PolicyRefLike, ...]
    session: tuple[PolicyRefLike, ...] | None = None
    boundary: tuple[PolicyRefLike, ...] | None = None
    tags: tuple[tuple[str, str], ...] = ()
    user_id: str | None = None
    notes: tuple[str, ...] = ()
    """Things the source could not find (a deleted role, a missing managed policy...)."""
    scp: tuple[ScpLevel, ...] | None = None
    """SCP levels root → OUs → account when the caller's account is governed by SCPs."""
    org: OrgMembership | None = None
    skipped: tuple[str, ...] = ()
    """Parts of the decision this source could not evaluate (reported, never silently allowed)."""
    boundary_unread: str | None = None
    """ARN of a permissions boundary that is set but could not be read (``boundary`` is then
    ``()``, which denies: a boundary that cannot be read allows nothing)."""


@dataclass(frozen=True, slots=True)
class OrgMembership:
    """The caller's account in an AWS Organization (``aws:PrincipalOrgID``/``…OrgPaths``)."""

    org_id: str
    path: str
    """``o-…/r-…/ou-…/…/`` down to the account's parent, as aws:PrincipalOrgPaths gives it."""
    management_account: bool = False


class PolicySource(Protocol):
    """Where a principal's policies come from: moto in-process, or the IAM API of a moto server."""

    def policies_for(self, principal: Principal) -> PrincipalPolicies:
        """Every policy that applies to ``principal``; what cannot be read is reported in the
        result's ``notes``/``skipped`` rather than raised.
        """


SkippedPart = Literal["scp", "organization", "boundary", "session", "other"]

_SKIPPED_PREFIXES: tuple[tuple[str, SkippedPart], ...] = (
    ("service control policies", "scp"),
    ("organization membership", "organization"),
    ("user permissions boundary", "boundary"),
    ("permissions boundary", "boundary"),
    ("session policies", "session"),
    ("the session's policyarns", "session"),
)


def skipped_part(text: str) -> SkippedPart:
    """Which part of the decision a ``PrincipalPolicies.skipped`` entry is about (each source
    words its entries starting with the part's name)."""
    lower = text.lower()
    for prefix, part in _SKIPPED_PREFIXES:
        if lower.startswith(prefix):
            return part
    return "other"
