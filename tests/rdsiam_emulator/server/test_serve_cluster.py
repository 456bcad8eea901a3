"""Aurora clusters in ``rdsiam-emulator serve``: ``[[clusters]]`` in the config and
``create_db_cluster`` + ``create_db_instance(DBClusterIdentifier=…)`` through the server's port,
driven from outside (boto3 against the port; psycopg and PyMySQL over verified TLS to real
replicas)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import psycopg
import pymysql
import pytest
from serve_proc import (
    ACCOUNT,
    APP_KEY,
    APP_SECRET,
    REGION,
    Serve,
    events,
    free_port,
    hosts_lines,
    process_gone,
)

from rdsiam_emulator import cli, resolver

MASTER, MASTER_PASSWORD = "master", "Master-Pass-1"
CONNECT_CLUSTERS = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "rds-db:connect",
    "Resource": [f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:cluster-*/*",
                 f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:prx-*/*"]}]})
REPLAY_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    port = free_port()
    config = f"""
[server]
port = {port}
region = "{REGION}"
account_id = "{ACCOUNT}"
max_instances = 6

[[clusters]]
name = "orders"
engine = "aurora-postgresql"
iam_db_users = ["app_user"]
master_username = "{MASTER}"
master_password = "{MASTER_PASSWORD}"

[[clusters]]
name = "ledger"
engine = "aurora-mysql"
readers = 1
iam_db_users = ["app_user"]
master_username = "{MASTER}"
master_password = "{MASTER_PASSWORD}"

[[proxies]]
name = "orders-proxy"
target = "orders"
default_auth_scheme = "IAM_AUTH"
role_may_connect_as = ["app_user"]
[[proxies.endpoints]]
name = "reads"
target_role = "READ_ONLY"

[[iam.users]]
name = "app"
inline_policies = {{ connect = '{CONNECT_CLUSTERS}' }}
access_keys = [{{ access_key_id = "{APP_KEY}", secret_access_key = "{APP_SECRET}" }}]
"""
    serve = Serve(config, tmp_path_factory.mktemp("serve-cluster"))
    try:
        serve.wait_ready(port)
        serve.ca.write_bytes(serve.get("/_rdsiam/ca.pem").content)
        yield serve
        pids = [m["backend_pid"] for c in serve.json("/_rdsiam/clusters")["clusters"]
                for m in c["members"]]
    finally:
        code = serve.stop(timeout=60)
        assert code == 0, serve.stderr()
        assert serve.stderr() == ""
    assert len(pids) >= 4 and all(pids)
    assert [p for p in pids if not process_gone(p)] == []  # shutdown stops every member


def cluster(serve: Serve, name: str) -> dict[str, Any]:
    found = [c for c in serve.json("/_rdsiam/clusters")["clusters"] if c["id"] == name]
    assert found, serve.output()
    return dict(found[0])


def token(serve: Serve, host: str, port: int, user: str) -> str:
    return str(serve.client("rds", APP_KEY, APP_SECRET).generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername=user, Region=REGION))


def address(c: dict[str, Any], host: str) -> str:
    if host == c["host"]:
        return str(c["address"])
    if host == c["reader_host"]:
        return str(c["reader_address"])
    [found] = [m["address"] for m in c["members"] if m["host"] == host]
    return str(found)


def run_sql(serve: Serve, c: dict[str, Any], host: str, user: str, password: str,
            sql: str) -> list[tuple[Any, ...]]:
    """One statement through endpoint ``host`` of cluster ``c`` (verified TLS); its rows."""
    where = address(c, host)
    if c["engine"] == "aurora-postgresql":
        with psycopg.connect(host=host, hostaddr=where, port=c["port"], user=user,
                             password=password, dbname="app", sslmode="verify-full",
                             sslrootcert=str(serve.ca), connect_timeout=20,
                             autocommit=True) as conn:
            cur = conn.execute(sql)  # type: ignore[call-overload]
            return list(cur.fetchall()) if cur.description else []
    resolver.register(host, where)
    try:
        conn = pymysql.connect(host=host, port=c["port"], user=user, password=password,
                               database="app", ssl={"ca": str(serve.ca)}, connect_timeout=20,
                               autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()
    finally:
        resolver.unregister(host)


def iam_sql(serve: Serve, c: dict[str, Any], host: str, sql: str) -> list[tuple[Any, ...]]:
    return run_sql(serve, c, host, "app_user", token(serve, host, c["port"], "app_user"), sql)


def eventually_rows(serve: Serve, c: dict[str, Any], host: str, sql: str
                    ) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on a reader once replication has delivered them (bounded)."""
    deadline = time.monotonic() + REPLAY_TIMEOUT
    while True:
        rows = iam_sql(serve, c, host, sql)
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


