"""The pure IAM decision for one request: policies + action + resource + context → Decision.

IAM's order, for a single account and no resource policy (``rds-db`` has none; RCPs do not apply
to it), as the policy evaluation logic page draws it
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
1. any matching ``Deny`` in any policy (SCPs, identity, boundary, session) → explicit deny;
2. otherwise, when the caller's account is governed by SCPs, an ``Allow`` must match in an SCP at
   *every* level of the path root → OUs → account; then an ``Allow`` must match in the identity
   policies, **and** in the permissions boundary when there is one, **and** in the session policies
   when the session has any; else implicit deny, naming the layer (and SCP level) that lacked it.
A document that does not parse makes the request deny (fail closed), naming the document.
When the outcome is an implicit deny, ``near_misses`` lists Allow statements that would have matched
with one typical mistake corrected (see ``hints``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rdsiam_emulator.iam.conditions import Context, clause_holds
from rdsiam_emulator.iam.matching import action_match, arn_match
from rdsiam_emulator.iam.policy_model import (
    ParsedPolicy,
    PolicyDocument,
    PolicyParseError,
    Statement,
    parse_policy,
)
from rdsiam_emulator.iam.request_context import GlobalKeys, absent_key_reason
from rdsiam_emulator.iam.variables import Piece, expand

Layer = Literal["identity", "session", "boundary", "scp"]
Outcome = Literal["allow", "not_authorized", "explicit_deny"]


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """One policy document and where it came from (for explanations)."""

    name: str
    """Human label, e.g. ``inline policy 'db' of user alice`` or the managed policy's name."""
    document: str | Mapping[str, Any]
    layer: Layer = "identity"
    arn: str | None = None

    @property
    def parsed(self) -> ParsedPolicy:
        """The document parsed (cached by ``parse_policy``), or a ``PolicyParseError`` saying why
        not.
        """
        return parse_policy(self.document)

    @property
    def label(self) -> str:
        """``name (arn)`` for managed policies, else ``name``: how explanations refer to the
        policy.
        """
        return f"{self.name} ({self.arn})" if self.arn else self.name

    @property
    def parsed_variables(self) -> bool:
        """Whether policy variables apply (a 2012-10-17 document that parses)."""
        parsed = self.parsed
        return not isinstance(parsed, PolicyParseError) and parsed.variables_enabled


@dataclass(frozen=True, slots=True)
class ScpLevel:
    """The SCPs attached to one target on the path root → OUs → account (at least one must
    allow)."""

    target: str
    """e.g. ``root 'r-ab12'``, ``OU 'Prod' (ou-ab12-cdef3456)``, ``account 123456789012``."""
    policies: tuple[PolicyRef, ...]


@dataclass(frozen=True, slots=True)
class Request:
    """What is being asked: an ``action`` (``rds-db:connect``), a ``resource`` ARN and the request
    context (lower-cased condition keys → their values).
    """
    action: str
    resource: str
    context: Context = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatementRef:
    """A statement together with the policy it is in, for explanations."""
    policy: PolicyRef
    statement: Statement

    @property
    def label(self) -> str:
        """``Sid 'x' of <policy label>`` (or ``statement #n of …``)."""
        return f"{self.statement.label} of {self.policy.label}"


