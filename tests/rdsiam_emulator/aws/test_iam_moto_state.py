"""moto-backed credentials and the moto patches: DbiResourceId, STS sessions, expiry, threads."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import botocore.exceptions
import botocore.session
import pytest
from moto import mock_aws

from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.verifier import verify_token
from rdsiam_emulator.aws import MotoCredentials
from rdsiam_emulator.aws import patches as moto_patches
from rdsiam_emulator.aws.clock import aws_clock
from rdsiam_emulator.clock import ManualClock, SystemClock
from rdsiam_emulator.iam import IamAuthorizer
from rdsiam_emulator.iam.principals import MotoCredential
from rdsiam_emulator.reasons import Reason

REGION = "us-east-1"
ACCT = "123456789012"
_BOTO = botocore.session.get_session()


def client(service: str, creds: dict[str, str] | None = None) -> Any:
    creds = creds or {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
    return _BOTO.create_client(
        service, region_name=REGION, aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    moto_patches.install()
    with mock_aws():
        yield


def create_instance(rds: Any, name: str) -> dict[str, Any]:
    return rds.create_db_instance(
        DBInstanceIdentifier=name, Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="master", MasterUserPassword="secret-password-1",
        EnableIAMDatabaseAuthentication=True,
    )["DBInstance"]


def endpoint_for(inst: dict[str, Any]) -> Endpoint:
    return Endpoint(inst["Endpoint"]["Address"], inst["Endpoint"]["Port"], REGION,
                    account_id=ACCT, resource_id=inst["DbiResourceId"],
                    instance_id=inst["DBInstanceIdentifier"])


# ------------------------------------------------------------------------------ DbiResourceId


def test_resource_ids_are_unique_realistic_and_stable(aws: None) -> None:
    rds = client("rds")
    ids = [create_instance(rds, f"db{i}")["DbiResourceId"] for i in range(5)]
    assert len(set(ids)) == 5
    assert all(re.fullmatch(r"db-[A-Z0-9]{26}", rid) for rid in ids)
    assert moto_patches.MOTO_CONSTANT_DBI_RESOURCE_ID not in ids
    described = {d["DBInstanceIdentifier"]: d["DbiResourceId"]
                 for d in rds.describe_db_instances()["DBInstances"]}
    assert [described[f"db{i}"] for i in range(5)] == ids
    rds.modify_db_instance(DBInstanceIdentifier="db2", AllocatedStorage=50, ApplyImmediately=True)
    rds.reboot_db_instance(DBInstanceIdentifier="db2")
    again = rds.describe_db_instances(DBInstanceIdentifier="db2")["DBInstances"][0]
    assert again["DbiResourceId"] == ids[2]
    found = rds.describe_db_instances(Filters=[{"Name": "dbi-resource-id", "Values": [ids[3]]}])
    assert [d["DBInstanceIdentifier"] for d in found["DBInstances"]] == ["db3"]


def test_install_is_idempotent_and_explicit_ids_are_kept(aws: None) -> None:
    moto_patches.install()
    moto_patches.install()
    from moto.rds.models import rds_backends

    rds = client("rds")
    create_instance(rds, "pinned")
    db = rds_backends[ACCT][REGION].databases["pinned"]
    db.dbi_resource_id = "db-PINNEDPINNEDPINNEDPINNED12"
    db.dbi_resource_id = moto_patches.MOTO_CONSTANT_DBI_RESOURCE_ID  # moto's constant is ignored
    got = rds.describe_db_instances(DBInstanceIdentifier="pinned")["DBInstances"][0]
    assert got["DbiResourceId"] == "db-PINNEDPINNEDPINNEDPINNED12"


# --------------------------------------------------------------------------------- credentials


def make_user(name: str = "alice", policy: dict[str, Any] | None = None) -> dict[str, str]:
    iam = client("iam")
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key: dict[str, str] = iam.create_access_key(UserName=name)["AccessKey"]
    return key


def test_user_key_resolves_with_principal(aws: None) -> None:
    key = make_user()
    cred = MotoCredentials().lookup(key["AccessKeyId"])
    assert isinstance(cred, MotoCredential) and cred.principal is not None
    assert cred.secret_access_key == key["SecretAccessKey"] and cred.active
    assert cred.principal_arn == f"arn:aws:iam::{ACCT}:user/alice"
    assert cred.principal.type == "User" and cred.principal.user_id
    assert not cred.is_temporary and cred.expires_at is None
    assert MotoCredentials().lookup("AKIANOTAREALKEY00000") is None


def test_assumed_role_session_details(aws: None) -> None:
    key = make_user()
    client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    sts = client("sts", key)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{ACCT}:role/r", RoleSessionName="sess", DurationSeconds=900,
        Policy='{"Version":"2012-10-17","Statement":[]}',
        PolicyArns=[{"arn": f"arn:aws:iam::{ACCT}:policy/x"}], Tags=[{"Key": "k", "Value": "v"}],
    )["Credentials"]
    cred = MotoCredentials().lookup(creds["AccessKeyId"])
    assert isinstance(cred, MotoCredential) and cred.principal is not None
    p = cred.principal
    assert cred.session_token == creds["SessionToken"]
    assert cred.expires_at is not None
    assert abs((cred.expires_at - creds["Expiration"]).total_seconds()) < 1
    assert p.arn == f"arn:aws:sts::{ACCT}:assumed-role/r/sess"
    assert p.role_arn == f"arn:aws:iam::{ACCT}:role/r" and p.session_layer
    assert p.session_policy_arns == (f"arn:aws:iam::{ACCT}:policy/x",)
    assert p.session_tags == (("k", "v"),) and p.issued_at is not None
    assert cred.source == "sts:AssumeRole"


ALLOW_ALL = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"}]}


def test_expired_sts_credentials_at_connect_time(aws: None) -> None:
    """Sign while the session is valid; connect after moto's expiry: credentials_expired."""
    clock = ManualClock(SystemClock().now())
    with aws_clock(clock):
        key = make_user()
        iam = client("iam")
        iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
        iam.put_role_policy(RoleName="r", PolicyName="p", PolicyDocument=json.dumps(ALLOW_ALL))
        inst = create_instance(client("rds"), "mydb")
        creds = client("sts", key).assume_role(
            RoleArn=f"arn:aws:iam::{ACCT}:role/r", RoleSessionName="s1", DurationSeconds=900,
        )["Credentials"]
        clock.advance(850)
        endpoint = endpoint_for(inst)
        token = client("rds", creds).generate_db_auth_token(
            DBHostname=endpoint.host, Port=endpoint.port, DBUsername="app")

    def verify(now: datetime) -> Any:
        return verify_token(token, endpoint=endpoint, db_user="app", credentials=MotoCredentials(),
                            now=now, authorizer=IamAuthorizer())

    assert verify(clock.now()).ok
    late = verify(clock.advance(60))
    assert late.reason is Reason.CREDENTIALS_EXPIRED, late.detail


