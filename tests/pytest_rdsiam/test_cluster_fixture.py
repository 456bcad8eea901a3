"""The cluster fixtures as users meet them: a real test file run by pytester against real
PostgreSQL replicas (docs/aurora.md, docs/pytest.md)."""

USER_TESTS = r'''
import re

import boto3
import psycopg
import pytest


def test_cluster_contract(rds_iam_cluster):
    c = rds_iam_cluster
    assert re.fullmatch(r"cluster-[A-Z0-9]{26}", c.resource_id)
    assert c.host.startswith(f"{c.cluster_id}.cluster-c")
    assert c.reader_host.startswith(f"{c.cluster_id}.cluster-ro-c")
    assert c.db_user_arn("app") == (
        f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{c.resource_id}/app")
    [desc] = boto3.client("rds", region_name="us-east-1").describe_db_clusters(
        DBClusterIdentifier=c.cluster_id)["DBClusters"]
    assert (desc["Endpoint"], desc["ReaderEndpoint"], desc["Port"]) == (
        c.host, c.reader_host, c.port)
    c.create_iam_db_user("app")
    session = c.iam_session("app")
    with psycopg.connect(**c.connect_kwargs("app", c.generate_token("app", session))) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    c.wait_for_replicas()
    token = c.generate_token("app", session, host=c.reader_host)
    with psycopg.connect(**c.connect_kwargs("app", token, host=c.reader_host)) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO t VALUES (2)")
    assert [e.outcome for e in c.auth_events if e.method == "iam"] == ["allow", "allow"]


def test_failover_and_wrong_host(rds_iam_cluster):
    c = rds_iam_cluster
    c.create_iam_db_user("app")
    session = c.iam_session("app")
    first_writer = c.writer_host
    assert c.failover() == c.cluster_id + "-instance-2"
    assert c.writer_host != first_writer and c.reader_instance_hosts == (first_writer,)
    with psycopg.connect(**c.connect_kwargs("app", c.generate_token("app", session))) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    [desc] = boto3.client("rds", region_name="us-east-1").describe_db_clusters(
        DBClusterIdentifier=c.cluster_id)["DBClusters"]
    assert [m["DBInstanceIdentifier"] for m in desc["DBClusterMembers"]
            if m["IsClusterWriter"]] == [c.cluster_id + "-instance-2"]
    custom = c.host.replace(".cluster-", ".cluster-custom-").replace(c.cluster_id, "custom", 1)
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        psycopg.connect(**c.connect_kwargs("app", c.generate_token("app", session, host=custom)))
    assert c.auth_events[-1].reason == "host_mismatch"


def test_cluster_factory_arguments(rds_iam_cluster_factory):
    with pytest.raises(TypeError, match="unknown argument"):
        rds_iam_cluster_factory(replicas=2)
    with pytest.raises(ValueError, match="engine must be one of"):
        rds_iam_cluster_factory(engine="oracle")
    c = rds_iam_cluster_factory(readers=0, cluster_id="solo", iam_enabled=False)
    assert c.reader_instance_hosts == () and c.iam_enabled is False
    [desc] = boto3.client("rds", region_name="us-east-1").describe_db_clusters(
        DBClusterIdentifier="solo")["DBClusters"]
    assert desc["IAMDatabaseAuthenticationEnabled"] is False


def test_mysql_cluster(rds_iam_cluster_factory):
    import pymysql

    c = rds_iam_cluster_factory(engine="mysql")
    c.create_iam_db_user("shop")
    session = c.iam_session("shop")
    conn = pymysql.connect(**c.connect_kwargs("shop", c.generate_token("shop", session)))
    with conn.cursor() as cur:
        cur.execute("SELECT @@global.read_only, CURRENT_USER()")
        assert cur.fetchone() == (0, "shop@%")
    conn.close()
    token = c.generate_token("shop", session, host=c.reader_host)
    conn = pymysql.connect(**c.connect_kwargs("shop", token, host=c.reader_host))
    with conn.cursor() as cur:
        cur.execute("SELECT @@global.read_only")
        assert cur.fetchone() == (1,)
    conn.close()
'''


def test_cluster_fixtures_with_the_emulator(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("--rdsiam-emulator", "--rdsiam-backend", "local",
                                "-p", "no:xdist", "-p", "no:randomly")
    result.assert_outcomes(passed=4)


def test_cluster_fixtures_skip_without_activation(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:xdist", "-rs")
    result.assert_outcomes(skipped=4)


def test_cluster_docs_match_the_code():
    """docs/pytest.md's cluster tables name exactly the factory's arguments and only attributes
    the fixture object has."""
    import re
    from pathlib import Path

    from pytest_rdsiam.cluster import RdsIamCluster
    from pytest_rdsiam.fixtures import CLUSTER_ARGUMENTS

    lines = (Path(__file__).resolve().parents[2] / "docs" / "pytest.md").read_text().splitlines()

    def first_cells(header):
        start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
        rows = []
        for line in lines[start + 2:]:
            if not line.startswith("|"):
                break
            cell = line.strip("|").split("|")[0]
            rows += [re.split(r"[(\s]", n, maxsplit=1)[0] for n in re.findall(r"`([^`]+)`", cell)]
        return set(rows)

    assert first_cells("cluster argument") == CLUSTER_ARGUMENTS
    documented = first_cells("cluster attribute / method")
    missing = {n for n in documented if not hasattr(RdsIamCluster, n)}
    assert missing == {"cluster", "clock"}  # plain attributes, set in __init__
    cluster = RdsIamCluster(object(), object(), 0)
    assert all(hasattr(cluster, n) for n in missing)
