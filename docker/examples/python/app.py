"""Example app for docker/compose.yaml: an application container that logs in with IAM tokens.

It does what an app on AWS does, against the emulator: create its IAM user and policy through the
IAM API (AWS_ENDPOINT_URL), look up its instances with describe_db_instances, mint a token per
connection with boto3 and connect over verified TLS by the RDS-style name (compose network aliases
make it resolve) with psycopg (PostgreSQL) or PyMySQL (MySQL/MariaDB).

Environment: AWS_ENDPOINT_URL, AWS_REGION, APP_NAME (the IAM user), INSTANCES (comma-separated
identifiers), DB_USER, and EXPECT_DENIED=1 for the app whose policy names another DB user: it then
succeeds only when every login is refused and the emulator's /_rdsiam/events shows why.
Exit status 0 when the outcome is the expected one, 1 otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from typing import Any

import boto3
import psycopg
import pymysql

API = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
REGION = os.environ.get("AWS_REGION", "eu-west-1")
APP = os.environ.get("APP_NAME", "example-python")
DB_USER = os.environ.get("DB_USER", "app_user")
INSTANCES = [i for i in os.environ.get("INSTANCES", "orders,inventory").split(",") if i]
DENIED = os.environ.get("EXPECT_DENIED") == "1"


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"app": APP, "event": event, **fields}), flush=True)  # noqa: T201


def get(path: str) -> bytes:
    with urllib.request.urlopen(API + path, timeout=5) as resp:  # noqa: S310 - http(s) from env
        return bytes(resp.read())


def wait_healthy(deadline_s: float = 180.0) -> None:
    end = time.monotonic() + deadline_s
    while True:
        try:
            get("/_rdsiam/health")
            return
        except OSError as exc:  # 503 (HTTPError) and refused connections alike
            if time.monotonic() > end:
                raise SystemExit(f"{APP}: the emulator was not healthy in {deadline_s:.0f} s: "
                                 f"{exc}") from None
            time.sleep(1)


def iam_user_keys(account: str, resources: list[str]) -> dict[str, str]:
    iam = boto3.client("iam", region_name=REGION)
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_user(UserName=APP)  # a re-run reuses the user
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": resources}],
    }
    iam.put_user_policy(UserName=APP, PolicyName="db-connect", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=APP)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"]}


def connect(db: dict[str, Any], token: str, ca: str) -> str:
    host, port = db["Endpoint"]["Address"], db["Endpoint"]["Port"]
    if db["Engine"] == "postgres":
        with psycopg.connect(host=host, port=port, user=DB_USER, password=token,
                             dbname=db.get("DBName") or "postgres", sslmode="verify-full",
                             sslrootcert=ca, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_user, version()").fetchone()
    else:
        conn = pymysql.connect(host=host, port=port, user=DB_USER, password=token,
                               ssl={"ca": ca, "check_hostname": True}, connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER(), VERSION()")
                row = cur.fetchone()
        finally:
            conn.close()
    assert row is not None
    return f"{row[0]} on {str(row[1])[:40]}"


def main() -> int:
    wait_healthy()
    with tempfile.NamedTemporaryFile(suffix=".pem", delete=False) as fh:
        fh.write(get("/_rdsiam/ca.pem"))
    ca = fh.name
    rds = boto3.client("rds", region_name=REGION)
    dbs = [rds.describe_db_instances(DBInstanceIdentifier=i)["DBInstances"][0] for i in INSTANCES]
    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    allowed_user = "someone_else" if DENIED else DB_USER
    resources = [
        f"arn:aws:rds-db:{REGION}:{account}:dbuser:{db['DbiResourceId']}/{allowed_user}"
        for db in dbs
    ]
    app_session = boto3.Session(region_name=REGION, **iam_user_keys(account, resources))
    failures = 0
    for db, resource in zip(dbs, resources, strict=True):
        host, port = db["Endpoint"]["Address"], db["Endpoint"]["Port"]
        token = app_session.client("rds").generate_db_auth_token(
            DBHostname=host, Port=port, DBUsername=DB_USER)
        try:
            who = connect(db, token, ca)
        except (psycopg.OperationalError, pymysql.err.OperationalError) as exc:
            say("refused", instance=db["DBInstanceIdentifier"], host=host, port=port,
                error=str(exc).strip().splitlines()[-1], policy_resource=resource)
            failures += 0 if DENIED else 1
        else:
            say("connected", instance=db["DBInstanceIdentifier"], host=host, port=port, who=who)
            failures += 1 if DENIED else 0
    if DENIED:
        key_id = app_session.get_credentials().access_key
        query = urllib.parse.urlencode({"db_user": DB_USER, "outcome": "deny"})
        events = json.loads(get(f"/_rdsiam/events?{query}"))["events"]
        mine = [e for e in events if e.get("access_key_id") == key_id]
        for event in mine:
            say("emulator-event", instance=event["instance_id"], reason=event["reason"],
                rds_error_code=event["rds_error_code"], detail=event["detail"], hint=event["hint"])
        failures += 0 if len(mine) >= len(dbs) else 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
