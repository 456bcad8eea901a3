"""Emulated Aurora PostgreSQL clusters end to end: real streaming replicas, real TLS, psycopg,
moto IAM; tokens for every endpoint name, cluster-ARN policies, the reader endpoint's spreading,
IAM switched per cluster, describe_db_clusters, failover."""

import json

import boto3
import psycopg
import pytest
from moto import mock_aws

from rdsiam_emulator.backends import BackendSpec
from rdsiam_emulator.backends.replication import start_local_postgres_cluster, wait_for_replay
from rdsiam_emulator.clusters import ClusterConfig, ClusterTopology, Member, start_cluster
from rdsiam_emulator.instances import Emulator


@pytest.fixture(scope="module")
def servers():
    writer, readers = start_local_postgres_cluster(
        BackendSpec("postgres", provider="local", dbname="app"), readers=2)
    yield writer, readers
    for handle in (*readers, writer):
        handle.stop()


@pytest.fixture(scope="module")
def cluster(servers, tmp_path_factory):
    writer, readers = servers
    emulator = Emulator(tmp_path_factory.mktemp("emulator"))
    running = start_cluster(emulator, ClusterConfig("orders", readers=2), writer, readers)
    for stmt in ("CREATE USER app_user", "GRANT rds_iam TO app_user",
                 "GRANT ALL ON SCHEMA public TO app_user"):
        writer.admin_execute(stmt, dbname="app")
    writer.admin_execute("CREATE TABLE items (id int)", dbname="app")
    writer.admin_execute("GRANT ALL ON items TO app_user", dbname="app")
    yield running
    running.close()
    emulator.close()


def _session(cluster, name, resource):
    iam = boto3.client("iam", region_name=cluster.region)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource}],
    }))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"], region_name=cluster.region)


def _connect(cluster, host, token):
    """psycopg to ``host`` (verified TLS) with ``token``."""
    return psycopg.connect(host=host, port=cluster.port, user="app_user", password=token,
                           dbname="app", sslmode="verify-full", sslrootcert=str(cluster.ca_bundle),
                           connect_timeout=10)


def _token(session, cluster, host):
    return session.client("rds").generate_db_auth_token(DBHostname=host, Port=cluster.port,
                                                        DBUsername="app_user")


def _refused(cluster, host, token):
    mark = cluster.writer.events.mark()
    with pytest.raises(psycopg.OperationalError,
                       match='PAM authentication failed for user "app_user"'):
        _connect(cluster, host, token)
    [event] = [e for e in cluster.writer.events.since(mark) if e.method == "iam"]
    return event


def test_topology_names_and_routing():
    members = (Member("c-1", "c-1.lbl.us-east-1.rds.amazonaws.com", "127.9.9.3"),
               Member("c-2", "c-2.lbl.us-east-1.rds.amazonaws.com", "127.9.9.4"),
               Member("c-3", "c-3.lbl.us-east-1.rds.amazonaws.com", "127.9.9.5"))
    topo = ClusterTopology(cluster_id="c", cluster_host="c.cluster-lbl.us-east-1.rds.amazonaws.com",
                           reader_host="c.cluster-ro-lbl.us-east-1.rds.amazonaws.com", port=5432,
                           region="us-east-1", account_id="123456789012",
                           resource_id="cluster-ABC", members=members,
                           cluster_address="127.9.9.1", reader_address="127.9.9.2")
    assert topo.writer_target() == ("127.9.9.3", 5432)
    assert [topo.next_reader_target()[0] for _ in range(4)] == [
        "127.9.9.4", "127.9.9.5", "127.9.9.4", "127.9.9.5"]
    # the writer: its own name and the cluster's; readers also the reader endpoint's
    assert topo.accepted_hosts("c-1") == (members[0].host, topo.cluster_host)
    assert topo.accepted_hosts("c-2") == (members[1].host, topo.cluster_host, topo.reader_host)
    endpoint = topo.endpoint_for("c-2")
    assert endpoint.accepts(topo.reader_host, 5432) and not endpoint.accepts(members[0].host, 5432)
    assert endpoint.db_user_arn("u") == "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABC/u"
    with pytest.raises(ValueError, match="not a reader"):
        topo.fail_over("c-1")
    assert topo.fail_over() == "c-1" and topo.writer == "c-2"
    assert topo.readers == ("c-1", "c-3")