@pytest.mark.parametrize("name", ["orders", "ledger"])
def test_configured_cluster_writes_on_writer_reads_on_reader(server: Serve, name: str) -> None:
    c = cluster(server, name)
    assert c["state"] == "available" and c["created_by"] == "config"
    assert c["host"] == f"{name}.cluster-{c['host'].split('.cluster-')[1]}"
    assert c["reader_host"].startswith(f"{name}.cluster-ro-")
    assert c["resource_id"].startswith("cluster-") and c["iam_enabled"] is True
    assert [m["is_writer"] for m in c["members"]] == [True, False]
    table = f"t_{name}"
    run_sql(server, c, c["host"], MASTER, MASTER_PASSWORD, f"CREATE TABLE {table} (v integer)")
    if c["engine"] == "aurora-postgresql":  # PostgreSQL 15: only the owner creates in public
        run_sql(server, c, c["host"], MASTER, MASTER_PASSWORD,
                f"GRANT ALL ON {table} TO app_user")
    iam_sql(server, c, c["host"], f"INSERT INTO {table} VALUES (42)")
    assert eventually_rows(server, c, c["reader_host"], f"SELECT v FROM {table}") == [(42,)]
    if c["engine"] == "aurora-postgresql":
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="read-only transaction"):
            iam_sql(server, c, c["reader_host"], f"INSERT INTO {table} VALUES (1)")
    else:
        with pytest.raises(pymysql.err.OperationalError, match="--read-only"):
            iam_sql(server, c, c["reader_host"], f"INSERT INTO {table} VALUES (1)")


def test_configured_clusters_in_moto_and_hosts_lines(server: Serve) -> None:
    rds = server.client("rds")
    described = {c["DBClusterIdentifier"]: c for c in rds.describe_db_clusters()["DBClusters"]}
    assert set(described) == {"orders", "ledger"}
    for name, engine in (("orders", "aurora-postgresql"), ("ledger", "aurora-mysql")):
        ours, theirs = cluster(server, name), described[name]
        assert theirs["Engine"] == engine
        assert theirs["Endpoint"] == ours["host"]
        assert theirs["ReaderEndpoint"] == ours["reader_host"]
        assert theirs["Port"] == ours["port"]
        assert theirs["DbClusterResourceId"] == ours["resource_id"]
        assert theirs["IAMDatabaseAuthenticationEnabled"] is True
        assert {(m["DBInstanceIdentifier"], m["IsClusterWriter"])
                for m in theirs["DBClusterMembers"]} == {(f"{name}-instance-1", True),
                                                         (f"{name}-instance-2", False)}
        lines = hosts_lines(server)
        for host in (ours["host"], ours["reader_host"], *(m["host"] for m in ours["members"])):
            assert f"{address(ours, host)} {host}" in lines
        server.wait_line(f"{engine} ")
        assert any(f"cluster '{name}' (writer + 1 reader): ready in" in line
                   and ours["host"] in line for line in server.lines)
    health = server.json("/_rdsiam/health")
    assert health["clusters"] == {"orders": "available", "ledger": "available"}


