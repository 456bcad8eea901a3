"""``rdsiam-emulator demo``: mint a real boto3 token against moto's IAM and verify it.

Later issues turn this into a real database connection through the emulator's endpoint.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rdsiam_emulator.clock import SystemClock
from rdsiam_emulator.credentials import StaticCredentials
from rdsiam_emulator.endpoint_spec import Endpoint
from rdsiam_emulator.tokens import redact_token
from rdsiam_emulator.verifier import verify_token


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="mint an IAM token with boto3 and verify it like RDS")
    parser.add_argument("--region", default="us-east-1")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import boto3
    from moto import mock_aws

    clock = SystemClock()
    host = f"demo-db.cxyz0example.{args.region}.rds.amazonaws.com"
    with mock_aws():
        iam = boto3.client("iam", region_name=args.region)
        iam.create_user(UserName="demo-app")
        key = iam.create_access_key(UserName="demo-app")["AccessKey"]
        session = boto3.Session(
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            region_name=args.region,
        )
        token = session.client("rds").generate_db_auth_token(
            DBHostname=host, Port=5432, DBUsername="app_user"
        )
    endpoint = Endpoint(host=host, port=5432, region=args.region)
    creds = StaticCredentials({key["AccessKeyId"]: (key["SecretAccessKey"], None)})
    print("token (redacted):", redact_token(token))
    for label, user in (("genuine login", "app_user"), ("wrong DB user", "someone_else")):
        result = verify_token(
            token, endpoint=endpoint, db_user=user, credentials=creds, now=clock.now()
        )
        print(f"{label}: " + json.dumps({
            "ok": result.ok, "reason": result.reason, "rds_error_code": result.rds_error_code,
            "detail": result.detail, "hint": result.hint,
        }))
    return 0