def test_reader_routing_follows_which_servers_run():
    members = tuple(Member(f"c-{i}", f"c-{i}.l.r.rds.amazonaws.com", f"127.9.9.{i + 2}")
                    for i in (1, 2, 3))
    down: set[str] = set()
    changes: list[tuple[str, ...]] = []
    topo = ClusterTopology(cluster_id="c", cluster_host="c.cluster-l.r.rds.amazonaws.com",
                           reader_host="c.cluster-ro-l.r.rds.amazonaws.com", port=1, region="r",
                           account_id="123456789012", resource_id="cluster-X", members=members,
                           cluster_address="127.9.9.1", reader_address="127.9.9.2",
                           available=lambda member: member not in down)
    topo.on_change = lambda: changes.append(topo.reader_targets())
    down.add("c-2")
    assert {topo.next_reader_target()[0] for _ in range(4)} == {"127.9.9.5"}
    down.add("c-3")  # no reader runs: the writer, which then accepts the reader endpoint's name
    assert topo.next_reader_target()[0] == "127.9.9.3"
    assert topo.reader_host in topo.accepted_hosts("c-1")
    down.clear()
    assert {topo.next_reader_target()[0] for _ in range(2)} == {"127.9.9.4", "127.9.9.5"}
    assert topo.reader_host not in topo.accepted_hosts("c-1")
    assert changes == [("c-3",), ("c-1",), ("c-2", "c-3")]  # each change once, in order


def test_bad_configurations_are_refused_before_anything_starts():
    with pytest.raises(ValueError, match="readers must be 0 or more"):
        ClusterConfig("c", readers=-1)
    with pytest.raises(ValueError, match="instance_ids names 1 members; the cluster has 2"):
        ClusterConfig("c", instance_ids=("only-one",))
    with pytest.raises(ValueError, match="non-empty"):
        ClusterConfig("")
    with pytest.raises(ValueError, match="must differ"):
        ClusterConfig("c", instance_ids=("A", "a"))
    # RDS stores identifiers lower-cased: so do names, moto and ARNs here
    upper = ClusterConfig("Orders", instance_ids=("Writer-A", "Reader-B"))
    assert (upper.cluster_id, upper.member_ids) == ("orders", ("writer-a", "reader-b"))
    with pytest.raises(ValueError, match="engine must be one of"):
        ClusterConfig("c", engine="oracle")
    assert ClusterConfig("c", readers=2).member_ids == ("c-instance-1", "c-instance-2",
                                                         "c-instance-3")
    solo = ClusterTopology(cluster_id="c", cluster_host="c.cluster-l.r.rds.amazonaws.com",
                           reader_host="c.cluster-ro-l.r.rds.amazonaws.com", port=1, region="r",
                           account_id="123456789012", resource_id="cluster-X",
                           members=(Member("c-1", "c-1.l.r.rds.amazonaws.com", "127.9.9.3"),),
                           cluster_address="127.9.9.1", reader_address="127.9.9.2")
    with pytest.raises(ValueError, match="no reader to fail over to"):
        solo.fail_over()
    # no reader: the reader endpoint routes to the writer, which then accepts its name
    assert solo.next_reader_target() == ("127.9.9.3", 1)
    assert solo.reader_host in solo.accepted_hosts("c-1")


def test_start_cluster_checks_the_servers_given(servers, tmp_path):
    writer, readers = servers
    with Emulator(tmp_path) as emulator, pytest.raises(ValueError, match="1 servers given"):
        start_cluster(emulator, ClusterConfig("x", readers=2), writer, readers[:1])


def test_cluster_endpoint_names(cluster):
    label = cluster.dns_label
    assert cluster.host == f"orders.cluster-{label}.us-east-1.rds.amazonaws.com"
    assert cluster.reader_host == f"orders.cluster-ro-{label}.us-east-1.rds.amazonaws.com"
    assert [m.host for m in cluster.members.values()] == [
        f"orders-instance-{i}.{label}.us-east-1.rds.amazonaws.com" for i in (1, 2, 3)]
    # one port for every endpoint of the cluster, each name on its own loopback address
    assert {m.port for m in cluster.members.values()} == {cluster.port}
    assert cluster.resource_id.startswith("cluster-") and len(cluster.resource_id) == 34


def test_writer_reader_and_instance_endpoints(cluster, servers):
    writer_backend, _ = servers
    with mock_aws():
        session = _session(cluster, "app", cluster.db_user_arn("app_user"))
        with _connect(cluster, cluster.host, _token(session, cluster, cluster.host)) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
            conn.execute("INSERT INTO items VALUES (42)")
            conn.commit()
        for reader in cluster.readers:
            wait_for_replay(writer_backend, reader.backend)
        with _connect(cluster, cluster.reader_host,
                      _token(session, cluster, cluster.reader_host)) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            assert conn.execute("SELECT id FROM items").fetchall() == [(42,)]
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction,
                               match="cannot execute INSERT in a read-only transaction"):
                conn.execute("INSERT INTO items VALUES (43)")
        # each instance endpoint with a token signed for it lands on that very server
        for member in cluster.members.values():
            with _connect(cluster, member.host, _token(session, cluster, member.host)) as conn:
                port = conn.execute("SELECT current_setting('port')").fetchone()
                assert port == (str(member.backend.port),)