def test_status_page_lists_clusters(server: Serve) -> None:
    doc = server.json("/_rdsiam/status.json")
    shown = {c["id"]: c for c in doc["clusters"]}
    assert set(shown) >= {"orders", "ledger"}
    assert shown["orders"]["host"] == cluster(server, "orders")["host"]
    assert [p["name"] for p in doc["proxies"]] == ["orders-proxy"]  # the configured one


def wait_available(rds: Any, ident: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        [db] = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"]
        if db["DBInstanceStatus"] != "creating" or time.monotonic() > deadline:
            assert db["DBInstanceStatus"] == "available", db
            return dict(db)
        time.sleep(0.2)


def writer_of(rds: Any, name: str) -> str:
    [c] = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"]
    [writer] = [m["DBInstanceIdentifier"] for m in c["DBClusterMembers"] if m["IsClusterWriter"]]
    return str(writer)


def test_api_cluster_lifecycle(server: Serve) -> None:
    """create_db_cluster + two create_db_instance (writer, then a real replica), IAM through
    its endpoints, modify_db_cluster IAM off, failover, quota, delete."""
    rds = server.client("rds")
    made = rds.create_db_cluster(
        DBClusterIdentifier="shop", Engine="aurora-postgresql", MasterUsername=MASTER,
        MasterUserPassword=MASTER_PASSWORD, DatabaseName="app",
        EnableIAMDatabaseAuthentication=True)["DBCluster"]
    assert made["DbClusterResourceId"].startswith("cluster-")
    first = rds.create_db_instance(DBInstanceIdentifier="shop-1", DBClusterIdentifier="shop",
                                   DBInstanceClass="db.r6g.large",
                                   Engine="aurora-postgresql")["DBInstance"]
    assert first["DBInstanceStatus"] == "creating" and "Endpoint" not in first
    assert server.get("/_rdsiam/health").status_code == 503  # a member is starting
    assert cluster(server, "shop")["state"] == "creating"
    # made while the writer is still starting: it waits for it, then copies it
    rds.create_db_instance(DBInstanceIdentifier="shop-2", DBClusterIdentifier="shop",
                           DBInstanceClass="db.r6g.large", Engine="aurora-postgresql")
    # the quota counts every member, starting ones too: 4 configured + 2 = server.max_instances
    with pytest.raises(botocore.exceptions.ClientError, match="InstanceQuotaExceeded"):
        rds.create_db_instance(DBInstanceIdentifier="shop-3", DBClusterIdentifier="shop",
                               DBInstanceClass="db.r6g.large", Engine="aurora-postgresql")
    wait_available(rds, "shop-1")
    reader = wait_available(rds, "shop-2")
    c = cluster(server, "shop")
    assert c["state"] == "available" and c["created_by"] == "api"
    [described] = rds.describe_db_clusters(DBClusterIdentifier="shop")["DBClusters"]
    assert described["Endpoint"] == c["host"] and described["ReaderEndpoint"] == c["reader_host"]
    assert described["Port"] == c["port"] == reader["Endpoint"]["Port"]
    assert described["DbClusterResourceId"] == c["resource_id"] == made["DbClusterResourceId"]
    assert {(m["DBInstanceIdentifier"], m["IsClusterWriter"])
            for m in described["DBClusterMembers"]} == {("shop-1", True), ("shop-2", False)}
    assert reader["Endpoint"]["Address"] == next(m["host"] for m in c["members"]
                                                 if m["id"] == "shop-2")
    assert reader["DbiResourceId"] == next(m["resource_id"] for m in c["members"]
                                           if m["id"] == "shop-2")
    for sql in ("CREATE USER app_user", "GRANT rds_iam TO app_user",
                "CREATE TABLE t_shop (v integer)", "GRANT ALL ON t_shop TO app_user"):
        run_sql(server, c, c["host"], MASTER, MASTER_PASSWORD, sql)
    iam_sql(server, c, c["host"], "INSERT INTO t_shop VALUES (7)")
    assert eventually_rows(server, c, c["reader_host"], "SELECT v FROM t_shop") == [(7,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        iam_sql(server, c, c["reader_host"], "INSERT INTO t_shop VALUES (8)")

    # IAM is one switch for the cluster, not its instances
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidParameterCombination"):
        rds.modify_db_instance(DBInstanceIdentifier="shop-2", ApplyImmediately=True,
                               EnableIAMDatabaseAuthentication=False)
    assert iam_sql(server, c, c["reader_host"], "SELECT 1") == [(1,)]
    rds.modify_db_cluster(DBClusterIdentifier="shop", EnableIAMDatabaseAuthentication=False,
                          ApplyImmediately=True)
    with pytest.raises(psycopg.OperationalError):
        iam_sql(server, c, c["host"], "SELECT 1")
    assert events(server, instance="shop-1", db_user="app_user")[-1]["reason"] == "iam_disabled"
    [member] = rds.describe_db_instances(DBInstanceIdentifier="shop-2")["DBInstances"]
    assert member["IAMDatabaseAuthenticationEnabled"] is False
    rds.modify_db_cluster(DBClusterIdentifier="shop", EnableIAMDatabaseAuthentication=True,
                          ApplyImmediately=True)
    assert iam_sql(server, c, c["host"], "SELECT 1") == [(1,)]

    # a real failover: the cluster endpoint now writes on shop-2
    rds.failover_db_cluster(DBClusterIdentifier="shop")
    assert writer_of(rds, "shop") == "shop-2"
    assert iam_sql(server, c, c["host"], "SELECT pg_is_in_recovery()") == [(False,)]
    iam_sql(server, c, c["host"], "INSERT INTO t_shop VALUES (9)")
    old = next(m["host"] for m in c["members"] if m["id"] == "shop-1")
    assert eventually_rows(server, c, old, "SELECT v FROM t_shop WHERE v = 9") == [(9,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        iam_sql(server, c, old, "INSERT INTO t_shop VALUES (10)")

    # RDS refuses to delete a cluster that has instances; deleting them stops the servers
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidDBClusterStateFault"):
        rds.delete_db_cluster(DBClusterIdentifier="shop", SkipFinalSnapshot=True)
    pids = [m["backend_pid"] for m in cluster(server, "shop")["members"]]
    assert len(pids) == 2 and all(pids)
    rds.delete_db_instance(DBInstanceIdentifier="shop-1", SkipFinalSnapshot=True)
    rds.delete_db_instance(DBInstanceIdentifier="shop-2", SkipFinalSnapshot=True)
    rds.delete_db_cluster(DBClusterIdentifier="shop", SkipFinalSnapshot=True)
    assert all(process_gone(pid) for pid in pids)
    assert "shop" not in {x["id"] for x in server.json("/_rdsiam/clusters")["clusters"]}
    assert server.get("/_rdsiam/health").status_code == 200


def test_api_aurora_mysql_reader_added_and_writer_deleted(server: Serve) -> None:
    """aurora-mysql through the API: a MariaDB replica added to the running writer replays what
    was written before it; deleting the writer fails over to it first, as Aurora does."""
    rds = server.client("rds")
    rds.create_db_cluster(DBClusterIdentifier="books", Engine="aurora-mysql",
                          MasterUsername=MASTER, MasterUserPassword=MASTER_PASSWORD,
                          DatabaseName="app", EnableIAMDatabaseAuthentication=True)
    for ident in ("books-a", "books-b"):
        rds.create_db_instance(DBInstanceIdentifier=ident, DBClusterIdentifier="books",
                               DBInstanceClass="db.r6g.large", Engine="aurora-mysql")
        wait_available(rds, ident)
        if ident == "books-a":  # written before the reader exists
            c = cluster(server, "books")
            for sql in ("CREATE USER app_user IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
                        "GRANT ALL ON app.* TO app_user", "CREATE TABLE t_books (v integer)",
                        "INSERT INTO t_books VALUES (5)"):
                run_sql(server, c, c["host"], MASTER, MASTER_PASSWORD, sql)
    c = cluster(server, "books")
    assert [(m["id"], m["is_writer"]) for m in c["members"]] == [("books-a", True),
                                                                  ("books-b", False)]
    assert eventually_rows(server, c, c["reader_host"], "SELECT v FROM t_books") == [(5,)]
    with pytest.raises(pymysql.err.OperationalError, match="--read-only"):
        iam_sql(server, c, c["reader_host"], "INSERT INTO t_books VALUES (6)")
    pids = {m["id"]: m["backend_pid"] for m in c["members"]}
    rds.delete_db_instance(DBInstanceIdentifier="books-a", SkipFinalSnapshot=True)
    assert process_gone(pids["books-a"])
    assert writer_of(rds, "books") == "books-b"
    c = cluster(server, "books")
    assert [(m["id"], m["is_writer"]) for m in c["members"]] == [("books-b", True)]
    iam_sql(server, c, c["host"], "INSERT INTO t_books VALUES (6)")
    assert iam_sql(server, c, c["host"], "SELECT v FROM t_books ORDER BY v") == [(5,), (6,)]
    rds.delete_db_instance(DBInstanceIdentifier="books-b", SkipFinalSnapshot=True)
    rds.delete_db_cluster(DBClusterIdentifier="books", SkipFinalSnapshot=True)
    assert process_gone(pids["books-b"])


def test_api_refuses_a_non_aurora_cluster_engine(server: Serve) -> None:
    rds = server.client("rds")
    with pytest.raises(botocore.exceptions.ClientError, match="is not run by the emulator"):
        rds.create_db_cluster(DBClusterIdentifier="nope", Engine="neptune",
                              MasterUsername=MASTER, MasterUserPassword=MASTER_PASSWORD)
    with pytest.raises(botocore.exceptions.ClientError, match="DBClusterNotFound"):
        rds.create_db_instance(DBInstanceIdentifier="nope-1", DBClusterIdentifier="nope",
                               DBInstanceClass="db.r6g.large", Engine="aurora-postgresql")


GOOD = '[[clusters]]\nname = "orders"\nengine = "aurora-postgresql"\n'
BAD_CONFIGS = [
    ('[[clusters]]\nengine = "aurora-postgresql"\n', "clusters[0].name: is required"),
    ('[[clusters]]\nname = "orders"\n', "clusters[0].engine: is required"),
    ('[[clusters]]\nname = "orders"\nengine = "postgres"\n',
     "clusters[0].engine: must be aurora-postgresql or aurora-mysql, got 'postgres'"),
    ('[[clusters]]\nname = "Orders"\nengine = "aurora-mysql"\n',
     "clusters[0].name: 'Orders': RDS stores DB cluster identifiers in lower case"),
    ('[[clusters]]\nname = "9x"\nengine = "aurora-mysql"\n',
     "clusters[0].name: '9x' is not a DB cluster identifier"),
    (GOOD + "readers = 16\n", "clusters[0].readers: must be between 0 and 15, got 16"),
    (GOOD + 'readers = "1"\n', "clusters[0].readers: must be an integer, got str"),
    (GOOD + "iam_enabled = 1\n", "clusters[0].iam_enabled: must be true or false"),
    (GOOD + 'iam_db_users = ["app user"]\n',
     "clusters[0].iam_db_users[0]: 'app user' is not a plain database user name"),
    (GOOD + "colour = 1\n", "clusters[0].colour: unknown key"),
    (GOOD + 'master_password = ""\n', "clusters[0].master_password: must be a non-empty"),
    (GOOD * 2, "clusters[1].name: 'orders' is already used by clusters[0]"),
    ('[[instances]]\nidentifier = "orders-instance-2"\n' + GOOD,
     "clusters[0].name: its member 'orders-instance-2' is already used by instances[0]"),
    ('[[clusters]]\nname = "l"\nengine = "aurora-mysql"\nversion = "15"\n',
     "clusters[0].version: is only for aurora-postgresql"),
    ("[server]\nmax_instances = 3\n" + GOOD + "readers = 2\n" + GOOD.replace("orders", "b"),
     "clusters: 0 instances and 5 cluster members are more than server.max_instances (3"),
    ('[server]\ncreate_listen_host = "0.0.0.0"\n' + GOOD,
     "clusters: clusters listen on loopback addresses only"),
    ('clusters = 1\n', "clusters: must be an array of tables"),
]


@pytest.mark.parametrize(("toml", "message"), BAD_CONFIGS,
                         ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD_CONFIGS)])
def test_bad_cluster_config_is_one_line(toml: str, message: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert cli.main(["serve", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"rdsiam-emulator serve: bad config: {message}"), err


@pytest.mark.slow
def test_status_page_shows_clusters_in_chromium(server: Serve) -> None:
    from playwright.sync_api import expect, sync_playwright
    from test_status_page_chromium import CHROMIUM, FLAGS

    orders = cluster(server, "orders")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/_rdsiam/")
            card = page.locator('.cluster[data-cluster="orders"]')
            expect(card.locator(".endpoint")).to_have_text(orders["host"])
            expect(card.locator(".reader-endpoint")).to_have_text(orders["reader_host"])
            expect(card.locator(".port")).to_have_text(str(orders["port"]))
            expect(card.locator(".resource-id")).to_have_text(orders["resource_id"])
            expect(card.locator('li[data-member="orders-instance-1"]')).to_contain_text("writer")
            expect(page.locator('.cluster[data-cluster="ledger"]')).to_have_count(1)
            expect(page.locator("#proxies")).to_contain_text("orders-proxy")
            assert errors == []
        finally:
            browser.close()


def test_server_doc_clusters_section_matches_the_parser() -> None:
    """docs/server.md's ``[[clusters]]`` example parses, and its key table names exactly the
    keys the parser takes."""
    import re
    import tomllib

    from rdsiam_emulator.server import cluster_config, config

    doc = (Path(__file__).resolve().parents[3] / "docs" / "server.md").read_text()
    section = doc.split("### `[[clusters]]`", 1)[1].split("\n### ", 1)[0]
    [example] = re.findall(r"```toml\n(.*?)```", section, re.S)
    [spec] = config.parse(tomllib.loads(example)).clusters
    assert (spec.name, spec.engine, spec.readers) == ("orders", "aurora-postgresql", 1)
    table = [line for line in section.splitlines() if line.startswith("| `")]
    named = {n for line in table for n in re.findall(r"`([a-z_]+)`", line.split("|")[1])}
    assert named == cluster_config._KEYS


def test_configured_proxy_in_front_of_a_configured_cluster(server: Serve) -> None:
    """``[[proxies]] target`` names a ``[[clusters]]`` entry: the default endpoint reaches the
    writer, the ``READ_ONLY`` endpoint a reader, each with a token signed for its own name."""
    [proxy] = [p for p in server.json("/_rdsiam/proxies")["proxies"]
               if p["name"] == "orders-proxy"]
    assert proxy["target"] == "orders"
    [reads] = proxy["endpoints"]
    assert reads["target_role"] == "READ_ONLY"
    assert reads["host"].startswith("reads.endpoint.proxy-") and reads["port"] == proxy["port"]

    def in_recovery(host: str, where: str) -> bool:
        password = token(server, host, proxy["port"], "app_user")
        with psycopg.connect(host=host, hostaddr=where, port=proxy["port"], user="app_user",
                             password=password, dbname="app", sslmode="verify-full",
                             sslrootcert=str(server.ca), connect_timeout=20) as conn:
            return bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]

    assert in_recovery(proxy["host"], proxy["address"]) is False
    assert in_recovery(reads["host"], reads["address"]) is True
    rds = server.client("rds")
    rows = rds.describe_db_proxy_targets(DBProxyName="orders-proxy")["Targets"]
    assert {r["Type"] for r in rows} == {"TRACKED_CLUSTER", "RDS_INSTANCE"}
