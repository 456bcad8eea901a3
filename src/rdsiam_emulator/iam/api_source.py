"""``PolicySource`` over the IAM API (boto3), for a CLI process pointed at a moto server.

A separate process cannot read another process's moto state, but it can ask the moto server's IAM
API the same questions: inline and attached policies of the user, its groups or the role, the role's
permissions boundary and tags. Session policies live in the STS session, which the API does not
expose, so a principal given as an ARN is evaluated without them (docs/iam.md says so).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

from rdsiam_emulator.iam.evaluator import Layer, PolicyRef, ScpLevel
from rdsiam_emulator.iam.organizations import SCP, OrgView, scp_ref
from rdsiam_emulator.iam.principals import (
    CLI_SESSION,
    OrgMembership,
    Principal,
    PrincipalPolicies,
)


def _doc(value: Any) -> str:
    """boto3 decodes policy documents to dicts; moto may hand back URL-encoded text."""
    if isinstance(value, str):
        return unquote(value) if value.startswith("%7B") else value
    return json.dumps(value)


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    paginator = client.get_paginator(operation)
    for page in paginator.paginate(**kwargs):
        yield from page.get(key, [])


class IamApiPolicySource:
    """Reads policies with ``iam`` API calls (``list_*``/``get_*``); slow, for one-off checks."""

    SCP_SKIPPED = ("service control policies: not read through the IAM API (an SCP may still "
                   "deny on AWS); policy check --scp-file evaluates them")

    def __init__(
        self, iam_client: Any, *, client_for_account: Callable[[str], Any] | None = None,
        report_scp_skipped: bool = True,
        organizations_for_account: Callable[[str], Any] | None = None,
    ) -> None:
        """``client_for_account`` gives a client for the principal's account (a moto server keeps
        accounts apart by the ``x-moto-account-id`` header); otherwise ``iam_client`` serves all.
        ``organizations_for_account`` gives an Organizations client acting as an account: with it
        the caller's organization and SCPs are read (``read_organization``); without it, or when
        that fails, ``report_scp_skipped`` says in ``PrincipalPolicies.skipped`` that SCPs were
        not read (off when the caller supplies them)."""
        self._report_scp = report_scp_skipped
        self._orgs = organizations_for_account
        self._default = iam_client
        self._iam = iam_client
        self._client_for_account = client_for_account

    def _managed(self, arn: str, layer: Layer, notes: list[str]) -> PolicyRef | None:
        try:
            policy = self._iam.get_policy(PolicyArn=arn)["Policy"]
            version = self._iam.get_policy_version(
                PolicyArn=arn, VersionId=policy["DefaultVersionId"]
            )["PolicyVersion"]
        except Exception as exc:  # NoSuchEntity and friends: report, do not guess
            notes.append(f"managed policy {arn} could not be read ({exc})")
            return None
        return PolicyRef(
            f"managed policy {policy['PolicyName']!r}", _doc(version["Document"]), layer, arn
        )

    def policies_for(self, principal: Principal) -> PrincipalPolicies:
        """The principal's identity policies (inline and attached, user groups included), session
        policy slot, permissions boundary and tags, read with the IAM API of the principal's
        account.

        Never raises for IAM errors: a principal or policy that cannot be read becomes a note in
        ``PrincipalPolicies.notes`` (and a boundary that cannot be read is ``boundary_unread``), so
        the decision says what it could not see.
        """
        if self._client_for_account is not None:
            self._iam = self._client_for_account(principal.account_id)
        iam = self._iam
        notes: list[str] = []
        identity: list[PolicyRef] = []
        boundary: tuple[PolicyRef, ...] | None = None
        tags: list[tuple[str, str]] = []
        boundary_skipped: tuple[str, ...] = ()
        unread: str | None = None
        user_id = principal.user_id
        if principal.type == "AssumedRole":
            name = principal.role_name or ""
            try:
                role = iam.get_role(RoleName=name)["Role"]
            except Exception as exc:
                return self._unread(principal, f"role {name} could not be read ({exc})")
            for pname in _pages(iam, "list_role_policies", "PolicyNames", RoleName=name):
                text = iam.get_role_policy(RoleName=name, PolicyName=pname)["PolicyDocument"]
                identity.append(PolicyRef(f"inline policy {pname!r} of role {name}", _doc(text)))
            for att in _pages(iam, "list_attached_role_policies", "AttachedPolicies",
                              RoleName=name):
                ref = self._managed(att["PolicyArn"], "identity", notes)
                if ref is not None:
                    identity.append(ref)
            pb = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
            if pb:
                ref = self._managed(pb, "boundary", notes)
                boundary = (ref,) if ref is not None else ()
                unread = None if ref is not None else pb
            tags.extend((t["Key"], t["Value"]) for t in role.get("Tags", []))
            if user_id is None and principal.session_name:
                user_id = f"{role['RoleId']}:{principal.session_name}"
            if principal.source == "arn" and principal.session_name != CLI_SESSION:
                # an existing session: its Policy/PolicyArns live in STS, which shows none
                boundary_skipped += (
                    f"session policies of {principal.arn}: the IAM API cannot show a session's "
                    "policies (Policy/PolicyArns of AssumeRole); give the role ARN to check a "
                    "session without them, or --session-policy-file with --policy-file",)
        else:
            name = principal.user_name or ""
            try:
                user = iam.get_user(UserName=name)["User"]
            except Exception as exc:
                return self._unread(principal, f"user {name} could not be read ({exc})")
            user_id = user_id or user.get("UserId")
            for pname in _pages(iam, "list_user_policies", "PolicyNames", UserName=name):
                text = iam.get_user_policy(UserName=name, PolicyName=pname)["PolicyDocument"]
                identity.append(PolicyRef(f"inline policy {pname!r} of user {name}", _doc(text)))
            for att in _pages(iam, "list_attached_user_policies", "AttachedPolicies",
                              UserName=name):
                ref = self._managed(att["PolicyArn"], "identity", notes)
                if ref is not None:
                    identity.append(ref)
            for group in _pages(iam, "list_groups_for_user", "Groups", UserName=name):
                gname = group["GroupName"]
                for pname in _pages(iam, "list_group_policies", "PolicyNames", GroupName=gname):
                    text = iam.get_group_policy(GroupName=gname, PolicyName=pname)[
                        "PolicyDocument"]
                    identity.append(
                        PolicyRef(f"inline policy {pname!r} of group {gname}", _doc(text))
                    )
                for att in _pages(iam, "list_attached_group_policies", "AttachedPolicies",
                                  GroupName=gname):
                    ref = self._managed(att["PolicyArn"], "identity", notes)
                    if ref is not None:
                        identity.append(ref)
            user_pb = user.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
            if user_pb:
                ref = self._managed(user_pb, "boundary", notes)
                boundary = (ref,) if ref is not None else ()
                unread = None if ref is not None else user_pb
            else:
                boundary_skipped = self._boundary_unrecorded(iam, name)
            tags.extend((t["Key"], t["Value"]) for t in iam.list_user_tags(UserName=name)["Tags"])
        org, skipped = self._organization(principal)
        return PrincipalPolicies(
            tuple(identity), None, boundary, tuple(tags), user_id,
            tuple(notes) + (org.notes if org is not None else ()),
            scp=None if org is None else org.scp,
            org=None if org is None else org.membership, skipped=skipped + boundary_skipped,
            boundary_unread=unread,
        )

    def _organization(self, principal: Principal) -> tuple[OrgView | None, tuple[str, ...]]:
        """The caller's organization and SCPs, and what could not be read of them."""
        if self._orgs is None:
            return None, (self.SCP_SKIPPED,) if self._report_scp else ()
        try:
            return read_organization(self._orgs, principal.account_id), ()
        except Exception as exc:  # report, never guess: an unread SCP may deny on AWS
            if self._report_scp:
                return None, (f"service control policies: the Organizations API failed ({exc})",)
            # SCPs come from elsewhere, but the org keys are still unknown
            return None, ("organization membership (aws:PrincipalOrgID, "
                          f"aws:PrincipalOrgPaths): the Organizations API failed ({exc})",)

    def _unread(self, principal: Principal, note: str) -> PrincipalPolicies:
        """The principal cannot be read: no identity policies, but the organization still is (an
        identity given as files, ``policy check --policy-file``, is then still judged by them)."""
        org, skipped = self._organization(principal)
        return PrincipalPolicies(
            (), notes=(note,) + (org.notes if org is not None else ()),
            scp=None if org is None else org.scp,
            org=None if org is None else org.membership,
            skipped=(*skipped, f"permissions boundary of {principal.arn}: the principal could "
                               "not be read, so neither could its boundary"))

    PROBE_BOUNDARY = "rdsiam:probe:not-a-policy-arn"

    @staticmethod
    def _boundary_unrecorded(iam: Any, user_name: str) -> tuple[str, ...]:
        """GetUser shows no boundary: is that true, or does the server drop user boundaries?

        moto without our patches drops ``CreateUser(PermissionsBoundary=…)`` and has no
        ``PutUserPermissionsBoundary``; a patched server (and AWS) refuses an ARN that is not a
        policy ARN with ``InvalidParameterValue`` before writing anything, so that probe is safe.
        """
        try:
            iam.put_user_permissions_boundary(UserName=user_name,
                                              PermissionsBoundary=IamApiPolicySource.PROBE_BOUNDARY)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code == "InvalidParameterValue":
                return ()
            answer = f"{code}" if code else type(exc).__name__
        else:  # cannot happen on a server that validates; undo and report
            iam.delete_user_permissions_boundary(UserName=user_name)
            answer = "accepted a non-policy ARN"
        return (f"user permissions boundary: the server does not record user boundaries "
                f"(PutUserPermissionsBoundary probe: {answer}); moto without rdsiam-emulator's "
                "patches drops CreateUser(PermissionsBoundary=…) — use the standalone emulator's "
                "moto server or --boundary-file",)