@dataclass(frozen=True, slots=True)
class NearMiss:
    """An Allow that would have matched with one thing corrected; ``kind`` is a stable code."""

    kind: str
    statement: StatementRef
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The evaluation result: ``outcome`` is ``allow``, ``not_authorized`` (implicit deny) or
    ``explicit_deny``; ``detail`` is one sentence for humans. Evaluation follows
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
    """
    outcome: Outcome
    detail: str
    deciding: StatementRef | None = None
    """The Deny that won, or (on allow) the first Allow in the identity policies."""
    missing_layer: Layer | None = None
    """On an implicit deny: the policy layer in which no Allow matched."""
    missing_target: str | None = None
    """With ``missing_layer == "scp"``: the SCP level (``ScpLevel.target``) that allowed nothing."""
    near_misses: tuple[NearMiss, ...] = ()
    malformed: tuple[tuple[PolicyRef, str], ...] = ()
    request: Request | None = None

    @property
    def allowed(self) -> bool:
        """True when ``outcome == "allow"``."""
        return self.outcome == "allow"


# ------------------------------------------------------------------------------------- matching


def _pieces(text: str, context: Context, variables: bool) -> tuple[Piece, ...] | None:
    return expand(text, context) if variables else ((text, True),)


def _action_matches(stmt: Statement, action: str) -> bool:
    hit = any(action_match(p, action) for p in stmt.actions)
    return hit != stmt.not_action


def _resource_matches(stmt: Statement, resource: str, context: Context, variables: bool) -> bool:
    hit = False
    for pattern in stmt.resources:
        pieces = _pieces(pattern, context, variables)
        if pieces is not None and arn_match(pieces, resource):
            hit = True
            break
    return hit != stmt.not_resource


def _conditions_hold(stmt: Statement, context: Context, variables: bool) -> bool:
    return all(
        clause_holds(c.operator, c.key, c.values, context, variables=variables)
        for c in stmt.conditions
    )


def statement_matches(stmt: Statement, doc: PolicyDocument, request: Request) -> bool:
    """True when ``stmt`` (of ``doc``) applies to ``request``: action, resource (with policy
    variables when ``doc`` enables them) and every condition match. Effect is not looked at.
    """
    variables = doc.variables_enabled
    return (
        _action_matches(stmt, request.action)
        and _resource_matches(stmt, request.resource, request.context, variables)
        and _conditions_hold(stmt, request.context, variables)
    )


# ------------------------------------------------------------------------------------- decision


def _documents(
    policies: Iterable[PolicyRef], malformed: list[tuple[PolicyRef, str]]
) -> list[tuple[PolicyRef, PolicyDocument]]:
    out: list[tuple[PolicyRef, PolicyDocument]] = []
    for ref in policies:
        parsed = ref.parsed
        if isinstance(parsed, PolicyParseError):
            malformed.append((ref, parsed.message))
        else:
            out.append((ref, parsed))
    return out


def evaluate(
    identity: Sequence[PolicyRef],
    request: Request,
    *,
    session: Sequence[PolicyRef] | None = None,
    boundary: Sequence[PolicyRef] | None = None,
    scp: Sequence[ScpLevel] | None = None,
    hints: HintInputs | None = None,
) -> Decision:
    """Decide ``request`` as IAM would. ``session``/``boundary``/``scp`` of None mean "no such
    layer"; ``scp`` lists the levels root → OUs → account."""
    malformed: list[tuple[PolicyRef, str]] = []
    # (layer, SCP level or None, documents), in AWS's order for the implicit-deny checks
    layers: list[tuple[Layer, str | None, list[tuple[PolicyRef, PolicyDocument]]]] = [
        ("scp", level.target, _documents(level.policies, malformed)) for level in scp or ()
    ]
    layers.append(("identity", None, _documents(identity, malformed)))
    if boundary is not None:
        layers.append(("boundary", None, _documents(boundary, malformed)))
    if session is not None:
        layers.append(("session", None, _documents(session, malformed)))

    first_allow: dict[tuple[Layer, str | None], StatementRef] = {}
    for layer, target, docs in layers:
        for ref, doc in docs:
            for stmt in doc.statements:
                if not statement_matches(stmt, doc, request):
                    continue
                if stmt.effect == "Deny":
                    deny = StatementRef(ref, stmt)
                    return Decision(
                        "explicit_deny",
                        f"explicitly denied by {deny.label}",
                        deny, None, None, (), tuple(malformed), request,
                    )
                first_allow.setdefault((layer, target), StatementRef(ref, stmt))

    if malformed:
        ref, message = malformed[0]
        return Decision(
            "not_authorized",
            f"{ref.label} is malformed ({message}); the emulator denies rather than guess",
            None, None, None, (), tuple(malformed), request,
        )
    for layer, target, docs in layers:
        if (layer, target) not in first_allow:
            near = tuple(_near_misses(docs, request, hints)) if hints is not None else ()
            return Decision(
                "not_authorized", _missing_detail(layer, target, request), None, layer, target,
                near, (), request,
            )
    allow = first_allow[("identity", None)]
    return Decision("allow", f"allowed by {allow.label}", allow, None, None, (), (), request)


def _missing_detail(layer: Layer, target: str | None, request: Request) -> str:
    what = f"{request.action} on {request.resource}"
    if layer == "scp":
        return (f"no service control policy attached to {target} allows {what} (every level "
                "from the root to the account must allow it)")
    if layer == "identity":
        return f"no identity policy statement allows {what}"
    if layer == "session":
        return f"the identity policies allow {what}, but the session policies do not"
    return f"the identity policies allow {what}, but the permissions boundary does not"


# ------------------------------------------------------------------------------------ near misses


@dataclass(frozen=True, slots=True)
class HintInputs:
    """What the near-miss search may try: the instance identifier and the parts of the dbuser
    ARN."""

    instance_id: str | None = None
    resource_id: str | None = None
    db_user: str | None = None
    region: str | None = None
    account_id: str | None = None
    global_keys: GlobalKeys = "documented"
    """Which reading of the request context was used (for the absent-key hint)."""
    cluster_id: str | None = None
    """The Aurora cluster identifier, when the resource is a cluster's (``cluster-…``)."""
    member_resource_ids: tuple[str, ...] = ()
    """The cluster members' DbiResourceIds (``db-…``)."""


