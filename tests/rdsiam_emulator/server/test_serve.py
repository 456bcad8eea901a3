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
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
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
    hosts_lines,
    process_gone,
    run_with_hosts,
)
from test_serve_docs import documented_instance_fields
from test_serve_shutdown import descendants

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
max_instances = 3

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

[[iam.roles]]
name = "reader"
inline_policies = {{ connect = '{CONNECT_APP_USER}' }}

[[iam.users]]
name = "app"
groups = ["apps"]
access_keys = [{{ access_key_id = "{APP_KEY}", secret_access_key = "{APP_SECRET}" }}]
"""
    serve = Serve(config, tmp)
    try:
        serve.wait_ready(port)
        serve.ca.write_bytes(serve.get("/_rdsiam/ca.pem").content)
        yield serve
    finally:
        code = serve.stop()
        assert code == 0, serve.stderr()
        assert serve.stderr() == ""  # no warning, no traceback, no request log


def token(serve: Serve, host: str, port: int, user: str, key: str = APP_KEY,
          secret: str = APP_SECRET) -> str:
    return str(serve.client("rds", key, secret).generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername=user, Region=REGION))


def pg_login(serve: Serve, inst: dict[str, Any], user: str, password: str,
             host: str | None = None) -> str:
    with psycopg.connect(host=host or inst["host"], hostaddr=inst["address"], port=inst["port"],
                         user=user, password=password, dbname="app", sslmode="verify-full",
                         sslrootcert=str(serve.ca), connect_timeout=20) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def my_login(serve: Serve, inst: dict[str, Any], user: str, password: str) -> str:
    resolver.register(inst["host"], inst["address"])
    try:
        conn = pymysql.connect(host=inst["host"], port=inst["port"], user=user,
                               password=password, ssl={"ca": str(serve.ca)},
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
    # at start-up: not listening (0), then 503 while the backends start, then 200 for good
    assert server.health_seen == [0, 503, 200]
    health = server.get("/_rdsiam/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ready", "clusters": {},
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
    assert set(orders) == documented_instance_fields()  # docs/server.md shows every field


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




def test_alias_accepted_undeclared_cname_is_host_mismatch(server: Serve) -> None:
    orders = server.instance("orders")
    assert pg_login(server, orders, "app_user", token(server, "orders-db", 5432, "app_user"),
                    host="orders-db") == "app_user"
    cursor = server.json("/_rdsiam/events")["cursor"]
    cname = "db.internal.example.com"
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        # the certificate does not name the CNAME (as on RDS): TLS without name check
        psycopg.connect(host=cname, hostaddr=orders["address"], port=5432, user="app_user",
                        password=token(server, cname, 5432, "app_user"), dbname="app",
                        sslmode="require", connect_timeout=20).close()
    [denied] = events(server, since=str(cursor), outcome="deny")
    assert denied["reason"] == "host_mismatch" and cname in denied["detail"]
    # RDS's own advice first, then how the emulator declares a further name (issue #14)
    assert denied["hint"].startswith("sign for the instance endpoint"), denied["hint"]
    assert "RDS does not accept custom DNS names" in denied["hint"]
    assert "aliases = [...] in [[instances]]" in denied["hint"]


def test_modify_iam_authentication_takes_effect(server: Serve) -> None:
    rds, shop = server.client("rds"), server.instance("shop")
    cursor = server.json("/_rdsiam/events")["cursor"]
    rds.modify_db_instance(DBInstanceIdentifier="shop", ApplyImmediately=True,
                           EnableIAMDatabaseAuthentication=False)
    try:
        [desc] = rds.describe_db_instances(DBInstanceIdentifier="shop")["DBInstances"]
        assert desc["IAMDatabaseAuthenticationEnabled"] is False
        assert server.instance("shop")["iam_enabled"] is False
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            my_login(server, shop, "app_user", token(server, shop["host"], 3306, "app_user"))
        [denied] = events(server, since=str(cursor), outcome="deny")
        assert denied["reason"] == "iam_disabled"
    finally:
        rds.modify_db_instance(DBInstanceIdentifier="shop", ApplyImmediately=True,
                               EnableIAMDatabaseAuthentication=True)
    assert server.instance("shop")["iam_enabled"] is True
    assert my_login(server, shop, "app_user",
                    token(server, shop["host"], 3306, "app_user")) == "app_user@%"


@pytest.mark.slow
def test_create_and_delete_db_instance_are_real(server: Serve) -> None:
    rds = server.client("rds")
    created = rds.create_db_instance(
        DBInstanceIdentifier="inventory", Engine="mysql", DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="master-pass-1234",
        EnableIAMDatabaseAuthentication=True)["DBInstance"]
    assert created["DBInstanceStatus"] == "creating"
    # issue #14: no placeholder address while creating (RDS gives no Endpoint then); the engine
    # is the server that runs (as for the configured mysql instance), DBName the real one
    assert "Endpoint" not in created, created.get("Endpoint")
    assert created["Engine"] == "mariadb" and created["DBName"] == "app"
    assert re.fullmatch(r"\d+\.\d+\.\d+", created["EngineVersion"])
    [creating] = rds.describe_db_instances(DBInstanceIdentifier="inventory")["DBInstances"]
    assert creating["DBInstanceStatus"] != "creating" or "Endpoint" not in creating
    # the fixture's max_instances is 3: orders, shop, inventory fill it (no server is started)
    with pytest.raises(rds.exceptions.ClientError, match="InstanceQuotaExceeded"):
        rds.create_db_instance(DBInstanceIdentifier="extra", Engine="postgres",
                               DBInstanceClass="db.t4g.micro", AllocatedStorage=20,
                               MasterUsername="admin", MasterUserPassword="master-pass-1234")
    health = server.get("/_rdsiam/health")
    assert health.status_code == 503 and health.json()["instances"]["inventory"] == "creating"
    rds.get_waiter("db_instance_available").wait(
        DBInstanceIdentifier="inventory", WaiterConfig={"Delay": 1, "MaxAttempts": 90})
    assert server.get("/_rdsiam/health").status_code == 200
    [desc] = rds.describe_db_instances(DBInstanceIdentifier="inventory")["DBInstances"]
    inst = server.instance("inventory")
    assert desc["Endpoint"]["Address"] == inst["host"] == (
        f"inventory.{DNS_LABEL}.{REGION}.rds.amazonaws.com")
    assert desc["Endpoint"]["Port"] == inst["port"] == 3306
    assert inst["address"].startswith("127.0.0.") and inst["created_by"] == "api"
    assert desc["DbiResourceId"] == inst["resource_id"] == created["DbiResourceId"]
    assert desc["EngineVersion"] == inst["version"] and desc["Engine"] == "mariadb"
    assert desc["DBName"] == inst["dbname"] == "app"
    assert server.wait_line(f"{inst['address']} {inst['host']}", timeout=10)
    # as an IaC script would: the master creates the IAM user, the app logs in with a token
    resolver.register(inst["host"], inst["address"])
    try:
        conn = pymysql.connect(host=inst["host"], port=3306, user="admin",
                               password="master-pass-1234", ssl={"ca": str(server.ca)},
                               autocommit=True, connect_timeout=20)
        with conn.cursor() as cur:
            cur.execute("CREATE USER 'app_user'@'%' IDENTIFIED WITH AWSAuthenticationPlugin "
                        "AS 'RDS'")
        conn.close()
    finally:
        resolver.unregister(inst["host"])
    assert my_login(server, inst, "app_user",
                    token(server, inst["host"], 3306, "app_user")) == "app_user@%"
    pid = inst["backend_pid"]
    assert isinstance(pid, int) and not process_gone(pid)
    deleted = rds.delete_db_instance(DBInstanceIdentifier="inventory", SkipFinalSnapshot=True)
    assert deleted["DBInstance"]["DBInstanceIdentifier"] == "inventory"
    assert "inventory" not in {i["id"] for i in server.json("/_rdsiam/instances")["instances"]}
    assert process_gone(pid)
    with socket.socket() as sock:
        assert sock.connect_ex((inst["address"], 3306)) != 0
    with pytest.raises(rds.exceptions.DBInstanceNotFoundFault):
        rds.describe_db_instances(DBInstanceIdentifier="inventory")


def test_create_db_instance_refuses_engines_it_cannot_run(server: Serve) -> None:
    rds = server.client("rds")
    with pytest.raises(rds.exceptions.ClientError, match="use one of postgres, mysql, mariadb"):
        rds.create_db_instance(DBInstanceIdentifier="legacy", Engine="oracle-ee",
                               DBInstanceClass="db.m5.large", AllocatedStorage=20,
                               MasterUsername="admin", MasterUserPassword="master-pass-1234")
    assert "legacy" not in {d["DBInstanceIdentifier"]
                            for d in rds.describe_db_instances()["DBInstances"]}


def test_seeded_role_assumed_logs_in(server: Serve) -> None:
    sts = server.client("sts", APP_KEY, APP_SECRET)
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/reader",
                            RoleSessionName="ci")["Credentials"]
    import boto3

    rds = boto3.client("rds", region_name=REGION, endpoint_url=server.url,
                       aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    orders = server.instance("orders")
    tok = rds.generate_db_auth_token(DBHostname=orders["host"], Port=5432, DBUsername="app_user")
    assert pg_login(server, orders, "app_user", tok) == "app_user"
    [allowed] = events(server, db_user="app_user", outcome="allow", limit="1")
    assert allowed["principal_arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/")


NODE_DIR = Path(__file__).resolve().parents[2] / "node"


@pytest.mark.node
def test_node_pg_and_mysql2_by_rds_name(server: Serve, tmp_path: Path) -> None:
    orders, shop = server.instance("orders"), server.instance("shop")
    base = {"PATH": os.environ["PATH"], "DBUSER": "app_user", "CA": str(server.ca),
            "REGION": REGION, "AWS_ACCESS_KEY_ID": APP_KEY, "AWS_SECRET_ACCESS_KEY": APP_SECRET}
    # node pg: dials ADDRESS, verifies and signs for HOST (servername)
    pg = subprocess.run(["node", str(NODE_DIR / "pg_iam.mjs")], capture_output=True, text=True,
                        timeout=60, cwd=NODE_DIR,
                        env=dict(base, HOST=orders["host"], ADDRESS=orders["address"],
                                 PORT="5432"))
    assert pg.returncode == 0, pg.stderr
    assert json.loads(pg.stdout) == {"ok": True, "user": "app_user"}
    # mysql2 resolves HOST itself: the printed /etc/hosts lines make it resolve
    my = run_with_hosts(hosts_lines(server), ["node", str(NODE_DIR / "mysql2_iam.mjs")],
                        tmp_path, dict(base, HOST=shop["host"], PORT="3306"), cwd=NODE_DIR)
    assert my.returncode == 0, my.stderr
    assert json.loads(my.stdout) == {"ok": True, "user": "app_user@%"}


def test_psql_and_mysql_cli_by_rds_name(server: Serve, tmp_path: Path) -> None:
    orders, shop = server.instance("orders"), server.instance("shop")
    pg_token = token(server, orders["host"], 5432, "app_user")
    psql = subprocess.run(
        ["psql", f"host={orders['host']} hostaddr={orders['address']} port=5432 user=app_user "
         f"dbname=app sslmode=verify-full sslrootcert={server.ca}",
         "-X", "-tAc", "SELECT current_user"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "PGPASSWORD": pg_token})
    assert psql.returncode == 0, psql.stderr
    assert psql.stdout.strip() == "app_user"
    mysql = shutil.which("mysql") or "mariadb"
    my_token = token(server, shop["host"], 3306, "app_user")
    cli = run_with_hosts(hosts_lines(server), [
        mysql, "--no-defaults", "-h", shop["host"], "-P", "3306", "-u", "app_user",
        f"--password={my_token}", "--ssl", f"--ssl-ca={server.ca}",
        "--ssl-verify-server-cert", "-N", "-B",
        "-e", "SELECT CURRENT_USER()"], tmp_path, {"PATH": os.environ["PATH"]})
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == "app_user@%"


def _status_snippets(server: Serve, ident: str, user: str) -> dict[str, str]:
    [row] = [r for r in server.json("/_rdsiam/status.json")["instances"] if r["id"] == ident]
    return {s["title"]: s["code"] for s in row["snippets"][user]}


def test_status_page_snippets_work_for_configured_users(server: Serve, tmp_path: Path) -> None:
    """Issue #14: a configured MySQL iam_db_user had no rights on the instance's database, so
    the status page's snippets (which name it) failed with 1044. Run them as they are shown."""
    env = {"PATH": os.environ["PATH"], "AWS_ACCESS_KEY_ID": APP_KEY,
           "AWS_SECRET_ACCESS_KEY": APP_SECRET}
    for ident, title, query in (
            ("shop", "Python (boto3 + PyMySQL)", "CREATE TABLE t14 (id INT); "
             "INSERT INTO t14 VALUES (1); SELECT COUNT(*) FROM t14"),
            # PostgreSQL 15: CONNECT and USAGE on public, as for a new user on RDS (CREATE in
            # public needs a GRANT there too)
            ("orders", "Python (boto3 + psycopg)",
             "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public' AND 1 = 0; "
             "SELECT 1")):
        code = _status_snippets(server, ident, "app_user")[title]
        assert "database='app'" in code or "dbname='app'" in code, code
        # the snippet as shown, then work in the database as a newly created user would
        script = tmp_path / f"{ident}.py"
        statements = [s.strip() for s in query.split(";")]
        if "pymysql" in code:
            extra = ("conn = pymysql.connect(host=HOST, port=PORT, user=USER, password=token, "
                     "database='app', ssl_ca=CA_BUNDLE, ssl_verify_cert=True, "
                     "ssl_verify_identity=True, autocommit=True)\n"
                     "with conn, conn.cursor() as cur:\n"
                     + "".join(f"    cur.execute({s!r})\n" for s in statements)
                     + "    print(cur.fetchone()[0])\n")
        else:
            address = server.instance(ident)["address"]
            extra = (f"with psycopg.connect(host=HOST, hostaddr={address!r}, port=PORT, "
                     " user=USER, password=token, dbname='app', "
                     "sslmode='verify-full', sslrootcert=CA_BUNDLE, autocommit=True) as c2:\n"
                     + "".join(f"    cur = c2.execute({s!r})\n" for s in statements)
                     + "    print(cur.fetchone()[0])\n")
        script.write_text(code + extra)
        run = run_with_hosts(hosts_lines(server), [sys.executable, str(script)], tmp_path, env)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["app_user@%" if ident == "shop" else "app_user", "1"]


