"""AWS Organizations for the decision: the caller's organization, path and SCPs, from moto.

Rules (https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps.html,
"SCP evaluation" and "Tasks and entities not restricted by SCPs"):
* SCPs govern principals of **member** accounts; the management account is never restricted;
* SCPs take effect only while the ``SERVICE_CONTROL_POLICY`` type is enabled in the root;
* an action is allowed only if, at **every** level of the path root → OUs → account, some attached
  SCP allows it; a Deny in any of them wins. SCPs never grant.

RCPs (resource control policies) apply only to the services AWS lists for them
(https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_rcps.html,
"List of AWS services that support RCPs"); RDS / ``rds-db`` is not among them, so they are not
evaluated for ``rds-db:connect``.

moto keeps the organization in the management account's backend and maps member accounts to it
(``organizations_backends.master_accounts``). Reads copy lists; nothing here writes to moto.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rdsiam_emulator.iam.evaluator import PolicyRef, ScpLevel
from rdsiam_emulator.iam.principals import OrgMembership

SCP = "SERVICE_CONTROL_POLICY"


@dataclass(frozen=True, slots=True)
class OrgView:
    """What the decision needs from the organization of one account."""

    membership: OrgMembership
    scp: tuple[ScpLevel, ...] | None
    """None when SCPs do not restrict this account (management account, or SCPs not enabled)."""
    notes: tuple[str, ...] = ()


def scp_ref(name: str, policy_id: str, target: str, content: str) -> PolicyRef:
    """A PolicyRef naming the SCP and the target it is attached to (deny reasons quote it)."""
    return PolicyRef(f"SCP {name!r} ({policy_id}) attached to {target}", content, "scp")


def moto_org_for(account_id: str, partition: str = "aws") -> OrgView | None:
    """The organization of ``account_id`` in moto's in-process state, or None when it has none."""
    from moto.organizations.models import organizations_backends

    backend: Any = None
    mapped = organizations_backends.master_accounts.get(account_id)
    if mapped is not None:
        backend = organizations_backends[mapped[0]][mapped[1]]
    elif account_id in organizations_backends:
        own = organizations_backends[account_id][partition]
        if own.org is not None:
            backend = own
    if backend is None or backend.org is None:
        return None
    org = backend.org
    accounts = {a.id: a for a in list(backend.accounts)}
    units = {ou.id: ou for ou in list(backend.ou)}
    account = accounts.get(account_id)
    if account is None:
        return None
    chain = list(_ancestors(account.parent_id, units))  # root first
    path = "/".join([org.id, *[u.id for u in chain]]) + "/"
    management = account_id == org.master_account_id
    membership = OrgMembership(org.id, path, management)
    root = units.get(org.root_id)
    enabled = root is not None and any(
        t.get("Type") == SCP and t.get("Status") == "ENABLED"
        for t in list(getattr(root, "policy_types", []))
    )
    if management:
        return OrgView(membership, None, (
            f"account {account_id} is the management account of {org.id}: SCPs do not "
            "restrict it",))
    if not enabled:
        return OrgView(membership, None, (
            f"the SERVICE_CONTROL_POLICY type is not enabled in root {org.root_id}: SCPs are "
            "not in effect (organizations enable_policy_type)",))
    levels: list[ScpLevel] = []
    for unit in chain:
        target = (f"root {unit.id}" if unit.id == org.root_id
                  else f"OU {unit.name!r} ({unit.id})")
        levels.append(_level(target, unit.attached_policies))
    levels.append(_level(f"account {account_id}", account.attached_policies))
    return OrgView(membership, tuple(levels))


def _ancestors(parent_id: str, units: dict[str, Any]) -> Iterable[Any]:
    chain: list[Any] = []
    seen: set[str] = set()
    current = units.get(parent_id)
    while current is not None and current.id not in seen:
        seen.add(current.id)
        chain.append(current)
        current = units.get(getattr(current, "parent_id", None) or "")
    return list(reversed(chain))


def _level(target: str, attached: Iterable[Any]) -> ScpLevel:
    refs = tuple(
        scp_ref(str(p.name), str(p.id), target, str(p.content))
        for p in list(attached) if p.type == SCP
    )
    return ScpLevel(target, refs)