def read_organization(orgs_for: Callable[[str], Any], account_id: str) -> OrgView | None:
    """The organization, path and SCP levels of ``account_id`` through the Organizations API (the
    same rules as ``organizations.moto_org_for``); None when the account is in no organization.
    Other API errors propagate (the caller reports SCPs as skipped)."""
    member = orgs_for(account_id)
    try:
        org = member.describe_organization()["Organization"]
    except member.exceptions.AWSOrganizationsNotInUseException:
        return None
    mgmt = orgs_for(org["MasterAccountId"])
    root = mgmt.list_roots()["Roots"][0]
    chain: list[dict[str, Any]] = []
    child = account_id
    for _ in range(10):  # AWS allows five OU levels below the root
        parent = mgmt.list_parents(ChildId=child)["Parents"][0]
        chain.append(parent)
        if parent["Type"] == "ROOT":
            break
        child = parent["Id"]
    chain.reverse()
    membership = OrgMembership(org["Id"], "/".join([org["Id"], *[p["Id"] for p in chain]]) + "/",
                               account_id == org["MasterAccountId"])
    if membership.management_account:
        return OrgView(membership, None, (
            f"account {account_id} is the management account of {org['Id']}: SCPs do not "
            "restrict it",))
    if not any(t.get("Type") == SCP and t.get("Status") == "ENABLED"
               for t in root.get("PolicyTypes", [])):
        return OrgView(membership, None, (
            f"the SERVICE_CONTROL_POLICY type is not enabled in root {root['Id']}: SCPs are "
            "not in effect (organizations enable_policy_type)",))
    targets: list[tuple[str, str]] = []
    for parent in chain:
        if parent["Type"] == "ROOT":
            targets.append((parent["Id"], f"root {parent['Id']}"))
        else:
            name = mgmt.describe_organizational_unit(OrganizationalUnitId=parent["Id"])[
                "OrganizationalUnit"]["Name"]
            targets.append((parent["Id"], f"OU {name!r} ({parent['Id']})"))
    targets.append((account_id, f"account {account_id}"))
    levels: list[ScpLevel] = []
    for target_id, label in targets:
        refs: list[PolicyRef] = []
        for summary in _pages(mgmt, "list_policies_for_target", "Policies", TargetId=target_id,
                              Filter=SCP):
            policy = mgmt.describe_policy(PolicyId=summary["Id"])["Policy"]
            refs.append(scp_ref(summary["Name"], summary["Id"], label, policy["Content"]))
        levels.append(ScpLevel(label, tuple(refs)))
    return OrgView(membership, tuple(levels))