def test_set_up_is_no_auth_event(server: Serve) -> None:
    """Issue #14: creating iam_db_users is the emulator's own work, not a login."""
    ready = next(i for i, line in enumerate(server.lines) if line.startswith("ready in"))
    assert not [line for line in server.lines[:ready] if '"auth_event"' in line]
    first = events(server, limit="1000")
    assert not [e for e in first if e["db_user"] == "postgres"]  # no test logs in as master


def test_events_query_errors(server: Serve) -> None:
    """Issue #14: unknown parameters and limit=0 are 400s; an unencoded "+" is read as one."""
    bad = server.get("/_rdsiam/events", instanse="orders")
    assert bad.status_code == 400 and "'instanse'" in bad.json()["error"]
    assert "known: db_user, instance, limit, outcome, since" in bad.json()["error"]
    zero = server.get("/_rdsiam/events", limit="0")
    assert zero.status_code == 400 and "positive integer" in zero.json()["error"]
    # as typed in a shell: the "+" of the offset arrives as a space
    raw = requests.get(f"{server.url}/_rdsiam/events?since=2000-01-01T00:00:00+00:00",
                       timeout=10)
    assert raw.status_code == 200, raw.text
    assert raw.json()["events"] == events(server, since="2000-01-01T00:00:00+00:00")


