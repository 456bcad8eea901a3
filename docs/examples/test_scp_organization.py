"""Service control policies: an instance in a member account of an AWS Organization (moto)."""

import json

import boto3
import psycopg
import pytest

DENY_DB = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Action": "rds-db:connect", "Resource": "*"}]})


def test_an_scp_on_the_member_account_refuses_logins(rds_iam_db_factory):
    # moto is active from the fixture's set-up: the organization can come first. The test's
    # account (--rdsiam-account-id) creates it and is its management account, which SCPs never
    # restrict, so the instance goes into a member account.
    org = boto3.client("organizations", region_name="us-east-1")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    org.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    member = org.create_account(AccountName="app", Email="app@example.com")[
        "CreateAccountStatus"]["AccountId"]
    db = rds_iam_db_factory(account_id=member)
    db.create_iam_db_user("app")
    session = db.iam_session("app")                  # an IAM user of the member account
    with psycopg.connect(**db.connect_kwargs("app", db.generate_token("app", session))) as conn:
        assert conn.execute("select current_user").fetchone() == ("app",)

    no_db = org.create_policy(Name="no-db", Description="no IAM DB logins", Content=DENY_DB,
                              Type="SERVICE_CONTROL_POLICY")["Policy"]["PolicySummary"]["Id"]
    org.attach_policy(PolicyId=no_db, TargetId=member)
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        psycopg.connect(**db.connect_kwargs("app", db.generate_token("app", session)))
    event = [e for e in db.auth_events if e.method == "iam"][-1]
    assert event.reason == "explicit_deny"
    assert f"SCP 'no-db' ({no_db}) attached to account {member}" in event.detail
