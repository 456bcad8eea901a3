"""Cost of the IAM step per login: moto lookup + policy collection + evaluation (+ full verify).

Reproduce: ``uv run --frozen python bench/bench_iam_authorize.py`` (``--n N``). State is built with
boto3 against ``mock_aws``: an IAM user with two inline policies, a group with a managed policy and
tags; an assumed role with a managed policy, a permissions boundary and a session policy; plus 200
other users so lookups scan a realistic backend. Each figure is the mean over N calls of
``MotoCredentials.lookup`` + ``IamAuthorizer.authorize`` (parsed policies are cached by text,
decisions are not), then the same inside a full ``verify_token`` with distinct tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from typing import Any

import botocore.session
from moto import mock_aws

from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import parse_token
from rdsiam_emulator.auth.verifier import verify_token
from rdsiam_emulator.iam import IamAuthorizer, MotoCredentials

ACCT, REGION = "123456789012", "us-east-1"
_BOTO = botocore.session.get_session()


def client(service: str, creds: dict[str, str] | None = None) -> Any:
    creds = creds or {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
    return _BOTO.create_client(service, region_name=REGION,
                               aws_access_key_id=creds["AccessKeyId"],
                               aws_secret_access_key=creds["SecretAccessKey"],
                               aws_session_token=creds.get("SessionToken"))


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def build() -> tuple[Endpoint, dict[str, dict[str, str]]]:
    iam, rds = client("iam"), client("rds")
    inst = rds.create_db_instance(DBInstanceIdentifier="mydb", Engine="postgres",
                                  DBInstanceClass="db.t3.micro", MasterUsername="m",
                                  MasterUserPassword="secret-password-1")["DBInstance"]
    rid = inst["DbiResourceId"]
    ep = Endpoint(inst["Endpoint"]["Address"], inst["Endpoint"]["Port"], REGION,
                  account_id=ACCT, resource_id=rid, instance_id="mydb")
    own = f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/${{aws:username}}"
    for i in range(200):
        iam.create_user(UserName=f"filler{i}")
        iam.create_access_key(UserName=f"filler{i}")
    iam.create_user(UserName="alice", Tags=[{"Key": "team", "Value": "db"}])
    iam.put_user_policy(UserName="alice", PolicyName="s3", PolicyDocument=doc(
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": "arn:aws:s3:::bucket/*"}))
    iam.put_user_policy(UserName="alice", PolicyName="db", PolicyDocument=doc(
        {"Sid": "Own", "Effect": "Allow", "Action": "rds-db:connect", "Resource": own,
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": "db"},
                       "Bool": {"aws:SecureTransport": "true"}}}))
    iam.create_group(GroupName="devs")
    iam.add_user_to_group(GroupName="devs", UserName="alice")
    deny = iam.create_policy(PolicyName="no-admin", PolicyDocument=doc(
        {"Effect": "Deny", "Action": "rds-db:connect",
         "Resource": "arn:aws:rds-db:*:*:dbuser:*/admin"}))["Policy"]["Arn"]
    iam.attach_group_policy(GroupName="devs", PolicyArn=deny)
    user_key = iam.create_access_key(UserName="alice")["AccessKey"]
    boundary = iam.create_policy(PolicyName="fence", PolicyDocument=doc(
        {"Effect": "Allow", "Action": ["rds-db:*", "s3:*"], "Resource": "*"}))["Policy"]["Arn"]
    iam.create_role(RoleName="app", AssumeRolePolicyDocument="{}", PermissionsBoundary=boundary)
    managed = iam.create_policy(PolicyName="db-any", PolicyDocument=doc(
        {"Effect": "Allow", "Action": "rds-db:connect",
         "Resource": f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/*"}))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="app", PolicyArn=managed)
    role_creds = client("sts", user_key).assume_role(
        RoleArn=f"arn:aws:iam::{ACCT}:role/app", RoleSessionName="bench",
        Policy=doc({"Effect": "Allow", "Action": "rds-db:connect",
                    "Resource": f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/alice"}),
    )["Credentials"]
    return ep, {"user": user_key, "role": role_creds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        endpoint, creds = build()
        lookup, auth = MotoCredentials(), IamAuthorizer()
        now = datetime.now(UTC)
        print(f"python {platform.python_version()} on {platform.machine()}, n={args.n} "
              f"(other processes may load the CPU: see uptime)")
        for label, c in creds.items():
            token_text = client("rds", c).generate_db_auth_token(
                DBHostname=endpoint.host, Port=endpoint.port, DBUsername="alice")
            token = parse_token(token_text)
            first = lookup.lookup(c["AccessKeyId"])
            assert first is not None
            verdict = auth.authorize(credential=first, token=token, endpoint=endpoint,
                                     db_user="alice", now=now)
            assert verdict is None, verdict
            start = time.perf_counter()
            for _ in range(args.n):
                cred = lookup.lookup(c["AccessKeyId"])
                assert cred is not None
                auth.authorize(credential=cred, token=token, endpoint=endpoint, db_user="alice",
                               now=now)
            per = (time.perf_counter() - start) / args.n
            print(f"{label:5s} lookup+authorize: {per * 1e6:7.1f} µs/login "
                  f"({1 / per:8.0f}/s on one core)")
            tokens = [client("rds", c).generate_db_auth_token(
                DBHostname=endpoint.host, Port=endpoint.port, DBUsername="alice")
                for _ in range(50)]
            rounds = max(1, args.n // len(tokens))
            start = time.perf_counter()
            for _ in range(rounds):
                for text in tokens:
                    result = verify_token(text, endpoint=endpoint, db_user="alice",
                                          credentials=lookup, now=datetime.now(UTC),
                                          authorizer=auth)
                    assert result.ok, result.detail
            per = (time.perf_counter() - start) / (rounds * len(tokens))
            print(f"{label:5s} full verify_token: {per * 1e6:7.1f} µs/login "
                  f"({1 / per:8.0f}/s on one core)")


if __name__ == "__main__":
    main()
