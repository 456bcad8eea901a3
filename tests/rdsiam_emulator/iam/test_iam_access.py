"""iam.access: what each IAM principal in moto's state may rds-db:connect to, decided by our
evaluator (real moto IAM state; no database needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rdsiam_emulator.aws import MotoPolicySource
from rdsiam_emulator.aws import patches as moto_patches
from rdsiam_emulator.iam.access import ANY_USER, AccessTarget, connect_access, moto_principals

REGION = "us-east-1"
ACCT = "123456789012"
ORDERS = AccessTarget("orders", REGION, ACCT, "db-ORDERS0000000000000000000", ("app_user",))
BILLING = AccessTarget("billing", REGION, ACCT, "db-BILLING000000000000000000", ("report",))
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def iam(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    moto_patches.install()
    with mock_aws():
        yield boto3.client("iam", region_name=REGION, aws_access_key_id="testing",
                           aws_secret_access_key="testing")


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource, **extra}


def _table(iam_client: Any) -> dict[str, dict[str, Any]]:
    del iam_client
    rows = connect_access([ORDERS, BILLING], source=MotoPolicySource(), now=NOW)
    return {row.name: row for row in rows}


def _grants(row: Any) -> set[tuple[str, str]]:
    return {(g.instance_id, g.db_user) for g in row.grants}


def test_users_roles_and_groups_get_what_the_evaluator_allows(iam: Any) -> None:
    iam.create_user(UserName="alice")
    iam.put_user_policy(UserName="alice", PolicyName="p",
                        PolicyDocument=_doc(_allow(ORDERS.arn("app_user"))))
    iam.create_user(UserName="nobody")
    # a user named in the policy but for the wrong instance identifier (not the resource id)
    iam.create_user(UserName="wrongid")
    iam.put_user_policy(UserName="wrongid", PolicyName="p", PolicyDocument=_doc(_allow(
        f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:orders/app_user")))
    # a group grants a DB user that is not in the instance's known list: found in the policy
    iam.create_group(GroupName="analysts")
    iam.put_group_policy(GroupName="analysts", PolicyName="p",
                         PolicyDocument=_doc(_allow(BILLING.arn("analyst"))))
    iam.create_user(UserName="bob")
    iam.add_user_to_group(GroupName="analysts", UserName="bob")
    # a managed policy on a role with a wildcard, minus an explicit deny
    arn = iam.create_policy(PolicyName="all-orders", PolicyDocument=_doc(
        _allow(f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{ORDERS.resource_id}/*"),
        {"Effect": "Deny", "Action": "rds-db:connect", "Resource": ORDERS.arn("app_user")},
    ))["Policy"]["Arn"]
    iam.create_role(RoleName="worker", Path="/apps/", AssumeRolePolicyDocument=_doc(
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
         "Action": "sts:AssumeRole"}))
    iam.attach_role_policy(RoleName="worker", PolicyArn=arn)
    # a condition the request context cannot satisfy: never allowed
    iam.create_user(UserName="tagged")
    iam.put_user_policy(UserName="tagged", PolicyName="p", PolicyDocument=_doc(_allow(
        ORDERS.arn("app_user"),
        Condition={"StringEquals": {"aws:PrincipalTag/team": "db"}})))

    rows = _table(iam)
    assert [r.kind for r in rows.values()] == ["user"] * 5 + ["role"]
    assert _grants(rows["alice"]) == {("orders", "app_user")}
    assert rows["alice"].arn == f"arn:aws:iam::{ACCT}:user/alice"
    assert _grants(rows["nobody"]) == set()
    assert _grants(rows["wrongid"]) == set()
    assert _grants(rows["bob"]) == {("billing", "analyst")}
    assert _grants(rows["tagged"]) == set()
    worker = rows["worker"]
    assert worker.arn == f"arn:aws:iam::{ACCT}:role/apps/worker"
    [grant] = worker.grants
    assert (grant.instance_id, grant.db_user, grant.excluded) == ("orders", ANY_USER, ("app_user",))

    # the same user with the tag now passes the condition
    iam.tag_user(UserName="tagged", Tags=[{"Key": "team", "Value": "db"}])
    assert _grants(_table(iam)["tagged"]) == {("orders", "app_user")}


def test_boundary_and_other_account_are_evaluated(iam: Any) -> None:
    boundary = iam.create_policy(PolicyName="only-billing", PolicyDocument=_doc(
        _allow(f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{BILLING.resource_id}/*")))["Policy"]["Arn"]
    iam.create_user(UserName="bounded", PermissionsBoundary=boundary)
    iam.put_user_policy(UserName="bounded", PolicyName="p", PolicyDocument=_doc(
        _allow(f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:*/*")))
    other = AccessTarget("far", REGION, "210987654321", "db-FAR00000000000000000000000", ("u",))
    [row] = connect_access([ORDERS, BILLING, other], source=MotoPolicySource(), now=NOW)
    # the identity policy allows every instance; the boundary only billing; the other account's
    # instance is refused (rds-db has no resource policy for cross-account access)
    assert [(g.instance_id, g.db_user) for g in row.grants] == [("billing", ANY_USER)]


def test_moto_principals_lists_every_account(iam: Any) -> None:
    iam.create_user(UserName="zed")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=_doc(
        {"Effect": "Allow", "Principal": {"AWS": ACCT}, "Action": "sts:AssumeRole"}))
    principals = moto_principals()
    assert [(p.type, p.arn) for p in principals] == [
        ("User", f"arn:aws:iam::{ACCT}:user/zed"),
        ("AssumedRole", f"arn:aws:sts::{ACCT}:assumed-role/r/cli-check"),
    ]
    assert principals[1].role_arn == f"arn:aws:iam::{ACCT}:role/r"