def test_refusals_name_the_key_owner_and_backend_refusals_keep_the_caller(
        server: Serve) -> None:
    """Issue #14: host_mismatch/expired/db_user_mismatch name the key's owner (a lookup, the
    detail says the signature was not checked); a backend refusal after an allow keeps the
    caller's fields, on both engines."""
    orders, shop = server.instance("orders"), server.instance("shop")
    app_arn = f"arn:aws:iam::{ACCOUNT}:user/app"
    cursor = server.json("/_rdsiam/events")["cursor"]
    with pytest.raises(psycopg.OperationalError):
        pg_login(server, orders, "app_user", token(server, orders["host"], 5432, "other_user"))
    [mismatch] = events(server, since=str(cursor), outcome="deny")
    assert mismatch["reason"] == "db_user_mismatch"
    assert mismatch["principal_arn"] == app_arn and mismatch["access_key_id"] == APP_KEY
    assert "signature not checked" in mismatch["detail"]
    # IAM accepts the token; the database refuses (no such database): the deny keeps the caller
    for inst, port in ((orders, 5432), (shop, 3306)):
        cursor = server.json("/_rdsiam/events")["cursor"]
        tok = token(server, inst["host"], port, "app_user")
        if port == 5432:
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(host=inst["host"], hostaddr=inst["address"], port=port,
                                user="app_user", password=tok, dbname="nosuchdb",
                                sslmode="verify-full", sslrootcert=str(server.ca),
                                connect_timeout=20).close()
        else:
            resolver.register(inst["host"], inst["address"])
            try:
                with pytest.raises(pymysql.err.OperationalError):
                    pymysql.connect(host=inst["host"], port=port, user="app_user", password=tok,
                                    database="nosuchdb", ssl={"ca": str(server.ca)},
                                    connect_timeout=20).close()
            finally:
                resolver.unregister(inst["host"])
        found = events(server, since=str(cursor), instance=inst["id"])
        [denied] = [e for e in found if e["outcome"] == "deny"]
        assert denied["reason"] == "backend_refused", found
        assert denied["principal_arn"] == app_arn and denied["access_key_id"] == APP_KEY