def test_session_token_from_another_session_is_refused(aws: None) -> None:
    key = make_user(policy=ALLOW_ALL)
    inst = create_instance(client("rds"), "mydb")
    endpoint = endpoint_for(inst)
    sts = client("sts", key)
    first = sts.get_session_token()["Credentials"]
    second = sts.get_session_token()["Credentials"]
    assert first["AccessKeyId"] != second["AccessKeyId"]  # the patch issues real keys
    mixed = dict(first, SessionToken=second["SessionToken"])
    token = client("rds", mixed).generate_db_auth_token(
        DBHostname=endpoint.host, Port=endpoint.port, DBUsername="app")
    result = verify_token(token, endpoint=endpoint, db_user="app", credentials=MotoCredentials(),
                          now=SystemClock().now(), authorizer=IamAuthorizer())
    assert result.reason is Reason.SESSION_TOKEN_MISMATCH


def test_session_token_from_a_non_user_stays_unknown(aws: None) -> None:
    """GetSessionToken called with keys moto does not know (no IAM user): moto's fixed example key
    stays, and the lookup cannot name a principal, so it is an unknown key (documented)."""
    creds = client("sts").get_session_token()["Credentials"]
    assert creds["AccessKeyId"] == moto_patches.MOTO_EXAMPLE_ACCESS_KEY
    assert MotoCredentials().lookup(creds["AccessKeyId"]) is None


def test_lookups_from_another_thread_while_state_changes(aws: None) -> None:
    key = make_user()
    lookup = MotoCredentials()
    errors: list[BaseException] = []
    results: list[bool] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                results.append(lookup.lookup(key["AccessKeyId"]) is not None)
                lookup.lookup("AKIADOESNOTEXIST0000")
            except BaseException as exc:  # any exception is the failure we look for
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        iam = client("iam")
        for i in range(30):
            iam.create_user(UserName=f"u{i}")
            iam.create_access_key(UserName=f"u{i}")
    finally:
        stop.set()
        thread.join(10)
    assert not errors and results and all(results)