def _with_resource(request: Request, resource: str) -> Request:
    return Request(request.action, resource, request.context)


def _near_misses(
    docs: list[tuple[PolicyRef, PolicyDocument]], request: Request, hints: HintInputs
) -> Iterable[NearMiss]:
    for ref, doc in docs:
        for stmt in doc.statements:
            if stmt.effect != "Allow":
                continue
            found = _statement_near_miss(StatementRef(ref, stmt), doc, request, hints)
            if found is not None:
                yield found


def _statement_near_miss(
    sref: StatementRef, doc: PolicyDocument, request: Request, hints: HintInputs
) -> NearMiss | None:
    stmt = sref.statement
    if not _conditions_hold(stmt, request.context, doc.variables_enabled):
        return (_absent_key_miss(sref, doc, request, hints)
                or _present_key_miss(sref, doc, request))
    resource = request.resource
    # 1. rds:connect / rds:* instead of rds-db:connect
    if not _action_matches(stmt, request.action) and request.action.lower().startswith("rds-db:"):
        alt_action = "rds:" + request.action.split(":", 1)[1]
        if _action_matches(stmt, alt_action) and _resource_matches(
            stmt, resource, request.context, doc.variables_enabled
        ):
            return NearMiss(
                "action_service", sref,
                f"{sref.label} allows {alt_action!r}; the IAM action for database logins is "
                f"{request.action!r} (service prefix rds-db, not rds)",
            )
        return None
    if not _action_matches(stmt, request.action):
        return None
    for kind, alt, message in _resource_variants(stmt, request, hints):
        if _resource_matches(stmt, alt, request.context, doc.variables_enabled):
            return NearMiss(kind, sref, f"{sref.label} {message}")
    api_arn = _rds_api_arn_message(stmt, request.resource)
    if api_arn is not None:
        return NearMiss("rds_api_arn", sref, f"{sref.label} {api_arn}")
    return None


_RDS_API_TYPES = {
    "db": ("DB instance", "the DbiResourceId (db-…) from describe-db-instances"),
    "cluster": ("Aurora cluster", "the DbClusterResourceId (cluster-…) from describe-db-clusters"),
    "db-proxy": ("RDS Proxy", "the proxy's id (prx-…, the last part of its ARN)"),
}
"""The RDS API (``arn:aws:rds:…``) resource types people put in rds-db:connect policies."""


def _rds_api_arn_message(stmt: Statement, resource: str) -> str | None:
    """Name an ``arn:aws:rds:<region>:<acct>:db:<name>``-style resource (the management API's
    ARN, common in infrastructure code) and the dbuser ARN it should have been."""
    if stmt.not_resource:
        return None
    for pattern in stmt.resources:
        segs = pattern.split(":", 6)
        if len(segs) < 7 or segs[2] != "rds" or segs[5] not in _RDS_API_TYPES:
            continue
        what, rid = _RDS_API_TYPES[segs[5]]
        return (
            f"names {pattern!r}, the RDS API ARN of the {what} {segs[6]!r} (for rds:* management "
            f"actions); rds-db:connect needs the dbuser ARN, here {resource!r} "
            f"(arn:<partition>:rds-db:<region>:<account>:dbuser:<resource id>/<db user>, with "
            f"{rid})"
        )
    return None