class StaticPolicySource:
    """Fixed documents (``policy check --policy-file``): no IAM state at all."""

    def __init__(
        self,
        identity: tuple[PolicyRef, ...],
        session: tuple[PolicyRef, ...] | None = None,
        boundary: tuple[PolicyRef, ...] | None = None,
        tags: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._policies = PrincipalPolicies(identity, session, boundary, tags)

    def policies_for(self, principal: Principal) -> PrincipalPolicies:
        """The fixed documents given at construction, whoever the principal is."""
        return self._policies


def principal_for_access_key(
    iam_client: Any, sts_client: Any, access_key_id: str
) -> Principal | None:
    """The IAM user behind a long-term key, through the API (``token explain`` in another process).

    ``GetAccessKeyLastUsed`` names the user and ``GetAccessKeyInfo`` the account. Temporary (ASIA…)
    keys cannot be resolved this way: STS exposes no session lookup, so this returns None for them.
    """
    try:
        user_name = iam_client.get_access_key_last_used(AccessKeyId=access_key_id).get("UserName")
        account = sts_client.get_access_key_info(AccessKeyId=access_key_id)["Account"]
    except Exception:
        return None
    if not user_name:
        return None
    arn = f"arn:aws:iam::{account}:user/{user_name}"
    return Principal("User", arn, account, user_name=user_name, source="iam-api")
