"""The plugin as users meet it: real test files run by pytester against real servers."""

import pytest

USER_TESTS = r'''
import json
import re

import boto3
import psycopg
import pymysql
import pytest


def _connect(db, user, password):
    if db.engine == "postgres":
        return psycopg.connect(**db.connect_kwargs(user, password))
    return pymysql.connect(**db.connect_kwargs(user, password))


def _current_user(conn, engine):
    if engine == "postgres":
        return conn.execute("select current_user").fetchone()[0]
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        return cur.fetchone()[0]


@pytest.mark.parametrize("rds_iam_db", ["postgres", "mysql"], indirect=True)
def test_contract_and_login(rds_iam_db):
    db = rds_iam_db
    assert db.engine in ("postgres", "mysql")
    assert re.fullmatch(r"db-[A-Z0-9]{26}", db.resource_id)
    assert db.host.endswith(".us-east-1.rds.amazonaws.com")
    assert db.db_user_arn("app") == (
        f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{db.resource_id}/app")
    [desc] = boto3.client("rds", region_name="us-east-1").describe_db_instances(
        DBInstanceIdentifier=db.instance_id)["DBInstances"]
    assert desc["DbiResourceId"] == db.resource_id
    assert desc["Endpoint"]["Address"] == db.host and desc["Endpoint"]["Port"] == db.port
    assert desc["IAMDatabaseAuthenticationEnabled"] is True
    db.create_iam_db_user("app")
    token = db.generate_token("app", db.iam_session("app"))
    conn = _connect(db, "app", token)
    assert _current_user(conn, db.engine).split("@")[0] == "app"
    conn.close()
    assert [e.outcome for e in db.auth_events if e.method == "iam"] == ["allow"]


@pytest.mark.parametrize("rds_iam_db", ["postgres", "mysql"], indirect=True)
def test_token_expires_with_the_virtual_clock(rds_iam_db):
    db = rds_iam_db
    db.create_iam_db_user("app")
    session = db.iam_session("app")
    old = db.generate_token("app", session)
    db.clock.advance(seconds=16 * 60)
    with pytest.raises(Exception):
        _connect(db, "app", old)
    assert db.auth_events[-1].reason == "expired"
    fresh = db.generate_token("app", session)   # minted after the jump: valid
    _connect(db, "app", fresh).close()


def test_assumed_role_with_policy(rds_iam_db):
    db = rds_iam_db
    db.create_iam_db_user("svc")
    iam = boto3.client("iam", region_name=db.region)
    role = iam.create_role(RoleName="svc-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}))["Role"]
    iam.put_role_policy(RoleName="svc-role", PolicyName="c", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
        "Resource": db.db_user_arn("svc")}]}))
    creds = boto3.client("sts", region_name=db.region).assume_role(
        RoleArn=role["Arn"], RoleSessionName="ci", DurationSeconds=900)["Credentials"]
    session = boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                            aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"], region_name=db.region)
    _connect(db, "svc", db.generate_token("svc", session)).close()
    assert db.auth_events[-1].principal_arn == (
        "arn:aws:sts::123456789012:assumed-role/svc-role/ci")
    db.clock.advance(seconds=901)   # the STS session (900 s) is over
    with pytest.raises(psycopg.OperationalError):
        _connect(db, "svc", db.generate_token("svc", session))
    assert db.auth_events[-1].reason == "credentials_expired"


def test_denied_policy_is_explained(rds_iam_db):
    db = rds_iam_db
    db.create_iam_db_user("app")
    session = db.iam_session("other_user")       # allowed as other_user only
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        _connect(db, "app", db.generate_token("app", session))
    event = db.auth_events[-1]
    assert event.reason == "not_authorized" and event.rds_error_code == "NotAuthorized"


def test_factory_iam_disabled_and_region(rds_iam_db_factory):
    db = rds_iam_db_factory(engine="postgres", iam_enabled=False, region="eu-west-1")
    assert db.region == "eu-west-1" and ".eu-west-1.rds." in db.host
    db.create_iam_db_user("app")
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        _connect(db, "app", db.generate_token("app", db.iam_session("app")))
    assert db.auth_events[-1].reason == "iam_disabled"
'''


@pytest.fixture
def user_project(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester


def test_user_tests_pass_with_the_emulator(user_project):
    result = user_project.runpytest("--rdsiam-emulator", "--rdsiam-backend", "local",
                                    "-p", "no:xdist", "-p", "no:randomly")
    result.assert_outcomes(passed=7)


def test_without_activation_fixtures_skip_with_how_to(user_project):
    result = user_project.runpytest("-p", "no:xdist", "-rs")
    result.assert_outcomes(skipped=7)
    result.stdout.fnmatch_lines(["*run pytest with --rdsiam-emulator*"])


def test_failure_report_lists_auth_events_with_hints(pytester):
    pytester.makepyfile(test_fail='''
import psycopg

def test_wrong_resource(rds_iam_db):
    rds_iam_db.create_iam_db_user("app")
    session = rds_iam_db.iam_session("app")
    token = rds_iam_db.generate_token("app", session)
    rds_iam_db.clock.advance(minutes=18)
    psycopg.connect(**rds_iam_db.connect_kwargs("app", token))
''')
    result = pytester.runpytest("--rdsiam-emulator", "--rdsiam-backend", "local",
                                "-p", "no:xdist")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*- rdsiam auth events -*",
        "*DENY  iam app@rdsiam-postgres: expired [[]ExpiredToken[]] the token expired 3 min ago*",
    ])


def test_restart_backend_brings_a_killed_database_back(pytester):
    """Issue #12 §6: a fault test kills the real server and brings it back with the instance's
    ``restart_backend()``; IAM logins through the same endpoint work again."""
    pytester.makepyfile(test_fault='''
import os
import signal
import time

import psycopg
import pytest


def _login(db, user, session):
    token = db.generate_token(user, session)
    with psycopg.connect(**db.connect_kwargs(user, token), connect_timeout=10) as conn:
        return conn.execute("select current_user").fetchone()[0]


def test_kill_and_restart(rds_iam_db):
    db = rds_iam_db
    db.create_iam_db_user("app")
    session = db.iam_session("app")
    assert _login(db, "app", session) == "app"
    pid = db.instance.backend.server_pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}"):
        assert time.monotonic() < deadline, "the killed server was not reaped"
        time.sleep(0.02)
    with pytest.raises(psycopg.OperationalError):
        _login(db, "app", session)
    db.restart_backend()
    assert _login(db, "app", session) == "app"
''')
    result = pytester.runpytest("--rdsiam-emulator", "--rdsiam-backend", "local",
                                "-p", "no:xdist", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
