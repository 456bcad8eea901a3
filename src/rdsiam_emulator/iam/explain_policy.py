"""Human and JSON renderings of a policy decision (``policy check``, ``token explain``).

Says what was evaluated (principal, action, resource, the policies of each layer), what decided, and
the near misses: the explanation RDS never gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rdsiam_emulator.auth.credentials import ResolvedCredential
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.iam.authorizer import IamAuthorizer, PolicyCheck, rejection_for
from rdsiam_emulator.iam.evaluator import PolicyRef
from rdsiam_emulator.iam.principals import PrincipalPolicies
from rdsiam_emulator.reasons import Rejection


def _names(refs: Sequence[PolicyRef] | None) -> str:
    if refs is None:
        return "(none: this layer does not apply)"
    if not refs:
        return "(empty: nothing can be allowed)"
    return "; ".join(ref.label for ref in refs)


def format_check(check: PolicyCheck) -> list[str]:
    """Indented lines, stable enough to read in a terminal or a test report."""
    d, p, pol = check.decision, check.principal, check.policies
    verdict = "ALLOW" if d.allowed else f"DENY ({d.outcome})"
    lines = [
        f"principal:  {p.arn} ({p.type}, from {p.source})",
        f"action:     {d.request.action if d.request else 'rds-db:connect'}",
        f"resource:   {check.resource}",
        f"decision:   {verdict}",
        f"  why:      {d.detail}",
    ]
    if d.deciding is not None:
        lines.append(f"  deciding: {d.deciding.label}")
    lines += [
        "policies:",
        f"  identity: {_names(pol.identity)}",
        f"  session:  {_names(pol.session)}",
        f"  boundary: {_names(pol.boundary)}",
        f"  scp:      {_scp_names(pol)}",
        f"context:    global keys {check.global_keys!r}"
        + (f"; organization {pol.org.org_id} ({pol.org.path})" if pol.org else ""),
    ]
    for ref, message in d.malformed:
        lines.append(f"malformed:  {ref.label}: {message}")
    if d.near_misses:
        lines.append("near misses:")
        lines += [f"  - [{m.kind}] {m.message}" for m in d.near_misses]
    for note in pol.notes:
        lines.append(f"note:       {note}")
    for part in pol.skipped:
        lines.append(f"skipped:    {part} (not evaluated: AWS may decide otherwise)")
    if not d.allowed:
        hint = rejection_for(check).hint
        if hint:
            lines.append(f"hint:       {hint}")
    return lines


def check_to_json(check: PolicyCheck) -> dict[str, Any]:
    """A ``PolicyCheck`` as JSON-ready values (``policy check --json``): ``allowed``, ``outcome``,
    ``reason``, ``detail``, ``hint``, the principal, the resource, the deciding statement, near
    misses, malformed policies, the policies per layer, notes, skipped parts and the
    organization.
    """
    d, p = check.decision, check.principal
    rejection = None if d.allowed else rejection_for(check)
    return {
        "allowed": d.allowed,
        "outcome": d.outcome,
        "reason": None if rejection is None else str(rejection.reason),
        "detail": d.detail,
        "hint": None if rejection is None else rejection.hint,
        "principal": {"arn": p.arn, "type": p.type, "account": p.account_id, "source": p.source},
        "resource": check.resource,
        "deciding": None if d.deciding is None else {
            "policy": d.deciding.policy.name, "policy_arn": d.deciding.policy.arn,
            "sid": d.deciding.statement.sid, "statement_index": d.deciding.statement.index,
            "effect": d.deciding.statement.effect,
        },
        "near_misses": [{"kind": m.kind, "message": m.message} for m in d.near_misses],
        "malformed": [{"policy": r.label, "error": msg} for r, msg in d.malformed],
        "policies": _layers(check.policies),
        "notes": list(check.policies.notes),
        "skipped": list(check.policies.skipped),
        "global_keys": check.global_keys,
        "organization": None if check.policies.org is None else {
            "id": check.policies.org.org_id, "path": check.policies.org.path,
            "management_account": check.policies.org.management_account,
        },
        "missing_scp_target": d.missing_target,
    }


def _layers(pol: PrincipalPolicies) -> Mapping[str, list[str] | None]:
    def names(refs: Sequence[PolicyRef] | None) -> list[str] | None:
        return None if refs is None else [r.label for r in refs]

    scp = None if pol.scp is None else [
        f"{level.target}: " + (", ".join(_scp_name(r) for r in level.policies) or "(none)")
        for level in pol.scp
    ]
    return {"identity": names(pol.identity), "session": names(pol.session),
            "boundary": names(pol.boundary), "scp": scp}


def _scp_names(pol: PrincipalPolicies) -> str:
    if pol.scp is None:
        return "(none: the account is not governed by SCPs)"
    return " → ".join(
        f"{level.target} [{', '.join(_scp_name(r) for r in level.policies) or 'nothing'}]"
        for level in pol.scp
    )


def authorization_lines(
    authorizer: IamAuthorizer,
    *,
    credential: ResolvedCredential,
    endpoint: Endpoint,
    db_user: str,
    now: datetime,
) -> list[str]:
    """The policy part of ``token explain``: the full decision for a resolved credential."""
    result = authorizer.check(credential, endpoint, db_user, now)
    if isinstance(result, Rejection):
        lines = [f"no policy decision ({result.reason}): {result.detail}"]
        return lines + ([f"hint:       {result.hint}"] if result.hint else [])
    return format_check(result)


def _scp_name(ref: PolicyRef) -> str:
    return ref.name.split(" attached to ", 1)[0].removeprefix("SCP ")
