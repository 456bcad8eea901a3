"""``rdsiam-emulator serve`` driven from outside as an app would: one server for the module with
a PostgreSQL and a MariaDB instance on their own loopback addresses and standard ports, an IAM
seed with a fixed access key; boto3 against its HTTP port, real drivers over verified TLS.

Names: clients use the RDS-style name for signing and TLS. psycopg/libpq get ``hostaddr=`` (the
name is verified, the address dialled); PyMySQL resolves the name through
``rdsiam_emulator.resolver`` (this process only); node ``pg`` gets the address with the name as
``servername``; the ``mysql`` CLI and node ``mysql2`` run in a private mount namespace whose
``/etc/hosts`` is exactly the lines the server printed (tests/rdsiam_emulator/server/hosts.py).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
import pytest
import requests
from serve_proc import (
    ACCOUNT,
    APP_KEY,
    APP_SECRET,
    DNS_LABEL,
    REGION,
    Serve,
    events,
    free_loopback,
    free_port,
)

from rdsiam_emulator import resolver

CONNECT_APP_USER = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "rds-db:connect",
    "Resource": f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:*/app_user"}]})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    pg_addr, my_addr = free_loopback(5432), free_loopback(3306)
    config = f"""
[server]
port = {port}
region = "{REGION}"
account_id = "{ACCOUNT}"
dns_label = "{DNS_LABEL}"

[[instances]]
identifier = "orders"
engine = "postgres"
listen = "{pg_addr}:5432"
iam_db_users = ["app_user"]
aliases = ["orders-db"]

[[instances]]
identifier = "shop"
engine = "mysql"
listen = "{my_addr}:3306"
iam_db_users = ["app_user"]

[[iam.policies]]
name = "connect-app-user"
document = '{CONNECT_APP_USER}'

[[iam.groups]]
name = "apps"
policies = ["connect-app-user"]

