"""The table of IAM decisions: each case is built through boto3 against moto, decided end to end.

Each case creates an RDS instance (unique DbiResourceId) and a principal with its policies, mints
a real token with boto3's ``generate_db_auth_token`` and runs ``verify_token`` with
``MotoCredentials`` and ``IamAuthorizer``. ``why`` says why IAM decides as it does. Placeholders
in policies: ``<RID>`` the instance's DbiResourceId, ``<IID>`` its identifier, ``<ACCT>`` the
account, ``<REGION>`` the region, ``<UID>`` the IAM user's unique id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import botocore.session
import pytest
from moto import mock_aws

from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.verifier import VerifyResult, verify_token
from rdsiam_emulator.aws import MotoCredentials
from rdsiam_emulator.aws import patches as moto_patches
from rdsiam_emulator.clock import SystemClock
from rdsiam_emulator.iam import IamAuthorizer

ACCT = "123456789012"
OTHER = "210987654321"
REGION = "us-east-1"
ALLOW = "allow"
DENIED = "not_authorized"
DENY = "explicit_deny"
CONNECT = "rds-db:connect"
EXACT = "arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/app"


def stmt(effect: str = "Allow", action: Any = CONNECT, resource: Any = EXACT, **extra: Any) -> dict:
    out: dict[str, Any] = {"Effect": effect}
    if "NotAction" not in extra:
        out["Action"] = action
    if "NotResource" not in extra:
        out["Resource"] = resource
    out.update(extra)
    return out


def doc(*statements: dict, version: str = "2012-10-17") -> dict:
    return {"Version": version, "Statement": list(statements)}


ALLOW_EXACT = doc(stmt(Sid="Connect"))


@dataclass(frozen=True)
class Case:
    id: str
    why: str
    expect: str
    principal: str = "user"
    """user | role | web | saml | session-token | federation | user-other-account |
    role-other-account | user-moto-account"""
    db_user: str = "app"
    user_policies: tuple[Any, ...] = ()
    user_managed: tuple[Any, ...] = ()
    aws_managed: tuple[str, ...] = ()
    group_policies: tuple[Any, ...] = ()
    group_managed: tuple[Any, ...] = ()
    leave_group: bool = False
    role_policies: tuple[Any, ...] = ()
    role_managed: tuple[Any, ...] = ()
    boundary: Any = None
    user_boundary: Any = None
    """The IAM user's permissions boundary (stored through moto_patches)."""
    user_boundary_via: str = "create"
    """create (CreateUser PermissionsBoundary) | put (PutUserPermissionsBoundary) | put-delete"""
    session_policy: Any = None
    session_policy_arns: tuple[Any, ...] = ()
    user_tags: dict[str, str] = field(default_factory=dict)
    role_tags: dict[str, str] = field(default_factory=dict)
    session_tags: dict[str, str] = field(default_factory=dict)
    mfa: bool = False
    inactive_key: bool = False
    managed_versions: tuple[Any, ...] = ()
    """Extra versions for the first user-managed policy: (document, set_as_default)."""
    global_keys: str = "documented"
    """The authorizer's reading of the request context (documented | none)."""
    org: str | None = None
    """member | management: the principal and the instance live in an AWS Organization's member
    account (root → OU 'Prod' → account) or in its management account."""
    scp: tuple[tuple[str, Any], ...] = ()
    """(level, document): SCPs attached at root | ou | account."""
    detach_full_access: tuple[str, ...] = ()
    """Levels from which the default FullAWSAccess SCP is detached."""
    scp_enabled: bool = True
    delete_user_policy: bool = False
    detach_managed: bool = False
    hint: str | None = None
    detail: str | None = None


def _fill(value: Any, subst: dict[str, str]) -> Any:
    text = value if isinstance(value, str) else json.dumps(value)
    for key, replacement in subst.items():
        text = text.replace(key, replacement)
    return text


@dataclass
class World:
    iam: Any
    sts: Any
    rds: Any
    endpoint: Endpoint
    subst: dict[str, str]


_BOTOCORE = botocore.session.get_session()  # one loader cache: clients are cheap to create


