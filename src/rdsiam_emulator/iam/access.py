"""What may each IAM principal ``rds-db:connect`` to? (the status page's principals table)

For every IAM user and role in moto's state and every instance, candidate DB users are evaluated
with the emulator's own policy evaluator (``authorizer.check_principal``), exactly as a login
would be: identity policies, groups, boundaries, SCPs, cross-account. Candidates are the
instance's known DB users plus the literal user names in the principal's ``rds-db`` resources;
one extra probe with a name no policy spells out tells whether *any* DB user is allowed.

A role is evaluated as a session of that role without session policies (what ``policy check``
does for a role ARN); whether the caller may assume it (its trust policy) is not evaluated here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rdsiam_emulator.iam.authorizer import check_principal
from rdsiam_emulator.iam.evaluator import HintInputs, PolicyRef
from rdsiam_emulator.iam.policy_model import PolicyParseError
from rdsiam_emulator.iam.principals import (
    PolicySource,
    Principal,
    PrincipalPolicies,
    principal_from_arn,
)

ANY_USER = "*"
"""``AccessGrant.db_user`` when the principal may connect as any DB user of the instance."""


@dataclass(frozen=True, slots=True)
class AccessTarget:
    """One instance as the dbuser ARN names it, and the DB users known to exist on it."""

    instance_id: str
    region: str
    account_id: str
    resource_id: str
    db_users: tuple[str, ...] = ()

    def arn(self, db_user: str) -> str:
        """The ``rds-db:connect`` resource ARN for ``db_user`` on this instance."""
        return (f"arn:aws:rds-db:{self.region}:{self.account_id}:dbuser:"
                f"{self.resource_id}/{db_user}")


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """``principal`` may connect to ``instance_id`` as ``db_user`` (``ANY_USER``: as anyone)."""

    instance_id: str
    db_user: str
    resource: str
    """The dbuser ARN evaluated (for ``ANY_USER``: with ``*`` as the user)."""
    excluded: tuple[str, ...] = ()
    """With ``ANY_USER``: the known or named DB users that are nevertheless refused."""


@dataclass(frozen=True, slots=True)
class PrincipalAccess:
    """What one IAM user or role may ``rds-db:connect`` to, as decided by our policy evaluator."""
    kind: Literal["user", "role"]
    name: str
    arn: str
    account_id: str
    grants: tuple[AccessGrant, ...]
    notes: tuple[str, ...] = ()
    """What the decision could not see (missing policies, unevaluated parts): shown beside it."""


def moto_principals() -> list[Principal]:
    """Every IAM user and role in moto's in-process state, users first, sorted by ARN. Roles
    come as a session of the role (``principal_from_arn``), keeping the role's path."""
    from rdsiam_emulator.aws.iam_state import _iam_backends, _retry

    def read() -> list[Principal]:
        users: list[Principal] = []
        roles: list[Principal] = []
        for account_id, partition, backend in _iam_backends():
            for user in list(backend.users.values()):
                users.append(Principal("User", user.arn, account_id, partition,
                                       user_name=user.name, user_id=user.id,
                                       source="iam-user"))
            for role in list(backend.roles.values()):
                roles.append(principal_from_arn(role.arn))
        return sorted(users, key=lambda p: p.arn) + sorted(roles, key=lambda p: p.arn)

    return _retry(read)


class _CachedSource:
    """One read of each principal's policies per computation (moto is read under a retry)."""

    def __init__(self, inner: PolicySource) -> None:
        self._inner = inner
        self._cache: dict[str, PrincipalPolicies] = {}

    def policies_for(self, principal: Principal) -> PrincipalPolicies:
        key = principal.arn
        if key not in self._cache:
            self._cache[key] = self._inner.policies_for(principal)
        return self._cache[key]


def _named_users(policies: PrincipalPolicies, resource_id: str) -> Iterator[str]:
    """Literal DB user names in ``rds-db`` resources that could name this instance: candidates
    only, the evaluator decides."""
    refs: list[PolicyRef] = list(policies.identity)
    for ref in refs:
        parsed = ref.parsed
        if isinstance(parsed, PolicyParseError):
            continue
        for stmt in parsed.statements:
            if stmt.effect != "Allow" or stmt.not_resource:
                continue
            for resource in stmt.resources:
                _, sep, rest = resource.partition(":dbuser:")
                if not sep:
                    continue
                rid, slash, user = rest.partition("/")
                if not slash or not user or any(c in user for c in "*?$"):
                    continue
                if rid == resource_id or any(c in rid for c in "*?"):
                    yield user


def connect_access(
    targets: Iterable[AccessTarget],
    *,
    source: PolicySource,
    now: datetime,
    principals: Iterable[Principal] | None = None,
) -> list[PrincipalAccess]:
    """For each principal (default: ``moto_principals()``), the instances and DB users it may
    ``rds-db:connect`` to at ``now``, in target order. Allowed DB users are listed by name;
    when a name no policy mentions is allowed too, one ``ANY_USER`` grant replaces the list."""
    cached = _CachedSource(source)
    target_list = list(targets)
    result: list[PrincipalAccess] = []
    for principal in (moto_principals() if principals is None else principals):
        policies = cached.policies_for(principal)
        grants: list[AccessGrant] = []
        for target in target_list:
            grants.extend(_grants(principal, target, cached, policies, now))
        notes = tuple(dict.fromkeys((*policies.notes, *(
            f"not evaluated: {part}" for part in policies.skipped))))
        if policies.boundary_unread:
            notes += (f"permissions boundary {policies.boundary_unread} could not be read "
                      "(it allows nothing)",)
        kind: Literal["user", "role"] = "role" if principal.type == "AssumedRole" else "user"
        name = (principal.role_name if kind == "role" else principal.user_name) or principal.arn
        arn = principal.role_arn if kind == "role" and principal.role_arn else principal.arn
        result.append(PrincipalAccess(kind, name, arn, principal.account_id, tuple(grants),
                                      notes))
    return result


def _grants(principal: Principal, target: AccessTarget, source: PolicySource,
            policies: PrincipalPolicies, now: datetime) -> list[AccessGrant]:
    def allowed(db_user: str) -> bool:
        hints = HintInputs(target.instance_id, target.resource_id, db_user, target.region,
                           target.account_id)
        return check_principal(principal, target.arn(db_user), source=source,
                               region=target.region, now=now, hints=hints).decision.allowed

    candidates = dict.fromkeys((*target.db_users, *_named_users(policies, target.resource_id)))
    verdicts = {user: allowed(user) for user in candidates}
    # a fresh random name: no policy can spell it out, so only a pattern can allow it
    if allowed(f"rdsiam-any-{secrets.token_hex(6)}"):
        refused = tuple(user for user, ok in verdicts.items() if not ok)
        return [AccessGrant(target.instance_id, ANY_USER, target.arn(ANY_USER), refused)]
    return [AccessGrant(target.instance_id, user, target.arn(user))
            for user, ok in verdicts.items() if ok]