def test_first_login_on_a_reader(cluster, servers):
    """A hot standby cannot store the derived password: the reader's endpoint stores it through
    the writer and waits for the replay."""
    writer_backend, _ = servers
    writer_backend.admin_execute("CREATE USER first_on_reader")
    writer_backend.admin_execute("GRANT rds_iam TO first_on_reader")
    try:
        for reader in cluster.readers:
            wait_for_replay(writer_backend, reader.backend)
        with mock_aws():
            session = _session(cluster, "first", cluster.db_user_arn("first_on_reader"))
            for reader in cluster.readers:
                token = session.client("rds").generate_db_auth_token(
                    DBHostname=reader.host, Port=cluster.port, DBUsername="first_on_reader")
                with psycopg.connect(host=reader.host, port=cluster.port, user="first_on_reader",
                                     password=token, dbname="app", sslmode="verify-full",
                                     sslrootcert=str(cluster.ca_bundle)) as conn:
                    assert conn.execute("SELECT current_user, pg_is_in_recovery()").fetchone() \
                        == ("first_on_reader", True)
    finally:
        writer_backend.admin_execute("DROP USER first_on_reader")


def test_reader_endpoint_spreads_connections(cluster):
    with mock_aws():
        session = _session(cluster, "spread", cluster.db_user_arn("app_user"))
        seen = []
        for _ in range(4):
            token = _token(session, cluster, cluster.reader_host)
            with _connect(cluster, cluster.reader_host, token) as conn:
                seen.append(conn.execute("SELECT current_setting('port')").fetchone()[0])
        ports = [str(r.backend.port) for r in cluster.readers]
        assert sorted(set(seen)) == sorted(ports)  # both readers, never the writer
        assert seen[0] != seen[1] and seen[:2] == seen[2:]  # round robin


def test_tokens_for_each_name(cluster):
    writer, reader = cluster.writer, cluster.readers[0]
    with mock_aws():
        session = _session(cluster, "names", cluster.db_user_arn("app_user"))
        # the cluster endpoint's token works on every member (the custom-endpoint workaround)
        with _connect(cluster, reader.host, _token(session, cluster, cluster.host)):
            pass
        with _connect(cluster, cluster.reader_host, _token(session, cluster, cluster.host)):
            pass
        # the reader endpoint's token on the writer: refused (the stricter reading)
        event = _refused(cluster, writer.host, _token(session, cluster, cluster.reader_host))
        assert event.reason == "host_mismatch"
        # … and the hint does not recommend it there
        assert "or the reader endpoint" not in event.hint
        assert "accepted on the readers only" in event.hint
        # on a reader it may (the reader endpoint's name is accepted there)
        event = _refused(cluster, reader.host, _token(session, cluster, writer.host))
        assert "or the reader endpoint" in event.hint
        # another member's instance name: refused
        event = _refused(cluster, writer.host, _token(session, cluster, reader.host))
        assert event.reason == "host_mismatch"
        # a custom endpoint name, an alias, an IP: refused, with the iam_host hint
        label = cluster.dns_label
        for host in (f"analytics.cluster-custom-{label}.us-east-1.rds.amazonaws.com",
                     "db.example.com", cluster.topology.cluster_address):
            event = _refused(cluster, cluster.host, _token(session, cluster, host))
            assert event.reason == "host_mismatch"
            assert "iam_host / iamHost" in event.hint and cluster.host in event.hint


def test_cluster_arn_policies(cluster):
    arn = "arn:aws:rds-db:us-east-1:123456789012:dbuser:{}/app_user"
    writer = cluster.writer
    with mock_aws():
        wildcard = _session(cluster, "wild", "arn:aws:rds-db:us-east-1:123456789012:dbuser:"
                                             "cluster-*/*")
        with _connect(cluster, cluster.host, _token(wildcard, cluster, cluster.host)):
            pass
        # an instance's DbiResourceId in a cluster policy: refused, the near miss named
        member_arn = _session(cluster, "member", arn.format(writer.resource_id))
        event = _refused(cluster, cluster.host, _token(member_arn, cluster, cluster.host))
        assert event.reason == "not_authorized"
        assert f"names {writer.resource_id!r}, the DbiResourceId of one cluster member" in (
            event.hint)
        assert cluster.resource_id in event.hint
        # a db-* wildcard names no member: the hint says what it matched
        db_wild = _session(cluster, "dbwild", arn.format("db-*").replace("app_user", "*"))
        event = _refused(cluster, cluster.host, _token(db_wild, cluster, cluster.host))
        assert event.reason == "not_authorized"
        assert not any(f"names '{m.resource_id}'" in event.hint
                       for m in cluster.members.values())
        assert "has a pattern matching 'db-" in event.hint and cluster.resource_id in event.hint
        # the cluster identifier instead of its resource id
        by_name = _session(cluster, "byname", arn.format("orders"))
        event = _refused(cluster, cluster.host, _token(by_name, cluster, cluster.host))
        assert event.reason == "not_authorized"
        assert "names the cluster identifier 'orders'" in event.hint


