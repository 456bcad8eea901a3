# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""The IAM decision of issue #18 on the real wire (MariaDB, PyMySQL, TLS): a user's permissions
boundary, an Organizations SCP, and the request context (an absent key; the stricter reading)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pymysql
import pytest
from mysql_env import REGION, MyEnv, _make_env, emulator_ca, mariadb  # noqa: F401
from test_mysql_endpoint import connect, make_iam_user

from rdsiam_emulator.auth.authenticator import Authenticator
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.reasons import Reason


@pytest.fixture
def moto_env(mariadb, emulator_ca, monkeypatch):
    from moto import mock_aws

    from rdsiam_emulator.aws import patches as moto_patches

    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    moto_patches.install()
    with mock_aws():
        yield from _make_env(mariadb, emulator_ca)


def use_account(env: MyEnv, account: str, global_keys: str = "documented") -> Endpoint:
    from rdsiam_emulator.aws import MotoCredentials
    from rdsiam_emulator.iam import IamAuthorizer

    old = env.endpoint.authenticator.endpoint
    spec = Endpoint(old.host, old.port, REGION, aliases=old.aliases, account_id=account,
                    resource_id="db-ABCDEFGHIJKLMNOPQRSTUVWXY0", instance_id="mydb")
    env.endpoint.authenticator = Authenticator(
        instance_id="mydb", engine="mysql", endpoint=spec, credentials=MotoCredentials(),
        authorizer=IamAuthorizer(global_keys="none" if global_keys == "none" else "documented"),
        events=env.events)
    return spec


def allow(resource: str, action: str = "rds-db:connect", effect: str = "Allow",
          **condition: Any) -> str:
    stmt: dict[str, Any] = {"Effect": effect, "Action": action, "Resource": resource}
    if condition:
        stmt["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [stmt]})


def new_key(iam: Any) -> dict[str, str]:
    key: dict[str, str] = iam.create_access_key(UserName="app")["AccessKey"]
    return key


def login(env: MyEnv, key: dict[str, str], db_user: str) -> None:
    token = boto3.client(
        "rds", region_name=REGION, aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    ).generate_db_auth_token(DBHostname="localhost", Port=env.port, DBUsername=db_user,
                             Region=REGION)
    with connect(env, db_user, token) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == (f"{db_user}@%",)


def refused(env: MyEnv, key: dict[str, str], db_user: str) -> Any:
    with pytest.raises(pymysql.err.OperationalError) as info:
        login(env, key, db_user)
    assert info.value.args == (
        1045, f"Access denied for user '{db_user}'@'127.0.0.1' (using password: YES)")
    return env.events.all()[-1]


def test_user_permissions_boundary_on_the_wire(moto_env) -> None:
    env = moto_env
    spec = use_account(env, "123456789012")
    db_user = make_iam_user(env)
    iam = boto3.client("iam", region_name=REGION)
    fence = iam.create_policy(PolicyName="fence", PolicyDocument=allow(
        "*", action="s3:GetObject"))["Policy"]["Arn"]
    iam.create_user(UserName="app", PermissionsBoundary=fence)
    key = new_key(iam)
    iam.put_user_policy(UserName="app", PolicyName="db",
                        PolicyDocument=allow(spec.db_user_arn(db_user) or ""))
    event = refused(env, key, db_user)
    assert event.reason is Reason.NOT_AUTHORIZED
    assert "permissions boundary does not" in event.detail and "user's" in (event.hint or "")
    iam.delete_user_permissions_boundary(UserName="app")
    login(env, key, db_user)


def test_scp_deny_on_the_wire(moto_env) -> None:
    env = moto_env
    org = boto3.client("organizations", region_name=REGION)
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    org.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    member = org.create_account(AccountName="app", Email="app@example.com")[
        "CreateAccountStatus"]["AccountId"]
    spec = use_account(env, member)
    db_user = make_iam_user(env)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOTO_ACCOUNT_ID", member)
        iam = boto3.client("iam", region_name=REGION)
        iam.create_user(UserName="app")
        key = new_key(iam)
        iam.put_user_policy(UserName="app", PolicyName="db",
                            PolicyDocument=allow(spec.db_user_arn(db_user) or ""))
    login(env, key, db_user)
    deny = org.create_policy(Name="no-db", Description="x", Type="SERVICE_CONTROL_POLICY",
                             Content=allow("*", effect="Deny"))["Policy"]["PolicySummary"]["Id"]
    org.attach_policy(PolicyId=deny, TargetId=member)
    event = refused(env, key, db_user)
    assert event.reason is Reason.EXPLICIT_DENY
    assert f"SCP 'no-db' ({deny}) attached to account {member}" in event.detail


@pytest.mark.parametrize("global_keys", ["documented", "none"])
def test_request_context_on_the_wire(moto_env, global_keys: str) -> None:
    env = moto_env
    spec = use_account(env, "123456789012", global_keys)
    db_user = make_iam_user(env)
    arn = spec.db_user_arn(db_user) or ""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="app")
    key = new_key(iam)
    iam.put_user_policy(UserName="app", PolicyName="db", PolicyDocument=allow(
        arn, StringLikeIfExists={"aws:UserAgent": "nothing*"}))
    login(env, key, db_user)
    iam.put_user_policy(UserName="app", PolicyName="db", PolicyDocument=allow(
        arn, StringLike={"aws:UserAgent": "*"}))
    event = refused(env, key, db_user)
    assert event.reason is Reason.NOT_AUTHORIZED and "RDS does not supply aws:UserAgent" in (
        event.hint or "")
    iam.put_user_policy(UserName="app", PolicyName="db", PolicyDocument=allow(
        arn, DateGreaterThan={"aws:CurrentTime": "2001-01-01T00:00:00Z"}))
    if global_keys == "documented":
        login(env, key, db_user)
    else:
        event = refused(env, key, db_user)
        assert "stricter reading" in (event.hint or "")
