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
from rdsiam_emulator.iam.principals import PrincipalPolicies, skipped_part
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
    states = part_states(pol)
    if pol.skipped:
        verdict += " (not everything was evaluated: see skipped)"
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
        f"  session:  {_state_text(states['session'], _names(pol.session))}",
        f"  boundary: {_state_text(states['boundary'], _names(pol.boundary))}",
        f"  scp:      {_state_text(states['scp'], _scp_names(pol))}",
        f"context:    global keys {check.global_keys!r}; organization "
        + _state_text(states["organization"],
                      f"{pol.org.org_id} ({pol.org.path})" if pol.org else ""),
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
        "parts": part_states(check.policies),
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
        return ""
    return " → ".join(
        f"{level.target} [{', '.join(_scp_name(r) for r in level.policies) or 'nothing'}]"
        for level in pol.scp
    )


PartState = dict[str, str | None]

_NOT_GOVERNED = "not_governed"


def part_states(pol: PrincipalPolicies) -> dict[str, PartState]:
    """One state per part of the decision, the same in text and JSON:
    ``{"session"|"boundary"|"scp"|"organization": {"state": S, "why": str | None}}`` with S one of
    ``evaluated`` (policies read and used), ``none`` (the principal has no such layer; for
    ``organization``: in none), ``not_governed`` (SCPs only: they do not restrict this account,
    ``why`` says why) and ``not_evaluated`` (unknown: ``why`` is the ``skipped`` entry)."""
    skipped: dict[str, str] = {}
    for text in pol.skipped:
        skipped.setdefault(skipped_part(text), text)

    def state(part: str, present: bool, absent: str, why_absent: str | None) -> PartState:
        if part in skipped:
            return {"state": "not_evaluated", "why": skipped[part]}
        if present:
            return {"state": "evaluated", "why": None}
        return {"state": absent, "why": why_absent}

    scp_why = next((n for n in pol.notes if "SCP" in n), None) or (
        "the account is in no organization" if pol.org is None
        else "SCPs do not apply to this account")
    boundary_why = (f"the boundary {pol.boundary_unread} could not be read: it allows nothing"
                    if pol.boundary_unread else None)
    boundary = state("boundary", pol.boundary is not None, "none", None)
    if boundary["state"] == "evaluated" and boundary_why:
        boundary["why"] = boundary_why
    return {
        "session": state("session", pol.session is not None, "none", None),
        "boundary": boundary,
        "scp": state("scp", pol.scp is not None, _NOT_GOVERNED, scp_why),
        "organization": state("organization", pol.org is not None, "none",
                              "the account is in no organization"),
    }


def _state_text(part: PartState, names: str) -> str:
    """``evaluated`` shows the policies; every other state says itself and why."""
    if part["state"] == "evaluated":
        return names + (f" ({part['why']})" if part["why"] else "")
    label = {"none": "(none", _NOT_GOVERNED: "(not governed",
             "not_evaluated": "(not evaluated"}[part["state"] or "none"]
    if part["state"] == "none" and not part["why"]:
        return f"{label}: this layer does not apply)"
    return f"{label}: {part['why']})"


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