def test_describe_reports_what_runs(server: Serve) -> None:
    """Issue #14: engine and version in one form; the configured MySQL instance is mariadb."""
    [desc] = server.client("rds").describe_db_instances(DBInstanceIdentifier="shop")[
        "DBInstances"]
    shop = server.instance("shop")
    assert desc["Engine"] == "mariadb" and desc["EngineVersion"] == shop["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", desc["EngineVersion"])
    [row] = [r for r in server.json("/_rdsiam/status.json")["instances"] if r["id"] == "shop"]
    assert row["engine_version"] == desc["EngineVersion"] and row["engine"] == "mariadb"


def test_events_counts_are_ascii_digits(server: Serve) -> None:
    """Break-it #14: "²" passes str.isdigit() but not int(); 5000 digits exceed int()'s limit.
    Both are a JSON 400, not a 500 with a traceback."""
    for name in ("since", "limit"):
        for value in ("\u00b2", "9" * 5000):
            bad = server.get("/_rdsiam/events", **{name: value})
            assert bad.status_code == 400, (name, value[:5], bad.text[:200])
            assert "error" in bad.json()
    assert server.get("/_rdsiam/health").status_code == 200


def test_upper_case_identifiers_name_the_same_instance(server: Serve) -> None:
    """Break-it #14: RDS and moto store identifiers in lower case; "SHOP" must act on "shop"
    (before, moto switched IAM off while the endpoint kept it on)."""
    rds, shop = server.client("rds"), server.instance("shop")
    rds.modify_db_instance(DBInstanceIdentifier="SHOP", ApplyImmediately=True,
                           EnableIAMDatabaseAuthentication=False)
    try:
        assert server.instance("shop")["iam_enabled"] is False
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            my_login(server, shop, "app_user", token(server, shop["host"], 3306, "app_user"))
    finally:
        rds.modify_db_instance(DBInstanceIdentifier="Shop", ApplyImmediately=True,
                               EnableIAMDatabaseAuthentication=True)
    assert server.instance("shop")["iam_enabled"] is True


@pytest.mark.slow
def test_delete_while_creating_leaves_nothing_running(server: Serve) -> None:
    """Break-it #14: a delete that arrives while the backend is still starting must not leave
    a running, invisible instance behind (the start stops what it made)."""
    rds = server.client("rds")
    before = descendants(server.proc.pid)
    rds.create_db_instance(
        DBInstanceIdentifier="race1", Engine="postgres", DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="master-pass-1234",
        EnableIAMDatabaseAuthentication=True)
    rds.delete_db_instance(DBInstanceIdentifier="race1", SkipFinalSnapshot=True)
    assert server.wait_line("deleted while it was being created", timeout=120)
    time.sleep(1)  # the starting thread stops its backend right after saying so
    assert "race1" not in {i["id"] for i in server.json("/_rdsiam/instances")["instances"]}
    left = descendants(server.proc.pid) - before
    assert not left, f"processes of the deleted instance still run: {sorted(left)}"