def client(service: str, creds: dict[str, str] | None = None) -> Any:
    """A client; the account moto uses comes from MOTO_ACCOUNT_ID at request time, or the key."""
    if creds is None:
        creds = {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
    return _BOTOCORE.create_client(
        service, region_name=REGION, aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
    )


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    yield


def _create_instance(rds: Any, account: str) -> Endpoint:
    with mock.patch.dict(os.environ, {"MOTO_ACCOUNT_ID": account}):
        inst = rds.create_db_instance(
            DBInstanceIdentifier="mydb", Engine="postgres", DBInstanceClass="db.t3.micro",
            MasterUsername="master", MasterUserPassword="secret-password-1",
            EnableIAMDatabaseAuthentication=True,
        )["DBInstance"]
    return Endpoint(
        host=inst["Endpoint"]["Address"], port=inst["Endpoint"]["Port"], region=REGION,
        account_id=account, resource_id=inst["DbiResourceId"], instance_id="mydb",
    )


def _trust() -> str:
    return json.dumps(doc({"Effect": "Allow", "Principal": {"AWS": "*"},
                           "Action": "sts:AssumeRole"}))


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _organization(case: Case) -> tuple[str, str]:
    """Management account ACCT → root → OU 'Prod' → a member account; SCPs attached as the case
    says. Returns (the account the principal and the instance live in, the organization id)."""
    org = client("organizations")
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    root = org.list_roots()["Roots"][0]["Id"]
    if case.scp_enabled:
        org.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    ou = org.create_organizational_unit(ParentId=root, Name="Prod")["OrganizationalUnit"]["Id"]
    member = org.create_account(AccountName="app", Email="app@example.com")[
        "CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=member, SourceParentId=root, DestinationParentId=ou)
    targets = {"root": root, "ou": ou, "account": member}
    for i, (level, document) in enumerate(case.scp):
        policy_id = org.create_policy(
            Name=f"scp-{level}-{i}", Description="case", Type="SERVICE_CONTROL_POLICY",
            Content=_fill(document, {"<REGION>": REGION}))["Policy"]["PolicySummary"]["Id"]
        org.attach_policy(PolicyId=policy_id, TargetId=targets[level])
    for level in case.detach_full_access:
        org.detach_policy(PolicyId="p-FullAWSAccess", TargetId=targets[level])
    return (member if case.org == "member" else ACCT), org_id


def run_case(case: Case) -> VerifyResult:
    account = {"user-other-account": OTHER, "role-other-account": OTHER,
               "user-moto-account": "333333333333"}.get(case.principal, ACCT)
    moto_patches.install()  # before anything is issued: sessions and user boundaries are recorded
    org_id = ""
    if case.org is not None:
        account, org_id = _organization(case)
    instance_account = (
        OTHER if case.principal in ("role-other-account", "user-cross-account") else account
    )
    user_account = (
        ACCT if case.principal in ("role-other-account", "user-cross-account") else account
    )
    iam, rds = client("iam"), client("rds")
    endpoint = _create_instance(rds, instance_account)
    subst = {"<RID>": endpoint.resource_id or "", "<IID>": "mydb", "<ACCT>": instance_account,
             "<REGION>": REGION, "<ORG>": org_id}
    env = {"MOTO_ACCOUNT_ID": user_account} if user_account != ACCT else {}
    with mock.patch.dict(os.environ, env):
        user_kwargs: dict[str, Any] = {"UserName": "alice", "Tags": _tags(case.user_tags)}
        boundary_arn = None
        if case.user_boundary is not None:
            boundary_arn = iam.create_policy(
                PolicyName="user-boundary", PolicyDocument=_fill(case.user_boundary, subst),
            )["Policy"]["Arn"]
            if case.user_boundary_via == "create":
                user_kwargs["PermissionsBoundary"] = boundary_arn
        user = iam.create_user(**user_kwargs)["User"]
        if boundary_arn is not None and case.user_boundary_via != "create":
            iam.put_user_permissions_boundary(UserName="alice", PermissionsBoundary=boundary_arn)
            if case.user_boundary_via == "put-delete":
                iam.delete_user_permissions_boundary(UserName="alice")
        subst["<UID>"] = user["UserId"]
        key = iam.create_access_key(UserName="alice")["AccessKey"]
        if case.inactive_key:
            iam.update_access_key(UserName="alice", AccessKeyId=key["AccessKeyId"],
                                  Status="Inactive")
        for i, policy in enumerate(case.user_policies):
            iam.put_user_policy(UserName="alice", PolicyName=f"inline{i}",
                                PolicyDocument=_fill(policy, subst))
        if case.delete_user_policy:
            iam.delete_user_policy(UserName="alice", PolicyName="inline0")
        for i, policy in enumerate(case.user_managed):
            arn = iam.create_policy(PolicyName=f"managed{i}",
                                    PolicyDocument=_fill(policy, subst))["Policy"]["Arn"]
            if i == 0:
                for version, default in case.managed_versions:
                    iam.create_policy_version(PolicyArn=arn, PolicyDocument=_fill(version, subst),
                                              SetAsDefault=default)
            iam.attach_user_policy(UserName="alice", PolicyArn=arn)
            if case.detach_managed:
                iam.detach_user_policy(UserName="alice", PolicyArn=arn)
        for name in case.aws_managed:
            iam.attach_user_policy(UserName="alice", PolicyArn=f"arn:aws:iam::aws:policy/{name}")
        if case.group_policies or case.group_managed:
            iam.create_group(GroupName="devs")
            iam.create_group(GroupName="others")
            iam.add_user_to_group(GroupName="devs", UserName="alice")
            iam.add_user_to_group(GroupName="others", UserName="alice")
            for i, policy in enumerate(case.group_policies):
                iam.put_group_policy(GroupName="devs", PolicyName=f"g{i}",
                                     PolicyDocument=_fill(policy, subst))
            for i, policy in enumerate(case.group_managed):
                arn = iam.create_policy(PolicyName=f"gm{i}",
                                        PolicyDocument=_fill(policy, subst))["Policy"]["Arn"]
                iam.attach_group_policy(GroupName="devs", PolicyArn=arn)
            if case.leave_group:
                iam.remove_user_from_group(GroupName="devs", UserName="alice")
    creds: dict[str, str] = key
    user_sts = client("sts", key)
    if case.principal in ("role", "web", "saml", "role-other-account"):
        creds = _assume(case, user_sts, instance_account, subst)
    elif case.principal == "session-token":
        kwargs: dict[str, Any] = {"DurationSeconds": 3600}
        if case.mfa:
            kwargs.update(SerialNumber=f"arn:aws:iam::{ACCT}:mfa/alice", TokenCode="123456")
        creds = user_sts.get_session_token(**kwargs)["Credentials"]
    elif case.principal == "federation":
        kwargs = {"Name": "fed-alice"}
        if case.session_policy is not None:
            kwargs["Policy"] = _fill(case.session_policy, subst)
        creds = user_sts.get_federation_token(**kwargs)["Credentials"]
    db_user = _fill(case.db_user, subst)
    token = client("rds", creds).generate_db_auth_token(
        DBHostname=endpoint.host, Port=endpoint.port, DBUsername=db_user, Region=REGION,
    )
    return verify_token(
        token, endpoint=endpoint, db_user=db_user, credentials=MotoCredentials(),
        now=SystemClock().now(),
        authorizer=IamAuthorizer(global_keys="none" if case.global_keys == "none" else
                                 "documented"),
    )


def _assume(case: Case, user_sts: Any, account: str, subst: dict[str, str]) -> dict[str, str]:
    env = {"MOTO_ACCOUNT_ID": account} if account != ACCT else {}
    with mock.patch.dict(os.environ, env):
        iam = client("iam")
        kwargs: dict[str, Any] = {"RoleName": "app-role", "AssumeRolePolicyDocument": _trust(),
                                  "Tags": _tags(case.role_tags)}
        if case.boundary is not None:
            arn = iam.create_policy(PolicyName="boundary",
                                    PolicyDocument=_fill(case.boundary, subst))["Policy"]["Arn"]
            kwargs["PermissionsBoundary"] = arn
        role_arn = iam.create_role(**kwargs)["Role"]["Arn"]
        for i, policy in enumerate(case.role_policies):
            iam.put_role_policy(RoleName="app-role", PolicyName=f"r{i}",
                                PolicyDocument=_fill(policy, subst))
        for i, policy in enumerate(case.role_managed):
            arn = iam.create_policy(PolicyName=f"rm{i}",
                                    PolicyDocument=_fill(policy, subst))["Policy"]["Arn"]
            iam.attach_role_policy(RoleName="app-role", PolicyArn=arn)
        session_arns = []
        for i, policy in enumerate(case.session_policy_arns):
            arn = iam.create_policy(PolicyName=f"sess{i}",
                                    PolicyDocument=_fill(policy, subst))["Policy"]["Arn"]
            session_arns.append({"arn": arn})
    params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": "app-session"}
    if case.session_policy is not None:
        params["Policy"] = _fill(case.session_policy, subst)
    if session_arns:
        params["PolicyArns"] = session_arns
    if case.principal == "web":
        anon = client("sts")
        return anon.assume_role_with_web_identity(WebIdentityToken="x" * 20, **params)[
            "Credentials"]
    if case.principal == "saml":
        return _assume_saml(role_arn)
    if case.session_tags:
        params["Tags"] = _tags(case.session_tags)
    if case.mfa:
        params.update(SerialNumber=f"arn:aws:iam::{ACCT}:mfa/alice", TokenCode="123456")
    return user_sts.assume_role(**params)["Credentials"]


def _assume_saml(role_arn: str) -> dict[str, str]:
    import base64

    provider = f"arn:aws:iam::{ACCT}:saml-provider/idp"
    assertion = f"""<?xml version="1.0"?>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"
  xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">
 <saml:Assertion><saml:AttributeStatement>
  <saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/Role">
   <saml:AttributeValue>{role_arn},{provider}</saml:AttributeValue></saml:Attribute>
  <saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/RoleSessionName">
   <saml:AttributeValue>saml-alice</saml:AttributeValue></saml:Attribute>
 </saml:AttributeStatement></saml:Assertion>
</samlp:Response>"""
    sts = client("sts")
    return sts.assume_role_with_saml(
        RoleArn=role_arn, PrincipalArn=provider,
        SAMLAssertion=base64.b64encode(assertion.encode()).decode(),
    )["Credentials"]


# --------------------------------------------------------------------------------------- the table

ANY_DBUSER = "arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/*"
ROLE_ARN = "arn:aws:iam::<ACCT>:role/app-role"
SRC_IP = {"aws:SourceIp": "10.0.0.0/8"}

CASES: list[Case] = [
    # ---- users: inline, wildcards, action spelling
    Case("user-inline-exact", "an inline Allow on the exact dbuser ARN", ALLOW,
         user_policies=(ALLOW_EXACT,)),
    Case("user-no-policy", "no statement allows: implicit deny", DENIED,
         hint="attach a policy to user alice"),
    Case("user-any-dbuser", "dbuser:<RID>/* covers every DB user of the instance", ALLOW,
         user_policies=(doc(stmt(resource=ANY_DBUSER)),)),
    Case("user-any-instance", "dbuser:*/* covers every instance", ALLOW,
         user_policies=(doc(stmt(resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:*/*")),)),
    Case("user-resource-star", "Resource * matches every ARN", ALLOW,
         user_policies=(doc(stmt(resource="*")),)),
    Case("user-action-service-wildcard", "rds-db:* covers rds-db:connect", ALLOW,
         user_policies=(doc(stmt(action="rds-db:*")),)),
    Case("user-admin-inline", "Action * Resource * (administrator) allows every DB user", ALLOW,
         user_policies=(doc(stmt(action="*", resource="*")),)),
    Case("user-action-case", "actions compare case-insensitively", ALLOW,
         user_policies=(doc(stmt(action="RDS-DB:Connect")),)),
    Case("user-action-list", "one entry of an Action list is enough", ALLOW,
         user_policies=(doc(stmt(action=["s3:GetObject", "rds-db:connect"])),)),
    Case("user-resource-list", "one entry of a Resource list is enough", ALLOW,
         user_policies=(doc(stmt(resource=["arn:aws:s3:::bucket", EXACT])),)),
    Case("user-other-dbuser", "the policy names another DB user", DENIED,
         user_policies=(doc(stmt(resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/bob")),)),
    Case("user-other-instance", "the policy names another instance's resource id", DENIED,
         user_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:db-AAAAAAAAAAAAAAAAAAAAAAAAAA/app")),)),
    Case("user-action-star-suffix", "rds-db:conn* matches connect", ALLOW,
         user_policies=(doc(stmt(action="rds-db:conn*")),)),
    Case("user-action-question", "? matches exactly one character (connec?)", ALLOW,
         user_policies=(doc(stmt(action="rds-db:connec?")),)),
    Case("user-action-question-too-long", "connect? needs one more character", DENIED,
         user_policies=(doc(stmt(action="rds-db:connect?")),)),
    Case("user-dbuser-question", "ap? matches the DB user app", ALLOW,
         user_policies=(doc(stmt(resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/ap?")),)),
    Case("user-dbuser-question-short", "a? is two characters, app three", DENIED,
         user_policies=(doc(stmt(resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/a?")),)),
    Case("user-region-wildcard", "a * region segment matches any region", ALLOW,
         user_policies=(doc(stmt(resource="arn:aws:rds-db:*:<ACCT>:dbuser:<RID>/app")),)),
    Case("user-region-prefix", "us-* matches us-east-1 within the region segment", ALLOW,
         user_policies=(doc(stmt(resource="arn:aws:rds-db:us-*:<ACCT>:dbuser:<RID>/app")),)),
    Case("user-segment-wildcard-no-cross", "a * in the region segment cannot swallow the account",
         DENIED, user_policies=(doc(stmt(resource="arn:aws:rds-db:*:dbuser:<RID>/app")),)),
    Case("user-dbuser-case", "DB user names in the ARN are case-sensitive", DENIED,
         user_policies=(doc(stmt(resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/APP")),),
         hint="case-sensitive"),
    Case("user-inactive-key", "an Inactive key is refused before any policy", "inactive_access_key",
         user_policies=(ALLOW_EXACT,), inactive_key=True),
    Case("user-deleted-inline", "a deleted inline policy no longer allows", DENIED,
         user_policies=(ALLOW_EXACT,), delete_user_policy=True),
    # ---- managed policies
    Case("user-managed", "a customer managed policy attached to the user", ALLOW,
         user_managed=(ALLOW_EXACT,)),
    Case("user-managed-detached", "a detached managed policy no longer applies", DENIED,
         user_managed=(ALLOW_EXACT,), detach_managed=True),
    Case("managed-non-default-version", "only the default version counts: v2 is not default",
         DENIED, user_managed=(doc(stmt(resource="arn:aws:s3:::x")),),
         managed_versions=((ALLOW_EXACT, False),)),
    Case("managed-default-version", "v2 set as default allows", ALLOW,
         user_managed=(doc(stmt(resource="arn:aws:s3:::x")),),
         managed_versions=((ALLOW_EXACT, True),)),
    Case("aws-managed-admin", "AWS managed AdministratorAccess is Action * Resource *", ALLOW,
         aws_managed=("AdministratorAccess",)),
    Case("aws-managed-readonly", "ReadOnlyAccess grants no rds-db:connect", DENIED,
         aws_managed=("ReadOnlyAccess",)),
    Case("aws-managed-admin-explicit-deny", "an explicit Deny beats AdministratorAccess", DENY,
         aws_managed=("AdministratorAccess",),
         user_policies=(doc(stmt("Deny", Sid="NoDb", action="rds-db:*", resource="*")),),
         detail="NoDb"),
    # ---- groups
    Case("group-inline", "a group's inline policy applies to its members", ALLOW,
         group_policies=(ALLOW_EXACT,)),
    Case("group-managed", "a group's managed policy applies to its members", ALLOW,
         group_managed=(ALLOW_EXACT,)),
    Case("group-deny-beats-user-allow", "a Deny in a group policy overrides the user's Allow", DENY,
         user_policies=(ALLOW_EXACT,), group_policies=(doc(stmt("Deny", Sid="GroupDeny")),),
         detail="GroupDeny"),
    Case("group-left", "after leaving the group its policy no longer applies", DENIED,
         group_policies=(ALLOW_EXACT,), leave_group=True),
    # ---- Deny precedence
    Case("deny-same-policy", "Allow and Deny on the same ARN: Deny wins", DENY,
         user_policies=(doc(stmt(Sid="A"), stmt("Deny", Sid="D")),), detail="'D'"),
    Case("deny-specific-user", "Allow on every DB user, Deny on app", DENY,
         user_policies=(doc(stmt(resource=ANY_DBUSER), stmt("Deny")),)),
    Case("deny-other-user", "a Deny for bob does not touch app", ALLOW,
         user_policies=(doc(stmt(resource=ANY_DBUSER), stmt(
             "Deny", resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/bob")),)),
    Case("deny-in-managed", "a Deny in a managed policy overrides an inline Allow", DENY,
         user_policies=(ALLOW_EXACT,), user_managed=(doc(stmt("Deny", resource="*")),)),
    Case("deny-not-resource", "Deny with NotResource bob denies everything except bob", DENY,
         user_policies=(ALLOW_EXACT,), user_managed=(doc(stmt(
             "Deny", NotResource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/bob")),)),
    Case("deny-condition-not-met", "a Deny whose condition fails does not apply", ALLOW,
         user_policies=(ALLOW_EXACT, doc(stmt("Deny", Condition={
             "StringEquals": {"aws:RequestedRegion": "eu-west-1"}}))),),
    Case("deny-not-action", "Deny NotAction rds-db:connect excludes connect", ALLOW,
         user_policies=(ALLOW_EXACT, doc(stmt("Deny", NotAction="rds-db:connect",
                                              resource="*"))),),
    # ---- Not*
    Case("allow-not-action", "Allow NotAction s3:* covers rds-db:connect", ALLOW,
         user_policies=(doc(stmt(NotAction="s3:*", resource="*")),)),
    Case("allow-not-action-excludes", "Allow NotAction rds-db:* excludes it", DENIED,
         user_policies=(doc(stmt(NotAction="rds-db:*", resource="*")),)),
    Case("allow-not-resource", "Allow NotResource bob covers app", ALLOW,
         user_policies=(doc(stmt(NotResource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/bob")),)),
    Case("allow-not-resource-excludes", "Allow NotResource <RID>/* excludes app", DENIED,
         user_policies=(doc(stmt(NotResource=ANY_DBUSER)),)),
    # ---- policy variables
    Case("var-username", "${aws:username} resolves to alice", ALLOW, db_user="alice",
         user_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:username}")),)),
    Case("var-username-other", "${aws:username} is alice, not app", DENIED,
         user_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:username}")),)),
    Case("var-principal-tag", "${aws:PrincipalTag/dbuser} is the user's tag value", ALLOW,
         user_tags={"dbuser": "app"}, user_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:PrincipalTag/dbuser}")),)),
    Case("var-principal-tag-missing", "an absent tag leaves the variable unset: no match", DENIED,
         user_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:PrincipalTag/dbuser}")),)),
    Case("var-default-value", "${aws:PrincipalTag/dbuser, 'app'} falls back to app", ALLOW,
         user_policies=(doc(stmt(resource=(
             "arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:PrincipalTag/dbuser, 'app'}"))),)),
    Case("var-old-version", "Version 2008-10-17 keeps ${…} literally (moto refuses such "
         "identity policies, so a session policy carries it)", DENIED, principal="role",
         role_tags={"dbuser": "app"}, role_policies=(doc(stmt(resource=ANY_DBUSER)),),
         session_policy=doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:PrincipalTag/dbuser}"),
             version="2008-10-17")),
    Case("var-new-version-session", "the same session policy in 2012-10-17 resolves the tag",
         ALLOW, principal="role", role_tags={"dbuser": "app"},
         role_policies=(doc(stmt(resource=ANY_DBUSER)),), session_policy=doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:PrincipalTag/dbuser}"))),
    Case("var-star-literal", "${*} is a literal *, not a wildcard", DENIED,
         user_policies=(doc(stmt(resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${*}")),)),
    Case("var-userid", "${aws:userid} is the user's unique id", ALLOW, db_user="u_<UID>",
         user_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/u_${aws:userid}")),)),
    Case("var-username-role", "role sessions have no aws:username", DENIED, principal="role",
         db_user="alice", role_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:username}")),)),
    Case("var-role-tag", "a role's tags are principal tags of its sessions", ALLOW,
         principal="role", role_tags={"dbuser": "app"}, role_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:PrincipalTag/dbuser}")),)),
    Case("var-session-tag-overrides", "session tags override the role's tag of the same key",
         ALLOW, principal="role", role_tags={"dbuser": "bob"}, session_tags={"dbuser": "app"},
         role_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/${aws:PrincipalTag/dbuser}")),)),
    # ---- conditions
    Case("cond-secure-transport", "IAM logins are TLS: aws:SecureTransport is true", ALLOW,
         user_policies=(doc(stmt(Condition={"Bool": {"aws:SecureTransport": "true"}})),)),
    Case("cond-deny-insecure", "a Deny on SecureTransport false never applies", ALLOW,
         user_policies=(ALLOW_EXACT, doc(stmt("Deny", resource="*", Condition={
             "Bool": {"aws:SecureTransport": "false"}}))),),
    Case("cond-source-ip-allow", "RDS supplies no aws:SourceIp: IpAddress fails", DENIED,
         user_policies=(doc(stmt(Condition={"IpAddress": SRC_IP})),)),
    Case("cond-source-ip-deny", "NotIpAddress on an absent key holds: the Deny applies", DENY,
         user_policies=(ALLOW_EXACT, doc(stmt("Deny", resource="*", Condition={
             "NotIpAddress": SRC_IP}))),),
    Case("cond-source-ip-ifexists", "IpAddressIfExists holds when the key is absent", ALLOW,
         user_policies=(doc(stmt(Condition={"IpAddressIfExists": SRC_IP})),)),
    Case("cond-source-vpce", "aws:SourceVpce is not supplied by RDS", DENIED,
         user_policies=(doc(stmt(Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}})),)),
    Case("cond-user-agent", "aws:UserAgent is not supplied by RDS", DENIED,
         user_policies=(doc(stmt(Condition={"StringLike": {"aws:UserAgent": "*"}})),)),
    Case("cond-tag-equals", "StringEquals on the principal tag", ALLOW, user_tags={"team": "db"},
         user_policies=(doc(stmt(Condition={"StringEquals": {"aws:PrincipalTag/team": "db"}})),)),
    Case("cond-tag-wrong", "the tag value differs", DENIED, user_tags={"team": "web"},
         user_policies=(doc(stmt(Condition={"StringEquals": {"aws:PrincipalTag/team": "db"}})),)),
    Case("cond-tag-ignore-case", "StringEqualsIgnoreCase ignores case", ALLOW,
         user_tags={"team": "DB"}, user_policies=(doc(stmt(Condition={
             "StringEqualsIgnoreCase": {"aws:PrincipalTag/team": "db"}})),)),
    Case("cond-key-name-case", "condition key names are case-insensitive", ALLOW,
         user_tags={"team": "db"}, user_policies=(doc(stmt(Condition={
             "StringEquals": {"AWS:PRINCIPALTAG/Team": "db"}})),)),
    Case("cond-principal-arn-like", "StringLike on aws:PrincipalArn", ALLOW,
         user_policies=(doc(stmt(Condition={
             "StringLike": {"aws:PrincipalArn": "arn:aws:iam::<ACCT>:user/al*"}})),)),
    Case("cond-not-like-deny", "Deny unless the principal is admin-*: alice is denied", DENY,
         user_policies=(ALLOW_EXACT, doc(stmt("Deny", resource="*", Condition={
             "StringNotLike": {"aws:PrincipalArn": "arn:aws:iam::<ACCT>:user/admin-*"}}))),),
    Case("cond-arn-like-role", "for role sessions aws:PrincipalArn is the role ARN", ALLOW,
         principal="role", role_policies=(doc(stmt(Condition={
             "ArnLike": {"aws:PrincipalArn": ROLE_ARN}})),)),
    Case("cond-arn-equals-session-arn", "aws:PrincipalArn is not the assumed-role ARN", DENIED,
         principal="role", role_policies=(doc(stmt(Condition={"ArnEquals": {
             "aws:PrincipalArn": "arn:aws:sts::<ACCT>:assumed-role/app-role/app-session"}})),)),
    Case("cond-date-before", "aws:CurrentTime is before 2099", ALLOW,
         user_policies=(doc(stmt(Condition={
             "DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}})),)),
    Case("cond-date-after", "aws:CurrentTime is not after 2099", DENIED,
         user_policies=(doc(stmt(Condition={
             "DateGreaterThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}})),)),
    Case("cond-epoch-numeric", "aws:EpochTime compared numerically", ALLOW,
         user_policies=(doc(stmt(Condition={
             "NumericLessThan": {"aws:EpochTime": "4102444800"}})),)),
    Case("cond-numeric-garbage", "a non-numeric value never matches", DENIED,
         user_policies=(doc(stmt(Condition={"NumericLessThan": {"aws:EpochTime": "soon"}})),)),
    Case("cond-null-token-issue-user", "long-term keys have no aws:TokenIssueTime", ALLOW,
         user_policies=(doc(stmt(Condition={"Null": {"aws:TokenIssueTime": "true"}})),)),
    Case("cond-null-token-issue-role", "STS sessions do have aws:TokenIssueTime", DENIED,
         principal="role", role_policies=(doc(stmt(Condition={
             "Null": {"aws:TokenIssueTime": "true"}})),)),
    Case("cond-mfa-deny-ifexists", "BoolIfExists MFA false: absent for long-term keys → Deny",
         DENY, user_policies=(ALLOW_EXACT, doc(stmt("Deny", resource="*", Condition={
             "BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}))),),
    Case("cond-mfa-session-token", "GetSessionToken with an MFA code sets MFA true", ALLOW,
         principal="session-token", mfa=True, user_policies=(doc(stmt(Condition={
             "Bool": {"aws:MultiFactorAuthPresent": "true"}})),)),
    Case("cond-mfa-assume-role", "AssumeRole with an MFA code: the session has MFA", ALLOW,
         principal="role", mfa=True, role_policies=(doc(stmt(Condition={
             "Bool": {"aws:MultiFactorAuthPresent": "true"}})),)),
    Case("cond-mfa-assume-role-without", "AssumeRole without MFA: the key is false", DENIED,
         principal="role", role_policies=(doc(stmt(Condition={
             "Bool": {"aws:MultiFactorAuthPresent": "true"}})),)),
    Case("cond-requested-region", "aws:RequestedRegion is the instance region", ALLOW,
         user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:RequestedRegion": "<REGION>"}})),)),
    Case("cond-requested-region-other", "the instance is not in eu-west-1", DENIED,
         user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:RequestedRegion": "eu-west-1"}})),)),
    Case("cond-for-all-values", "ForAllValues: the (single) tag value is in the list", ALLOW,
         user_tags={"team": "db"}, user_policies=(doc(stmt(Condition={
             "ForAllValues:StringEquals": {"aws:PrincipalTag/team": ["db", "ops"]}})),)),
    Case("cond-for-all-values-mismatch", "ForAllValues: the tag value is not in the list", DENIED,
         user_tags={"team": "web"}, user_policies=(doc(stmt(Condition={
             "ForAllValues:StringEquals": {"aws:PrincipalTag/team": ["db", "ops"]}})),)),
    Case("cond-for-all-values-absent", "ForAllValues holds on an absent key (IAM's gotcha)",
         ALLOW, user_policies=(doc(stmt(Condition={
             "ForAllValues:StringEquals": {"aws:PrincipalTag/team": ["db"]}})),)),
    Case("cond-for-any-value-absent", "ForAnyValue fails on an absent key", DENIED,
         user_policies=(doc(stmt(Condition={
             "ForAnyValue:StringEquals": {"aws:PrincipalTag/team": ["db"]}})),)),
    Case("cond-for-any-value", "ForAnyValue: the tag value matches a pattern", ALLOW,
         user_tags={"team": "db-admins"}, user_policies=(doc(stmt(Condition={
             "ForAnyValue:StringLike": {"aws:PrincipalTag/team": ["web*", "db-*"]}})),)),
    Case("cond-principal-type", "an IAM user's aws:PrincipalType is User", DENIED,
         user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:PrincipalType": "AssumedRole"}})),)),
    Case("cond-principal-account", "aws:PrincipalAccount is the caller's account", ALLOW,
         user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:PrincipalAccount": "<ACCT>"}})),)),
    Case("cond-two-keys-and", "two keys under one operator must both hold", DENIED,
         user_tags={"team": "db"}, user_policies=(doc(stmt(Condition={"StringEquals": {
             "aws:PrincipalTag/team": "db", "aws:RequestedRegion": "eu-west-1"}})),)),
    Case("cond-values-or", "several values for one key are alternatives", ALLOW,
         user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:RequestedRegion": ["eu-west-1", "<REGION>"]}})),)),
    Case("cond-userid-role", "a role session's aws:userid is ROLEID:session", ALLOW,
         principal="role", role_policies=(doc(stmt(Condition={
             "StringLike": {"aws:userid": "AROA*:app-session"}})),)),
    Case("cond-username-var-in-condition", "variables work in condition values", ALLOW,
         user_tags={"owner": "alice"}, user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:PrincipalTag/owner": "${aws:username}"}})),)),
    # ---- roles and sessions
    Case("role-inline", "a role's inline policy applies to its sessions", ALLOW,
         principal="role", role_policies=(ALLOW_EXACT,)),
    Case("role-managed", "a role's managed policy applies to its sessions", ALLOW,
         principal="role", role_managed=(ALLOW_EXACT,)),
    Case("role-no-policy", "the role allows nothing", DENIED, principal="role",
         hint="attach a policy to role app-role"),
    Case("role-ignores-user-policy", "a session has the role's permissions, not the caller's",
         DENIED, principal="role", user_policies=(ALLOW_EXACT,)),
    Case("session-policy-allows", "role and session policy both allow", ALLOW, principal="role",
         role_policies=(doc(stmt(resource=ANY_DBUSER)),), session_policy=ALLOW_EXACT),
    Case("session-policy-narrows", "the session policy allows only bob: intersection", DENIED,
         principal="role", role_policies=(doc(stmt(resource=ANY_DBUSER)),),
         session_policy=doc(stmt(resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<RID>/bob")),
         hint="session policy"),
    Case("session-policy-cannot-grant", "a session policy never adds permissions", DENIED,
         principal="role", session_policy=ALLOW_EXACT),
    Case("session-policy-arns-allow", "PolicyArns session policies intersect too", ALLOW,
         principal="role", role_policies=(ALLOW_EXACT,), session_policy_arns=(ALLOW_EXACT,)),
    Case("session-policy-arns-narrow", "a PolicyArns policy that does not allow", DENIED,
         principal="role", role_policies=(ALLOW_EXACT,),
         session_policy_arns=(doc(stmt(resource="arn:aws:s3:::x")),)),
    Case("session-policy-deny", "a Deny in a session policy is explicit", DENY, principal="role",
         role_policies=(ALLOW_EXACT,), session_policy=doc(stmt(resource="*"), stmt("Deny"))),
    Case("boundary-allows", "role and boundary both allow", ALLOW, principal="role",
         role_policies=(ALLOW_EXACT,), boundary=doc(stmt(action="rds-db:*", resource="*"))),
    Case("boundary-narrows", "the boundary allows only s3: intersection is empty", DENIED,
         principal="role", role_policies=(ALLOW_EXACT,),
         boundary=doc(stmt(action="s3:*", resource="*")), hint="permissions boundary"),
    Case("boundary-cannot-grant", "a boundary never grants by itself", DENIED, principal="role",
         boundary=doc(stmt(resource="*"))),
    Case("boundary-deny", "a Deny in the boundary is explicit", DENY, principal="role",
         role_policies=(ALLOW_EXACT,), boundary=doc(stmt(resource="*"), stmt("Deny"))),
    # ---- IAM user permissions boundaries: the effective permissions are the intersection of the
    # identity policies and the boundary; a Deny in either wins; a boundary never grants
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html)
    Case("user-boundary-allows", "user and boundary both allow", ALLOW,
         user_policies=(ALLOW_EXACT,), user_boundary=doc(stmt(action="rds-db:*", resource="*"))),
    Case("user-boundary-narrows", "the user's boundary allows only s3: intersection is empty",
         DENIED, user_policies=(ALLOW_EXACT,), user_boundary=doc(stmt(action="s3:*", resource="*")),
         hint="user's permissions boundary", detail="permissions boundary does not"),
    Case("user-boundary-cannot-grant", "a user's boundary never grants by itself", DENIED,
         user_boundary=doc(stmt(resource="*")), hint="attach a policy to user alice"),
    Case("user-boundary-deny", "a Deny in the user's boundary is explicit", DENY,
         user_policies=(ALLOW_EXACT,), user_boundary=doc(stmt(resource="*"), stmt("Deny"))),
    Case("user-boundary-put", "PutUserPermissionsBoundary sets the same boundary", DENIED,
         user_policies=(ALLOW_EXACT,), user_boundary=doc(stmt(action="s3:*", resource="*")),
         user_boundary_via="put", hint="user's permissions boundary"),
    Case("user-boundary-deleted", "DeleteUserPermissionsBoundary lifts it", ALLOW,
         user_policies=(ALLOW_EXACT,), user_boundary=doc(stmt(action="s3:*", resource="*")),
         user_boundary_via="put-delete"),
    Case("user-boundary-group", "the boundary caps group policies too", DENIED,
         group_policies=(ALLOW_EXACT,), user_boundary=doc(stmt(action="s3:*", resource="*"))),
    Case("user-boundary-session-token", "GetSessionToken credentials carry the user's boundary",
         DENIED, principal="session-token", user_policies=(ALLOW_EXACT,),
         user_boundary=doc(stmt(action="s3:*", resource="*"))),
    Case("user-boundary-federation", "a federated user's permissions are the issuing user's "
         "(boundary included) ∩ the session policy", DENIED, principal="federation",
         user_policies=(ALLOW_EXACT,), session_policy=ALLOW_EXACT,
         user_boundary=doc(stmt(action="s3:*", resource="*"))),
    # ---- the request context: RDS does not supply aws:Referer/SourceIp/SourceVpc/SourceVpce/
    # UserAgent/VpcSourceIp to IAM DB auth (UsingWithRDS.IAMDBAuth.html); an absent key fails
    # plain operators, passes …IfExists and negated ones, matches Null: true
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html)
    Case("ctx-sourceip-ifexists", "IpAddressIfExists on the absent aws:SourceIp holds", ALLOW,
         user_policies=(doc(stmt(Condition={"IpAddressIfExists": SRC_IP})),)),
    Case("ctx-sourceip-plain", "IpAddress on the absent aws:SourceIp fails; the hint says why",
         DENIED, user_policies=(doc(stmt(Condition={"IpAddress": SRC_IP})),),
         hint="RDS does not supply aws:SourceIp"),
    Case("ctx-useragent-plain", "StringLike on the absent aws:UserAgent fails", DENIED,
         user_policies=(doc(stmt(Condition={"StringLike": {"aws:UserAgent": "*"}})),),
         hint="absent"),
    Case("ctx-sourcevpce-null", "Null: true on the absent aws:SourceVpce matches", ALLOW,
         user_policies=(doc(stmt(Condition={"Null": {"aws:SourceVpce": "true"}})),)),
    Case("ctx-deny-notip", "a Deny with NotIpAddress on aws:SourceIp applies (negated operator, "
         "absent key); the hint says why", DENY,
         user_policies=(ALLOW_EXACT, doc(stmt("Deny", resource="*",
                                              Condition={"NotIpAddress": SRC_IP}))),
         hint="holds because the key is absent"),
    Case("ctx-currenttime-documented", "aws:CurrentTime is in the documented context: a date "
         "window holds", ALLOW, user_policies=(doc(stmt(Condition={
             "DateGreaterThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"},
             "DateLessThan": {"aws:CurrentTime": "2999-01-01T00:00:00Z"}})),)),
    Case("ctx-currenttime-none", "under the older guide's reading (no global keys) the same "
         "date window fails, as a real RDS login did", DENIED, global_keys="none",
         user_policies=(doc(stmt(Condition={
             "DateGreaterThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}})),),
         hint="stricter reading"),
    Case("ctx-none-ifexists", "…IfExists still holds when no global key is supplied", ALLOW,
         global_keys="none", user_policies=(doc(stmt(Condition={
             "StringEqualsIfExists": {"aws:RequestedRegion": "eu-west-1"}})),)),
    Case("ctx-none-plain-resource", "no condition, no global key needed", ALLOW,
         global_keys="none", user_policies=(ALLOW_EXACT,)),
    Case("ctx-requested-region", "aws:RequestedRegion is the instance's region", ALLOW,
         user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:RequestedRegion": "<REGION>"}})),)),
    Case("ctx-principal-org-absent", "outside an organization aws:PrincipalOrgID is absent",
         DENIED, user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:PrincipalOrgID": "o-anything"}})),)),
    # ---- Organizations SCPs: a Deny in any SCP wins; every level root → OU → account must have
    # an SCP that allows; SCPs never grant; the management account is not restricted; SCPs are in
    # effect only while the policy type is enabled
    # (https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps.html,
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html)
    Case("scp-full-access", "FullAWSAccess everywhere: identity policies decide", ALLOW,
         org="member", user_policies=(ALLOW_EXACT,)),
    Case("scp-root-deny", "a Deny SCP on the root", DENY, org="member",
         user_policies=(ALLOW_EXACT,), scp=(("root", doc(stmt("Deny", resource="*"))),),
         detail="attached to root r-"),
    Case("scp-ou-deny", "a Deny SCP on the OU", DENY, org="member", user_policies=(ALLOW_EXACT,),
         scp=(("ou", doc(stmt("Deny", action="rds-db:*", resource="*"))),),
         detail="attached to OU 'Prod'"),
    Case("scp-account-deny", "a Deny SCP on the account", DENY, org="member",
         user_policies=(ALLOW_EXACT,), scp=(("account", doc(stmt("Deny", resource="*"))),),
         detail="scp-account-0"),
    Case("scp-ou-no-allow", "the OU's SCPs allow only s3: no Allow at that level", DENIED,
         org="member", user_policies=(ALLOW_EXACT,), detach_full_access=("ou",),
         scp=(("ou", doc(stmt(action="s3:*", resource="*"))),),
         detail="no service control policy attached to OU 'Prod'", hint="an SCP attached to"),
    Case("scp-allow-list", "an allow-list SCP naming rds-db:connect replaces FullAWSAccess",
         ALLOW, org="member", user_policies=(ALLOW_EXACT,), detach_full_access=("account",),
         scp=(("account", doc(stmt(action="rds-db:connect", resource="*"))),)),
    Case("scp-cannot-grant", "an SCP never grants by itself", DENIED, org="member",
         scp=(("account", doc(stmt(resource="*"))),), hint="attach a policy to user alice"),
    Case("scp-role-session", "SCPs restrict role sessions of member accounts too", DENY,
         org="member", principal="role", role_policies=(ALLOW_EXACT,),
         scp=(("ou", doc(stmt("Deny", resource="*"))),), detail="attached to OU 'Prod'"),
    Case("scp-region-guard", "a region-guard Deny (StringNotEquals aws:RequestedRegion) passes "
         "a login in an allowed region", ALLOW, org="member", user_policies=(ALLOW_EXACT,),
         scp=(("root", doc(stmt("Deny", action="*", resource="*", Condition={
             "StringNotEquals": {"aws:RequestedRegion": ["<REGION>"]}}))),)),
    Case("scp-management-account", "SCPs do not restrict the management account", ALLOW,
         org="management", user_policies=(ALLOW_EXACT,),
         scp=(("root", doc(stmt("Deny", resource="*"))),)),
    Case("scp-type-not-enabled", "SCPs are not in effect while the policy type is disabled",
         ALLOW, org="member", scp_enabled=False, user_policies=(ALLOW_EXACT,),
         scp=(("root", doc(stmt("Deny", resource="*"))),)),
    Case("ctx-principal-org-id", "aws:PrincipalOrgID is the caller's organization", ALLOW,
         org="member", user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:PrincipalOrgID": "<ORG>"}})),)),
    Case("ctx-principal-org-id-other", "another organization's id does not match", DENIED,
         org="member", user_policies=(doc(stmt(Condition={
             "StringEquals": {"aws:PrincipalOrgID": "o-aaaaaaaaaa"}})),)),
    Case("ctx-principal-org-paths", "aws:PrincipalOrgPaths names the OU path", ALLOW,
         org="member", user_policies=(doc(stmt(Condition={
             "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "<ORG>/r-*/ou-*/"}})),)),
    Case("web-identity", "AssumeRoleWithWebIdentity sessions use the role's policies", ALLOW,
         principal="web", role_policies=(ALLOW_EXACT,)),
    Case("web-identity-session-policy", "a web identity session policy intersects", DENIED,
         principal="web", role_policies=(ALLOW_EXACT,),
         session_policy=doc(stmt(resource="arn:aws:s3:::x"))),
    Case("saml", "AssumeRoleWithSAML sessions use the role's policies", ALLOW,
         principal="saml", role_policies=(ALLOW_EXACT,)),
    # ---- GetSessionToken / GetFederationToken (recorded by moto_patches)
    Case("session-token-user", "GetSessionToken credentials act as the calling user", ALLOW,
         principal="session-token", user_policies=(ALLOW_EXACT,)),
    Case("session-token-user-denied", "…with the user's permissions only", DENIED,
         principal="session-token"),
    Case("federation-allows", "federation: the user and the session policy both allow", ALLOW,
         principal="federation", user_policies=(ALLOW_EXACT,), session_policy=ALLOW_EXACT),
    Case("federation-no-policy", "a federation token without a policy has no permissions",
         DENIED, principal="federation", user_policies=(ALLOW_EXACT,), hint="GetFederationToken"),
    Case("federation-session-only", "the session policy cannot exceed the user's", DENIED,
         principal="federation", session_policy=ALLOW_EXACT),
    # ---- accounts
    Case("other-account-user", "moto keys encode their account: a user of 210987654321", ALLOW,
         principal="user-other-account", user_policies=(ALLOW_EXACT,)),
    Case("moto-account-env", "MOTO_ACCOUNT_ID selects the account users are created in", ALLOW,
         principal="user-moto-account", user_policies=(ALLOW_EXACT,)),
    Case("cross-account-role", "a user assumes a role in the instance's account", ALLOW,
         principal="role-other-account", role_policies=(ALLOW_EXACT,)),
    Case("cross-account-role-wrong-account-arn", "the role's policy names the caller's account",
         DENIED, principal="role-other-account", role_policies=(doc(stmt(
             resource=f"arn:aws:rds-db:<REGION>:{ACCT}:dbuser:<RID>/app")),), hint="account"),
    Case("cross-account-user", "rds-db has no resource policy: another account's user is refused "
         "even when its own policy names the instance", DENIED, principal="user-cross-account",
         user_policies=(ALLOW_EXACT,), hint="assume a role"),
    # ---- near-miss hints
    Case("hint-instance-identifier", "the policy names the instance identifier, not the resource "
         "id",
         DENIED, user_policies=(doc(stmt(
             resource="arn:aws:rds-db:<REGION>:<ACCT>:dbuser:<IID>/app")),), hint="DbiResourceId"),
    Case("hint-region", "the policy names another region", DENIED, user_policies=(doc(stmt(
        resource="arn:aws:rds-db:eu-west-1:<ACCT>:dbuser:<RID>/app")),), hint="region 'eu-west-1'"),
    Case("hint-account", "the policy names another account", DENIED, user_policies=(doc(stmt(
        resource="arn:aws:rds-db:<REGION>:999999999999:dbuser:<RID>/app")),),
        hint="account '999999999999'"),
    Case("hint-rds-action", "rds:connect is not rds-db:connect", DENIED,
         user_policies=(doc(stmt(action="rds:connect")),), hint="service prefix rds-db"),
    Case("hint-rds-resource", "an arn:aws:rds: ARN is not a dbuser ARN", DENIED,
         user_policies=(doc(stmt(resource="arn:aws:rds:<REGION>:<ACCT>:dbuser:<RID>/app")),),
         hint="arn:aws:rds-db"),
    # ---- malformed documents (moto validates identity policies; session policies are not)
    Case("malformed-session-not-json", "a session policy that is not JSON denies with a reason",
         DENIED, principal="role", role_policies=(ALLOW_EXACT,), session_policy="{not json",
         detail="malformed"),
    Case("malformed-session-principal", "identity/session policies cannot name a Principal",
         DENIED, principal="role", role_policies=(ALLOW_EXACT,),
         session_policy=doc(stmt(Principal="*")), detail="Principal"),
    Case("malformed-session-operator", "an unknown condition operator", DENIED, principal="role",
         role_policies=(ALLOW_EXACT,), session_policy=doc(stmt(Condition={
             "StringSorta": {"aws:RequestedRegion": "x"}})), detail="StringSorta"),
    Case("malformed-session-effect", "Effect must be Allow or Deny", DENIED, principal="role",
         role_policies=(ALLOW_EXACT,), session_policy=doc(stmt("Permit")), detail="Effect"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    if case.aws_managed:
        monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    if case.principal == "user-moto-account":
        monkeypatch.setenv("MOTO_ACCOUNT_ID", "333333333333")
    with mock_aws():
        result = run_case(case)
    got = "allow" if result.ok else str(result.reason)
    assert got == case.expect, f"{case.why}: {result.detail} / hint: {result.hint}"
    if case.hint is not None:
        assert result.hint is not None and case.hint in result.hint, result.hint
    if case.detail is not None:
        assert case.detail in result.detail, result.detail


def test_table_is_large_and_explained() -> None:
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.why for c in CASES)