def test_describe_db_clusters_and_the_iam_switch(cluster):
    with mock_aws():
        cluster.register_in_moto()
        rds = boto3.client("rds", region_name="us-east-1")
        [desc] = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"]
        assert desc["Endpoint"] == cluster.host
        assert desc["ReaderEndpoint"] == cluster.reader_host
        assert desc["Port"] == cluster.port
        assert desc["DbClusterResourceId"] == cluster.resource_id
        assert desc["IAMDatabaseAuthenticationEnabled"] is True
        assert desc["Engine"] == "aurora-postgresql"
        major = cluster.writer.backend.version.split(".")[0]
        assert desc["DBClusterParameterGroup"] == f"default.aurora-postgresql{major}"
        assert [(m["DBInstanceIdentifier"], m["IsClusterWriter"])
                for m in desc["DBClusterMembers"]] == [
            ("orders-instance-1", True), ("orders-instance-2", False),
            ("orders-instance-3", False)]
        instances = rds.describe_db_instances()["DBInstances"]
        assert {(d["DBInstanceIdentifier"], d["Endpoint"]["Address"], d["DbiResourceId"],
                 d["IAMDatabaseAuthenticationEnabled"]) for d in instances} == {
            (m.instance_id, m.host, m.resource_id, True) for m in cluster.members.values()}
        # modify_db_cluster switches the cluster; its members report the cluster's flag
        rds.modify_db_cluster(DBClusterIdentifier="orders",
                              EnableIAMDatabaseAuthentication=False, ApplyImmediately=True)
        [desc] = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"]
        assert desc["IAMDatabaseAuthenticationEnabled"] is False
        assert {d["IAMDatabaseAuthenticationEnabled"]
                for d in rds.describe_db_instances()["DBInstances"]} == {False}
        # the emulator's switch: every member refuses at once, and moto says so
        session = _session(cluster, "switch", cluster.db_user_arn("app_user"))
        cluster.set_iam_enabled(True)
        assert rds.describe_db_clusters()["DBClusters"][0]["IAMDatabaseAuthenticationEnabled"]
        cluster.set_iam_enabled(False)
        try:
            for member in cluster.members.values():
                event = _refused(cluster, member.host, _token(session, cluster, member.host))
                assert event.reason == "iam_disabled"
            [desc] = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"]
            assert desc["IAMDatabaseAuthenticationEnabled"] is False
        finally:
            cluster.set_iam_enabled(True)


def test_failover_promotes_a_reader_for_real(cluster):
    """Last in the module: it changes the writer."""
    old = cluster.writer
    with mock_aws():
        cluster.register_in_moto()
        session = _session(cluster, "failover", cluster.db_user_arn("app_user"))
        new_id = cluster.failover()
        assert new_id == "orders-instance-2" and cluster.writer.instance_id == new_id
        with _connect(cluster, cluster.host, _token(session, cluster, cluster.host)) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
            assert conn.execute("SELECT current_setting('port')").fetchone() == (
                str(cluster.writer.backend.port),)
            conn.execute("INSERT INTO items VALUES (7)")
            conn.commit()
        # the old writer is a replica of the new one now
        wait_for_replay(cluster.writer.backend, old.backend)
        with _connect(cluster, old.host, _token(session, cluster, old.host)) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            assert (7,) in conn.execute("SELECT id FROM items").fetchall()
        # the other reader streams from the new writer now, and has the row
        third = cluster.members["orders-instance-3"]
        wait_for_replay(cluster.writer.backend, third.backend)
        assert third.backend.admin_execute("SELECT sender_host FROM pg_stat_wal_receiver") == [
            (cluster.writer.backend.unix_socket,)]
        assert (7,) in third.backend.admin_execute("SELECT id FROM items", dbname="app")
        # the reader endpoint's name moved with the roles
        assert cluster.reader_host in cluster.topology.accepted_hosts(old.instance_id)
        assert cluster.reader_host not in cluster.topology.accepted_hosts(new_id)
        rds = boto3.client("rds", region_name="us-east-1")
        [desc] = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"]
        assert {m["DBInstanceIdentifier"] for m in desc["DBClusterMembers"]
                if m["IsClusterWriter"]} == {new_id}