def test_explain_token_library_route_for_a_role_session(aws: None) -> None:
    """In the process holding the moto state, explain_token gets the full IAM step."""
    from rdsiam_emulator.auth.explain import explain_token

    key = make_user()
    iam = client("iam")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    iam.put_role_policy(RoleName="r", PolicyName="p", PolicyDocument=json.dumps(ALLOW_ALL))
    endpoint = endpoint_for(create_instance(client("rds"), "mydb"))
    creds = client("sts", key).assume_role(
        RoleArn=f"arn:aws:iam::{ACCT}:role/r", RoleSessionName="s1",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"},
            {"Sid": "NoApp", "Effect": "Deny", "Action": "rds-db:connect",
             "Resource": "arn:aws:rds-db:*:*:dbuser:*/app"}]}),
    )["Credentials"]
    token = client("rds", creds).generate_db_auth_token(
        DBHostname=endpoint.host, Port=endpoint.port, DBUsername="app")
    explanation = explain_token(token, now=SystemClock().now(), endpoint=endpoint, db_user="app",
                                credentials=MotoCredentials(), authorizer=IamAuthorizer())
    (line,) = [c for c in explanation.checks if c.name == "rds-db:connect authorization"]
    assert line.status == "fail" and line.reason is Reason.EXPLICIT_DENY
    assert "Sid 'NoApp' of inline session policy" in line.detail


