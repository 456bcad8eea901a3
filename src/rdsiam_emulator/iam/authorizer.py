"""The IAM step of a login: may this principal ``rds-db:connect`` as this DB user here?

``IamAuthorizer`` implements ``verifier.Authorizer``: it builds the dbuser ARN from the endpoint,
collects the principal's policies from a ``PolicySource`` (moto in-process by default), builds the
request context RDS would supply, evaluates, and turns a denial into a ``Rejection`` with the
deciding statement and the most useful near-miss as the hint. ``check_principal`` is the same
decision without a token or a database (library use, ``policy check``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from rdsiam_emulator.auth.credentials import ResolvedCredential
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import ParsedToken
from rdsiam_emulator.iam.evaluator import (
    Decision,
    HintInputs,
    NearMiss,
    Request,
    absent_keys,
    evaluate,
)
from rdsiam_emulator.iam.principals import (
    MotoCredential,
    PolicySource,
    Principal,
    PrincipalPolicies,
)
from rdsiam_emulator.iam.request_context import UNSUPPORTED_KEYS, GlobalKeys, build_context
from rdsiam_emulator.reasons import Reason, Rejection

CONNECT = "rds-db:connect"

# build_context and UNSUPPORTED_KEYS moved to request_context; re-exported for existing callers
__all__ = [
    "CONNECT", "UNSUPPORTED_KEYS", "IamAuthorizer", "PolicyCheck", "build_context",
    "caller_phrase", "check_principal", "principal_label", "rejection_for",
]


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """A decision with its inputs, for explanations."""

    principal: Principal
    resource: str
    decision: Decision
    policies: PrincipalPolicies
    global_keys: GlobalKeys = "documented"

    def rejection(self) -> Rejection | None:
        """None when the decision allows; otherwise the ``NOT_AUTHORIZED`` rejection with its
        hint.
        """
        return None if self.decision.allowed else rejection_for(self)


def check_principal(
    principal: Principal,
    resource: str,
    *,
    source: PolicySource,
    region: str,
    now: datetime,
    action: str = CONNECT,
    hints: HintInputs | None = None,
    extra_context: Mapping[str, str | tuple[str, ...]] | None = None,
    global_keys: GlobalKeys = "documented",
) -> PolicyCheck:
    """Evaluate ``action`` on ``resource`` for ``principal``; no token or database involved.

    ``global_keys`` selects the reading of the request context (``request_context``)."""
    policies = source.policies_for(principal)
    context = build_context(principal, policies, region=region, now=now, extra=extra_context,
                            global_keys=global_keys)
    if hints is None:
        hints = _hints_from_arn(resource)
    hints = replace(hints, global_keys=global_keys)
    decision = evaluate(
        policies.identity, Request(action, resource, context),
        session=policies.session, boundary=policies.boundary, scp=policies.scp, hints=hints,
    )
    if decision.allowed:
        decision = _cross_account(decision, principal, resource)
    return PolicyCheck(principal, resource, decision, policies, global_keys)


def _cross_account(decision: Decision, principal: Principal, resource: str) -> Decision:
    """rds-db has no resource-based policies, so an Allow only counts in the caller's own account.

    Cross-account access in IAM needs the resource's account to grant it too; without a resource
    policy the only way is to assume a role in the database's account *(inferred from IAM's
    cross-account rules; RDS documents no exception)*.
    """
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[4] == principal.account_id or decision.deciding is None:
        return decision
    message = (
        f"{decision.deciding.label} allows it, but the caller belongs to account "
        f"{principal.account_id} and the database to account {parts[4]}: rds-db has no "
        f"resource-based policy to grant cross-account access, so assume a role in account "
        f"{parts[4]} and connect with its credentials"
    )
    return replace(
        decision, outcome="not_authorized",
        detail=f"cross-account: the caller's account {principal.account_id} is not the "
        f"database's account {parts[4]}",
        near_misses=(NearMiss("cross_account", decision.deciding, message),),
    )


def _hints_from_arn(resource: str) -> HintInputs:
    parts = resource.split(":", 5)
    if len(parts) != 6:
        return HintInputs()
    rid, _, user = parts[5].removeprefix("dbuser:").partition("/")
    return HintInputs(None, rid, user, parts[3], parts[4])


def rejection_for(check: PolicyCheck) -> Rejection:
    """The ``Rejection`` (reason ``NOT_AUTHORIZED``, RDS error code ``NotAuthorized``) for a check
    that did not allow: its detail names the caller and what was missing or denying, its hint the
    fix. Call it only for a decision that is not an allow.
    """
    decision, principal = check.decision, check.principal
    caller = caller_phrase(principal)
    if decision.outcome == "explicit_deny":
        deny = decision.deciding
        label = deny.label if deny is not None else "a Deny statement"
        hint = (f"{label} denies this login; an explicit Deny overrides every Allow: narrow or "
                "remove it")
        if deny is not None and deny.policy.layer == "scp":
            hint = (f"{label} denies this login; an explicit Deny in a service control policy "
                    "overrides every Allow: the organization's management account must narrow "
                    "or detach it")
        if deny is not None and decision.request is not None:
            absent = absent_keys(deny.statement, decision.request.context,
                                 deny.policy.parsed_variables, failing=False,
                                 mode=check.global_keys)
            if absent:
                operator, key, why = absent[0]
                hint += (f"; its condition {operator} on {key} holds because the key is absent "
                         f"({why}), and a negated operator holds on an absent key")
        return Rejection(
            Reason.EXPLICIT_DENY,
            f"{caller} is explicitly denied {CONNECT} on {check.resource} ({label})", hint,
        )
    detail = f"{caller} is not authorized to perform {CONNECT} on {check.resource}"
    if decision.missing_layer == "scp":
        detail += (f": no service control policy attached to {decision.missing_target} allows "
                   "it")
    unread = check.policies.boundary_unread
    if decision.missing_layer == "boundary" and unread:
        detail += f": its permissions boundary {unread} could not be read, so it allows nothing"
    else:
        detail += _LAYER_PHRASES.get(decision.missing_layer or "", "")
    if decision.malformed:
        ref, message = decision.malformed[0]
        detail += f": {ref.label} is malformed ({message})"
    if check.policies.notes:
        detail += " (" + "; ".join(check.policies.notes) + ")"
    if check.policies.skipped:
        detail += " [not evaluated: " + "; ".join(check.policies.skipped) + "]"
    return Rejection(Reason.NOT_AUTHORIZED, detail, _hint(check))


_LAYER_PHRASES = {
    "identity": ": no identity-policy statement allows it",
    "session": ": the identity policies allow it but the session policies do not",
    "boundary": ": the identity policies allow it but the permissions boundary does not",
}


def _hint(check: PolicyCheck) -> str:
    decision = check.decision
    if decision.near_misses:
        return decision.near_misses[0].message
    if decision.malformed:
        ref, message = decision.malformed[0]
        return f"fix {ref.label}: {message}"
    if check.principal.source == "sts:GetFederationToken" and decision.missing_layer == "session":
        return ("a GetFederationToken session has only the permissions its session policy grants: "
                "pass Policy/PolicyArns allowing rds-db:connect when calling GetFederationToken")
    if decision.missing_layer == "session":
        return ("the session policy passed when the role was assumed (Policy/PolicyArns) must also "
                f"allow {CONNECT} on {check.resource}")
    if decision.missing_layer == "scp":
        return (f"an SCP attached to {decision.missing_target} must allow {CONNECT} (SCPs never "
                "grant, but at every level from the root to the account one must allow it): "
                "attach one (e.g. FullAWSAccess) or add the action to it")
    unread = check.policies.boundary_unread
    if decision.missing_layer == "boundary" and unread:
        if unread.startswith(AWS_MANAGED_PREFIX):
            return (f"the boundary {unread} is an AWS-managed policy unknown to moto: start moto "
                    "(the emulator's process or moto server) with "
                    "MOTO_IAM_LOAD_MANAGED_POLICIES=true, or use a customer-managed boundary")
        return (f"the boundary {unread} does not exist (or has no default version): create it "
                "or set the boundary to a policy that exists")
    if decision.missing_layer == "boundary":
        owner = "role's" if check.principal.type == "AssumedRole" else "user's"
        return f"the {owner} permissions boundary must also allow {CONNECT} on {check.resource}"
    who = principal_label(check.principal)
    return f"attach a policy to {who} allowing {CONNECT} on {check.resource}"


AWS_MANAGED_PREFIX = "arn:aws:iam::aws:policy/"


def caller_phrase(principal: Principal) -> str:
    """The caller by kind, e.g. ``IAM user 'arn:…:user/x'``: an IAM user assumes nothing, so
    only a role session is worded as one."""
    if principal.type == "AssumedRole":
        role = f" of role '{principal.role_arn}'" if principal.role_arn else ""
        return f"role session '{principal.arn}'{role}"
    if principal.type == "FederatedUser":
        issuer = f" issued by IAM user '{principal.user_name}'" if principal.user_name else ""
        return f"federated user '{principal.arn}'{issuer}"
    return f"IAM user '{principal.arn}'"


def principal_label(principal: Principal) -> str:
    """``role <name>`` for an assumed-role session, else ``user <name>``."""
    if principal.type == "AssumedRole":
        return f"role {principal.role_name}"
    return f"user {principal.user_name}"


class IamAuthorizer:
    """``verifier.Authorizer`` evaluating ``rds-db:connect`` against moto's IAM state."""

    def __init__(
        self, source: PolicySource | None = None, *, global_keys: GlobalKeys = "documented"
    ) -> None:
        """``global_keys``: ``documented`` (the context RDS documents) or ``none`` (the older
        guide's reading: no global condition keys at all); see ``request_context``."""
        if source is None:
            from rdsiam_emulator.aws.iam_state import MotoPolicySource

            source = MotoPolicySource()
        self._source = source
        self.global_keys: GlobalKeys = global_keys
        # what the last authorize() in this thread could not evaluate (read by the Authenticator
        # right after verify_token, in the same thread, for the allow event)
        self._last = threading.local()

    def with_global_keys(self, global_keys: str) -> IamAuthorizer:
        """The same policy source under another reading of the request context."""
        if global_keys not in ("documented", "none"):
            raise ValueError(f"global_keys must be 'documented' or 'none', got {global_keys!r}")
        mode: GlobalKeys = "none" if global_keys == "none" else "documented"
        return IamAuthorizer(self._source, global_keys=mode)

    def check(
        self, credential: ResolvedCredential, endpoint: Endpoint, db_user: str, now: datetime
    ) -> PolicyCheck | Rejection:
        """The full decision (for ``token explain``), or a Rejection when it cannot be made."""
        principal = credential.principal if isinstance(credential, MotoCredential) else None
        if principal is None:
            return Rejection(
                Reason.NOT_AUTHORIZED,
                f"no IAM principal is known for access key {credential.access_key_id}, so no "
                "policy can allow rds-db:connect",
                "resolve credentials with iam.MotoCredentials so the principal is known",
            )
        resource = endpoint.db_user_arn(db_user)
        if resource is None:
            return Rejection(
                Reason.INTERNAL_ERROR,
                f"the endpoint {endpoint.address} has no account id or resource id, so the dbuser "
                "ARN cannot be built",
                "configure the instance with its account and DbiResourceId",
            )
        hints = HintInputs(
            endpoint.instance_id, endpoint.resource_id, db_user, endpoint.region,
            endpoint.account_id, cluster_id=endpoint.cluster_id,
            member_resource_ids=endpoint.member_resource_ids,
        )
        return check_principal(
            principal, resource, source=self._source, region=endpoint.region, now=now, hints=hints,
            global_keys=self.global_keys,
        )

    def skipped_parts(
        self, *, credential: ResolvedCredential, endpoint: Endpoint, db_user: str, now: datetime
    ) -> tuple[str, ...]:
        """Parts of the decision the policy source could not evaluate (``token explain`` shows
        them next to an allow, so an allow never hides them)."""
        result = self.check(credential, endpoint, db_user, now)
        return () if isinstance(result, Rejection) else result.policies.skipped

    def authorize(
        self,
        *,
        credential: ResolvedCredential,
        token: ParsedToken,
        endpoint: Endpoint,
        db_user: str,
        now: datetime,
    ) -> Rejection | None:
        """``verifier.Authorizer``: None when the caller's policies allow ``rds-db:connect`` on
        ``endpoint.db_user_arn(db_user)`` at ``now`` (aware, UTC), else the rejection. ``token``
        is not read. Remembers, per thread, what the policy source could not evaluate
        (``last_skipped``).
        """
        result = self.check(credential, endpoint, db_user, now)
        if isinstance(result, Rejection):
            self._last.skipped = ()
            return result
        self._last.skipped = result.policies.skipped
        return result.rejection()

    def last_skipped(self) -> tuple[str, ...]:
        """The skipped parts of this thread's last ``authorize`` decision (then forgotten)."""
        skipped: tuple[str, ...] = getattr(self._last, "skipped", ())
        self._last.skipped = ()
        return skipped