def _resource_variants(
    stmt: Statement, request: Request, hints: HintInputs
) -> Iterable[tuple[str, str, str]]:
    parts = request.resource.split(":", 5)
    if len(parts) != 6 or "/" not in parts[5]:
        return
    _, partition, service, region, account, tail = parts
    dbuser_prefix, _, db_user = tail.partition("/")
    resource_id = dbuser_prefix.removeprefix("dbuser:")

    def arn(
        *, svc: str = service, reg: str = region, acct: str = account,
        rid: str = resource_id, user: str = db_user,
    ) -> str:
        return f"arn:{partition}:{svc}:{reg}:{acct}:dbuser:{rid}/{user}"

    if hints.instance_id and hints.instance_id != resource_id:
        yield (
            "instance_identifier", arn(rid=hints.instance_id),
            f"names the instance identifier {hints.instance_id!r}; the dbuser ARN uses the "
            f"resource id {resource_id!r} (DbiResourceId in describe-db-instances), e.g. "
            f"{request.resource}",
        )
    if hints.cluster_id and hints.cluster_id != resource_id:
        yield (
            "cluster_identifier", arn(rid=hints.cluster_id),
            f"names the cluster identifier {hints.cluster_id!r}; Aurora's dbuser ARN uses the "
            f"cluster resource id {resource_id!r} (DbClusterResourceId in "
            f"describe-db-clusters), e.g. {request.resource}",
        )
    for member_rid in hints.member_resource_ids:
        named = any(member_rid in p for p in stmt.resources)
        # a wildcard (dbuser:db-*/*) names no member: say what it matched, not what it named
        what = (f"names {member_rid!r}, the DbiResourceId of one cluster member" if named else
                f"has a pattern matching {member_rid!r}, the DbiResourceId of a cluster member")
        yield (
            "instance_resource_id", arn(rid=member_rid),
            f"{what}; Aurora's dbuser ARN uses the cluster resource id {resource_id!r} "
            f"(DbClusterResourceId in describe-db-clusters), e.g. {request.resource}",
        )
    for pattern in (p for p in stmt.resources if not stmt.not_resource):
        segs = pattern.split(":", 5)
        if len(segs) != 6:
            continue
        p_service, p_region, p_account, p_tail = segs[2], segs[3], segs[4], segs[5]
        if p_service == "rds" and service == "rds-db":
            yield (
                "resource_service", arn(svc="rds"),
                f"names {pattern!r}: rds-db:connect needs an arn:{partition}:rds-db:… dbuser ARN, "
                f"e.g. {request.resource}",
            )
        if _plain(p_region) and p_region != region:
            yield (
                "region", arn(reg=p_region),
                f"names region {p_region!r}; the instance is in {region!r}",
            )
        if _plain(p_account) and p_account != account:
            yield (
                "account", arn(acct=p_account),
                f"names account {p_account!r}; the instance belongs to account {account!r}",
            )
        p_user = p_tail.partition("/")[2]
        if _plain(p_user) and p_user != db_user and p_user.lower() == db_user.lower():
            yield (
                "db_user_case", arn(user=p_user),
                f"names DB user {p_user!r}; the login user is {db_user!r} (DB user names in "
                "dbuser ARNs are case-sensitive)",
            )


def _plain(text: str) -> bool:
    return bool(text) and not any(c in text for c in "*?$")


def absent_keys(
    stmt: Statement, context: Context, variables: bool, *, failing: bool, mode: GlobalKeys
) -> list[tuple[str, str, str]]:
    """Condition clauses on keys absent from ``context`` for a reason RDS gives (the six
    unsupported keys, or any global key under ``mode="none"``): (operator, key, why).

    ``failing=True`` keeps clauses that fail (why an Allow did not apply), ``False`` those that
    hold (why a Deny applied)."""
    out: list[tuple[str, str, str]] = []
    for c in stmt.conditions:
        if c.key.lower() in context:
            continue
        why = absent_key_reason(c.key, mode)
        if why is None:
            continue
        holds = clause_holds(c.operator, c.key, c.values, context, variables=variables)
        if holds != failing:
            out.append((c.operator, c.key, why))
    return out


def _absent_key_miss(
    sref: StatementRef, doc: PolicyDocument, request: Request, hints: HintInputs
) -> NearMiss | None:
    stmt = sref.statement
    if not (_action_matches(stmt, request.action)
            and _resource_matches(stmt, request.resource, request.context, doc.variables_enabled)):
        return None
    found = absent_keys(stmt, request.context, doc.variables_enabled, failing=True,
                        mode=hints.global_keys)
    if not found:
        return None
    operator, key, why = found[0]
    return NearMiss(
        "absent_key", sref,
        f"{sref.label} has a condition {operator} on {key}, which fails because the key is "
        f"absent: {why}. On an absent key plain operators fail, …IfExists and negated "
        "operators hold, Null: true matches",
    )


def _present_key_miss(sref: StatementRef, doc: PolicyDocument, request: Request) -> NearMiss | None:
    """An Allow that matches the action and resource but fails a condition on a key that IS in
    the context (e.g. a ``DateLessThan`` window on ``aws:CurrentTime`` that has passed): name the
    clause, the request's value and the policy's."""
    stmt = sref.statement
    if not (_action_matches(stmt, request.action)
            and _resource_matches(stmt, request.resource, request.context, doc.variables_enabled)):
        return None
    for c in stmt.conditions:
        values = request.context.get(c.key.lower())
        if values is None or clause_holds(c.operator, c.key, c.values, request.context,
                                          variables=doc.variables_enabled):
            continue
        have = ", ".join(repr(v) for v in values)
        want = ", ".join(repr(v) for v in c.values)
        return NearMiss(
            "condition", sref,
            f"{sref.label} would allow it, but its condition {c.operator} on {c.key} fails: the "
            f"request context has {c.key} = {have}, the policy requires {c.operator} {want}",
        )
    return None