def test_user_permissions_boundary_is_stored(aws: None) -> None:
    """moto drops CreateUser(PermissionsBoundary) and lacks Put/DeleteUserPermissionsBoundary;
    the patch stores it as AWS does: GetUser returns it, ListUsers leaves it out (API_ListUsers),
    an ARN that is not a policy ARN is refused and creates no user."""
    iam = client("iam")
    arn = iam.create_policy(PolicyName="fence", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))["Policy"]["Arn"]
    iam.create_user(UserName="u", PermissionsBoundary=arn)
    assert iam.get_user(UserName="u")["User"]["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn}
    assert "PermissionsBoundary" not in iam.list_users()["Users"][0]
    iam.delete_user_permissions_boundary(UserName="u")
    assert "PermissionsBoundary" not in iam.get_user(UserName="u")["User"]
    iam.put_user_permissions_boundary(UserName="u", PermissionsBoundary=arn)
    stored = iam.get_user(UserName="u")["User"]["PermissionsBoundary"]
    assert stored["PermissionsBoundaryArn"] == arn
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidParameterValue"):
        iam.create_user(UserName="v", PermissionsBoundary="arn:aws:s3:::not-a-policy-arn")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["u"]
    iam.create_user(UserName="plain")
    assert "PermissionsBoundary" not in iam.get_user(UserName="plain")["User"]


def test_install_patches_a_freshly_imported_moto_module() -> None:
    """pytester's in-process runs drop the modules they imported; moto's IAM responses imported
    again must be patched again by install() (a process-wide flag once left them unpatched)."""
    import importlib
    import sys

    moto_patches.install()
    saved = sys.modules.pop("moto.iam.responses")
    try:
        fresh = importlib.import_module("moto.iam.responses")
        assert fresh is not saved and "put_user_permissions_boundary" not in vars(fresh.IamResponse)
        moto_patches.install()
        assert "put_user_permissions_boundary" in vars(fresh.IamResponse)
        assert hasattr(fresh.IamResponse.create_user, "__wrapped__")
    finally:
        sys.modules["moto.iam.responses"] = saved
        sys.modules["moto.iam"].responses = saved  # type: ignore[attr-defined]


def test_user_created_before_the_patches_reports_its_boundary_unknown(
    aws: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trial #18 (repro_boundary_before_patches.py): a user created by unpatched moto lost its
    boundary; the decision must say the boundary was not evaluated, not silently allow."""
    from moto.iam.responses import IamResponse

    from rdsiam_emulator.aws.iam_state import MotoPolicySource
    from rdsiam_emulator.iam.authorizer import check_principal
    from rdsiam_emulator.iam.principals import principal_from_arn

    iam = client("iam")
    fence = iam.create_policy(PolicyName="s3only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))["Policy"]["Arn"]
    allow = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"}]})
    with monkeypatch.context() as m:  # moto as it is before install(): the boundary is dropped
        m.setattr(IamResponse, "create_user", IamResponse.create_user.__wrapped__)
        iam.create_user(UserName="early", PermissionsBoundary=fence)
    iam.create_user(UserName="late")
    for name in ("early", "late"):
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=allow)
    resource = f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:db-X/app"

    def skipped(name: str) -> tuple[str, ...]:
        check = check_principal(principal_from_arn(f"arn:aws:iam::{ACCT}:user/{name}"),
                                resource, source=MotoPolicySource(), region=REGION,
                                now=SystemClock().now())
        return check.policies.skipped

    assert any(s.startswith("user permissions boundary") for s in skipped("early"))
    assert not any(s.startswith("user permissions boundary") for s in skipped("late"))
    iam.put_user_permissions_boundary(UserName="early", PermissionsBoundary=fence)
    assert not any(s.startswith("user permissions boundary") for s in skipped("early"))


def test_disabling_the_scp_type_detaches_every_scp(
    aws: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trial #18 (repro_disable_reenable.py): AWS detaches every SCP when the type is disabled;
    re-enabled, every entity has only FullAWSAccess (Organizations guide, disable-policy-type)."""
    from rdsiam_emulator.aws.iam_state import MotoPolicySource
    from rdsiam_emulator.iam.authorizer import check_principal
    from rdsiam_emulator.iam.principals import principal_from_arn

    org = client("organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    org.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    ou = org.create_organizational_unit(ParentId=root, Name="Prod")["OrganizationalUnit"]["Id"]
    member = org.create_account(AccountName="app", Email="app@example.com")[
        "CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=member, SourceParentId=root, DestinationParentId=ou)
    with monkeypatch.context() as m:
        m.setenv("MOTO_ACCOUNT_ID", member)
        iam = client("iam")
        iam.create_user(UserName="alice")
        iam.put_user_policy(UserName="alice", PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"}]}))
    deny = org.create_policy(Name="deny-rds", Description="d", Type="SERVICE_CONTROL_POLICY",
                             Content=json.dumps({"Version": "2012-10-17", "Statement": [
                                 {"Effect": "Deny", "Action": "rds-db:*", "Resource": "*"}]}))[
        "Policy"]["PolicySummary"]["Id"]
    org.attach_policy(PolicyId=deny, TargetId=member)

    def allowed() -> bool:
        return check_principal(
            principal_from_arn(f"arn:aws:iam::{member}:user/alice"),
            f"arn:aws:rds-db:{REGION}:{member}:dbuser:db-X/app", source=MotoPolicySource(),
            region=REGION, now=SystemClock().now()).decision.allowed

    def attached(target: str) -> list[str]:
        return [p["Name"] for p in org.list_policies_for_target(
            TargetId=target, Filter="SERVICE_CONTROL_POLICY")["Policies"]]

    assert not allowed()
    org.disable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    assert attached(member) == [] and attached(ou) == [] and attached(root) == []
    org.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    for target in (root, ou, member):
        assert attached(target) == ["FullAWSAccess"], target
    assert allowed()


def test_aws_managed_boundary_unknown_to_moto_names_the_setting(
    aws: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trial #18 (t_bnd.py): an AWS-managed boundary moto has not loaded denies (it cannot be
    read), and the refusal says so and names MOTO_IAM_LOAD_MANAGED_POLICIES=true."""
    from rdsiam_emulator.aws.iam_state import MotoPolicySource
    from rdsiam_emulator.iam.authorizer import check_principal, rejection_for
    from rdsiam_emulator.iam.principals import principal_from_arn

    monkeypatch.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)
    iam = client("iam")
    managed = "arn:aws:iam::aws:policy/PowerUserAccess"
    iam.create_user(UserName="pu", PermissionsBoundary=managed)
    iam.put_user_policy(UserName="pu", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"}]}))
    check = check_principal(principal_from_arn(f"arn:aws:iam::{ACCT}:user/pu"),
                            f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:db-X/app",
                            source=MotoPolicySource(), region=REGION, now=SystemClock().now())
    assert not check.decision.allowed and check.policies.boundary_unread == managed
    rejection = rejection_for(check)
    assert rejection.reason is Reason.NOT_AUTHORIZED
    assert f"its permissions boundary {managed} could not be read" in rejection.detail
    assert "permissions boundary does not" not in rejection.detail
    assert "MOTO_IAM_LOAD_MANAGED_POLICIES=true" in rejection.hint