[[iam.users]]
name = "app"
groups = ["apps"]
access_keys = [{{ access_key_id = "{APP_KEY}", secret_access_key = "{APP_SECRET}" }}]
"""
    serve = Serve(config, tmp)
    try:
        serve.health_seen = serve.wait_ready(port)  # type: ignore[attr-defined]
        serve.ca = tmp / "ca.pem"  # type: ignore[attr-defined]
        serve.ca.write_bytes(serve.get("/_rdsiam/ca.pem").content)  # type: ignore[attr-defined]
        yield serve
    finally:
        code = serve.stop()
        assert code == 0, serve.stderr_path.read_text()


def token(serve: Serve, host: str, port: int, user: str, key: str = APP_KEY,
          secret: str = APP_SECRET) -> str:
    return str(serve.client("rds", key, secret).generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername=user, Region=REGION))


def pg_login(serve: Serve, inst: dict[str, Any], user: str, password: str,
             host: str | None = None) -> str:
    with psycopg.connect(host=host or inst["host"], hostaddr=inst["address"], port=inst["port"],
                         user=user, password=password, dbname="app", sslmode="verify-full",
                         sslrootcert=str(serve.ca), connect_timeout=20) as conn:  # type: ignore[attr-defined]
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def my_login(serve: Serve, inst: dict[str, Any], user: str, password: str) -> str:
    resolver.register(inst["host"], inst["address"])
    try:
        conn = pymysql.connect(host=inst["host"], port=inst["port"], user=user,
                               password=password, ssl={"ca": str(serve.ca)},  # type: ignore[attr-defined]
                               connect_timeout=20)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER()")
                row = cur.fetchone()
        finally:
            conn.close()
    finally:
        resolver.unregister(inst["host"])
    assert row is not None
    return str(row[0])


def test_progress_lines_and_hosts_lines(server: Serve) -> None:
    pg = server.wait_line("for 'orders': ready in")
    assert pg.startswith("postgres 15") and f"orders.{DNS_LABEL}.{REGION}.rds.amazonaws.com" in pg
    assert server.wait_line("for 'shop': ready in").startswith("mariadb ")
    orders, shop = server.instance("orders"), server.instance("shop")
    out = server.output().splitlines()
    assert f"{orders['address']} {orders['host']} orders-db" in out
    assert f"{shop['address']} {shop['host']}" in out


def test_health_ca_and_instances(server: Serve) -> None:
    assert server.health_seen[-1] == 200  # type: ignore[attr-defined]
    health = server.get("/_rdsiam/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ready",
                             "instances": {"orders": "available", "shop": "available"}}
    ca = server.get("/_rdsiam/ca.pem")
    assert ca.status_code == 200 and ca.text.startswith("-----BEGIN CERTIFICATE-----")
    ssl.create_default_context(cadata=ca.text)  # parses as a CA bundle
    body = server.json("/_rdsiam/instances")
    assert body["region"] == REGION and body["account_id"] == ACCOUNT
    orders = server.instance("orders")
    assert orders["engine"] == "postgres" and orders["version"].startswith("15")
    assert orders["port"] == 5432 and orders["listen"] == f"{orders['address']}:5432"
    assert orders["iam_enabled"] is True and orders["aliases"] == ["orders-db"]
    assert orders["state"] == "available" and orders["resource_id"].startswith("db-")
    assert server.get("/_rdsiam/nope").status_code == 404


def test_describe_db_instances(server: Serve) -> None:
    described = {d["DBInstanceIdentifier"]: d
                 for d in server.client("rds").describe_db_instances()["DBInstances"]}
    ours = {i["id"]: i for i in server.json("/_rdsiam/instances")["instances"]}
    for ident, engine, port in (("orders", "postgres", 5432), ("shop", "mariadb", 3306)):
        desc, inst = described[ident], ours[ident]
        assert desc["Endpoint"]["Address"] == f"{ident}.{DNS_LABEL}.{REGION}.rds.amazonaws.com"
        assert desc["Endpoint"]["Port"] == port
        assert desc["Engine"] == engine and desc["EngineVersion"] == inst["version"]
        assert desc["DbiResourceId"] == inst["resource_id"]
        assert desc["IAMDatabaseAuthenticationEnabled"] is True
        assert desc["DBInstanceStatus"] == "available"
    assert described["orders"]["DbiResourceId"] != described["shop"]["DbiResourceId"]


def test_seeded_fixed_key_logs_in_with_psycopg_and_pymysql(server: Serve) -> None:
    orders, shop = server.instance("orders"), server.instance("shop")
    assert pg_login(server, orders, "app_user",
                    token(server, orders["host"], 5432, "app_user")) == "app_user"
    assert my_login(server, shop, "app_user",
                    token(server, shop["host"], 3306, "app_user")) == "app_user@%"
    allowed = events(server, db_user="app_user", outcome="allow")
    assert {(e["instance_id"], e["access_key_id"]) for e in allowed} >= {
        ("orders", APP_KEY), ("shop", APP_KEY)}


def test_denied_login_on_events_and_stdout(server: Serve) -> None:
    iam = server.client("iam")
    iam.create_user(UserName="intruder")
    key = iam.create_access_key(UserName="intruder")["AccessKey"]
    orders = server.instance("orders")
    cursor = server.json("/_rdsiam/events")["cursor"]
    bad = token(server, orders["host"], 5432, "app_user", key["AccessKeyId"],
                key["SecretAccessKey"])
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        pg_login(server, orders, "app_user", bad)
    [denied] = events(server, since=str(cursor), instance="orders", outcome="deny")
    assert denied["reason"] == "not_authorized" and denied["rds_error_code"] == "NotAuthorized"
    assert denied["access_key_id"] == key["AccessKeyId"] and denied["hint"]
    assert events(server, since=str(cursor), outcome="allow") == []
    assert events(server, since=str(cursor), db_user="somebody-else") == []
    line = server.wait_line("iam-db-auth-error orders:", timeout=10)
    assert "Failed to authorize the connection request for user app_user" in line
    assert "intruder" in line
    signature = bad.rsplit("X-Amz-Signature=", 1)[1]
    assert signature not in server.output() and bad not in server.output()
    assert server.get("/_rdsiam/events", outcome="maybe").status_code == 400
    assert requests.get(f"{server.url}/_rdsiam/events", params={"since": "yesterday"},
                        timeout=10).status_code == 400


