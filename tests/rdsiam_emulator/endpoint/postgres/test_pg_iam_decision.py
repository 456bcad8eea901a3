"""The IAM decision of issue #18 on the real wire (PostgreSQL, psycopg, TLS): a user's permissions
boundary, an Organizations SCP, and the request context (an absent key; the stricter reading)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import psycopg
import pytest
from pg_env import RDS_HOST, REGION

from rdsiam_emulator.auth.authenticator import Authenticator
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.reasons import Reason


@pytest.fixture
def moto_iam(endpoint, monkeypatch):
    from moto import mock_aws

    from rdsiam_emulator.aws import patches as moto_patches

    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    moto_patches.install()
    with mock_aws():
        yield endpoint


def use_account(endpoint, account: str, global_keys: str = "documented") -> Endpoint:
    from rdsiam_emulator.aws import MotoCredentials
    from rdsiam_emulator.iam import IamAuthorizer

    spec = Endpoint(RDS_HOST, endpoint.port, REGION, aliases=("localhost", "127.0.0.1"),
                    account_id=account, resource_id="db-ABCDEFGHIJKLMNOPQRSTUVWXY0",
                    instance_id="mydb")
    endpoint.endpoint.authenticator = Authenticator(
        instance_id="mydb", engine="postgres", endpoint=spec, credentials=MotoCredentials(),
        authorizer=IamAuthorizer(global_keys="none" if global_keys == "none" else "documented"),
        events=endpoint.events)
    return spec


def allow(resource: str, **condition: Any) -> str:
    stmt: dict[str, Any] = {"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource}
    if condition:
        stmt["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [stmt]})


def new_key(iam: Any) -> dict[str, str]:
    key: dict[str, str] = iam.create_access_key(UserName="app")["AccessKey"]
    return key


def login(endpoint, key: dict[str, str], db_user: str) -> None:
    token = boto3.client(
        "rds", region_name=REGION, aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    ).generate_db_auth_token(DBHostname=RDS_HOST, Port=endpoint.port, DBUsername=db_user,
                             Region=REGION)
    with psycopg.connect(endpoint.conninfo(db_user, token)) as conn:
        assert conn.execute("select current_user").fetchone() == (db_user,)


def refused(endpoint, key: dict[str, str], db_user: str) -> Any:
    with pytest.raises(psycopg.OperationalError) as err:
        login(endpoint, key, db_user)
    assert f'FATAL:  PAM authentication failed for user "{db_user}"' in str(err.value)
    return endpoint.events.all()[-1]


def test_user_permissions_boundary_on_the_wire(moto_iam) -> None:
    """A user's boundary without rds-db:connect refuses the login; removing it lets it in."""
    endpoint = moto_iam
    spec = use_account(endpoint, "123456789012")
    db_user = endpoint.iam_user()
    iam = boto3.client("iam", region_name=REGION)
    fence = iam.create_policy(PolicyName="fence", PolicyDocument=allow("arn:aws:s3:::x").replace(
        "rds-db:connect", "s3:GetObject"))["Policy"]["Arn"]
    iam.create_user(UserName="app", PermissionsBoundary=fence)
    key = new_key(iam)
    iam.put_user_policy(UserName="app", PolicyName="db",
                        PolicyDocument=allow(spec.db_user_arn(db_user) or ""))
    event = refused(endpoint, key, db_user)
    assert event.reason is Reason.NOT_AUTHORIZED
    assert "permissions boundary does not" in event.detail and "user's" in (event.hint or "")
    iam.delete_user_permissions_boundary(UserName="app")
    login(endpoint, key, db_user)


def test_scp_deny_on_the_wire(moto_iam) -> None:
    """A Deny SCP on the member account's OU refuses the login and is named in the event."""
    endpoint = moto_iam
    org = boto3.client("organizations", region_name=REGION)
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    org.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    ou = org.create_organizational_unit(ParentId=root, Name="Prod")["OrganizationalUnit"]["Id"]
    member = org.create_account(AccountName="app", Email="app@example.com")[
        "CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=member, SourceParentId=root, DestinationParentId=ou)
    spec = use_account(endpoint, member)
    db_user = endpoint.iam_user()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOTO_ACCOUNT_ID", member)
        iam = boto3.client("iam", region_name=REGION)
        iam.create_user(UserName="app")
        key = new_key(iam)
        iam.put_user_policy(UserName="app", PolicyName="db",
                            PolicyDocument=allow(spec.db_user_arn(db_user) or ""))
    login(endpoint, key, db_user)  # FullAWSAccess everywhere: allowed
    deny = org.create_policy(
        Name="no-db", Description="x", Type="SERVICE_CONTROL_POLICY",
        Content=allow("*").replace('"Allow"', '"Deny"'))["Policy"]["PolicySummary"]["Id"]
    org.attach_policy(PolicyId=deny, TargetId=ou)
    event = refused(endpoint, key, db_user)
    assert event.reason is Reason.EXPLICIT_DENY
    assert f"SCP 'no-db' ({deny}) attached to OU 'Prod' ({ou})" in event.detail


@pytest.mark.parametrize("global_keys", ["documented", "none"])
def test_request_context_on_the_wire(moto_iam, global_keys: str) -> None:
    """aws:SourceIp is never supplied (IfExists passes, plain fails with an absent-key hint);
    aws:CurrentTime is supplied under the documented reading and absent under 'none'."""
    endpoint = moto_iam
    spec = use_account(endpoint, "123456789012", global_keys)
    db_user = endpoint.iam_user()
    arn = spec.db_user_arn(db_user) or ""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="app")
    key = new_key(iam)
    iam.put_user_policy(UserName="app", PolicyName="db", PolicyDocument=allow(
        arn, IpAddressIfExists={"aws:SourceIp": "10.0.0.0/8"}))
    login(endpoint, key, db_user)
    iam.put_user_policy(UserName="app", PolicyName="db", PolicyDocument=allow(
        arn, IpAddress={"aws:SourceIp": "127.0.0.1/32"}))
    event = refused(endpoint, key, db_user)
    assert event.reason is Reason.NOT_AUTHORIZED and "RDS does not supply aws:SourceIp" in (
        event.hint or "")
    iam.put_user_policy(UserName="app", PolicyName="db", PolicyDocument=allow(
        arn, DateGreaterThan={"aws:CurrentTime": "2001-01-01T00:00:00Z"}))
    if global_keys == "documented":
        login(endpoint, key, db_user)
    else:
        event = refused(endpoint, key, db_user)
        assert "stricter reading" in (event.hint or "")
