"""Emulated Aurora MySQL clusters on MariaDB end to end: real GTID replicas, real TLS, PyMySQL,
moto IAM: writer, reader and instance endpoints, the read-only error, replication, failover."""

import json

import boto3
import pymysql
import pytest
from moto import mock_aws

from rdsiam_emulator.backends import BackendSpec
from rdsiam_emulator.backends.replication import start_local_mariadb_cluster, wait_for_replay
from rdsiam_emulator.clusters import ClusterConfig, start_cluster
from rdsiam_emulator.instances import Emulator


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    writer, readers = start_local_mariadb_cluster(
        BackendSpec("mysql", provider="local", dbname="app"), readers=1)
    emulator = Emulator(tmp_path_factory.mktemp("emulator"))
    try:
        running = start_cluster(emulator, ClusterConfig("shop", engine="mysql"), writer, readers)
        master = pymysql.connect(host=running.host, port=running.port, user=writer.master_user,
                                 password=writer.master_password,
                                 ssl={"ca": str(running.ca_bundle)}, autocommit=True)
        with master.cursor() as cur:  # the RDS DDL through the cluster endpoint (the writer)
            cur.execute("CREATE USER 'shopper'@'%' IDENTIFIED WITH AWSAuthenticationPlugin "
                        "AS 'RDS'")
            cur.execute("GRANT ALL ON app.* TO 'shopper'@'%'")
            cur.execute("CREATE TABLE app.items (id INT)")
        master.close()
        for reader in readers:
            wait_for_replay(writer, reader)
        yield running
        running.close()
    finally:
        emulator.close()
        for handle in (*readers, writer):
            handle.stop()


def _session(cluster, name):
    iam = boto3.client("iam", region_name=cluster.region)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                       "Resource": cluster.db_user_arn("shopper")}],
    }))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"], region_name=cluster.region)


def _connect(cluster, host, session, *, sign_for=None):
    token = session.client("rds").generate_db_auth_token(
        DBHostname=sign_for or host, Port=cluster.port, DBUsername="shopper")
    return pymysql.connect(host=host, port=cluster.port, user="shopper", password=token,
                           database="app", ssl={"ca": str(cluster.ca_bundle)}, autocommit=True)


def _one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_writer_reader_and_instance_endpoints(cluster):
    with mock_aws():
        session = _session(cluster, "shop")
        conn = _connect(cluster, cluster.host, session)
        assert _one(conn, "SELECT @@global.read_only, CURRENT_USER()") == ((0, "shopper@%"),)
        _one(conn, "INSERT INTO items VALUES (42)")
        conn.close()
        wait_for_replay(cluster.writer.backend, cluster.readers[0].backend)
        conn = _connect(cluster, cluster.reader_host, session)
        assert _one(conn, "SELECT @@global.read_only") == ((1,),)
        assert _one(conn, "SELECT id FROM items") == ((42,),)
        with pytest.raises(pymysql.err.OperationalError) as info:
            _one(conn, "INSERT INTO items VALUES (43)")
        assert info.value.args[0] == 1290 and "--read-only" in info.value.args[1]
        conn.close()
        for member in cluster.members.values():
            conn = _connect(cluster, member.host, session)
            assert _one(conn, "SELECT @@global.port") == ((member.backend.port,),)
            conn.close()
        # the reader endpoint's token on the writer: refused with MySQL's 1045
        mark = cluster.writer.events.mark()
        with pytest.raises(pymysql.err.OperationalError) as info:
            _connect(cluster, cluster.writer.host, session, sign_for=cluster.reader_host)
        assert info.value.args[0] == 1045
        [event] = [e for e in cluster.writer.events.since(mark) if e.method == "iam"]
        assert event.reason == "host_mismatch"


def test_describe_and_failover(cluster):
    old = cluster.writer
    with mock_aws():
        cluster.register_in_moto()
        rds = boto3.client("rds", region_name="us-east-1")
        [desc] = rds.describe_db_clusters(DBClusterIdentifier="shop")["DBClusters"]
        assert desc["Engine"] == "aurora-mysql"
        assert desc["DBClusterParameterGroup"] == "default.aurora-mysql8.0"  # moto: aurora8.0
        assert (desc["Endpoint"], desc["Port"]) == (cluster.host, cluster.port)
        session = _session(cluster, "failover")
        new_id = cluster.failover()
        assert new_id == "shop-instance-2"
        conn = _connect(cluster, cluster.host, session)
        assert _one(conn, "SELECT @@global.read_only, @@global.port") == (
            (0, cluster.writer.backend.port),)
        _one(conn, "INSERT INTO items VALUES (7)")
        conn.close()
        wait_for_replay(cluster.writer.backend, old.backend)
        conn = _connect(cluster, cluster.reader_host, session)  # now the old writer
        assert _one(conn, "SELECT @@global.read_only, @@global.port") == (
            (1, old.backend.port),)
        assert (7,) in _one(conn, "SELECT id FROM items")
        conn.close()
        [desc] = rds.describe_db_clusters(DBClusterIdentifier="shop")["DBClusters"]
        assert [m["DBInstanceIdentifier"] for m in desc["DBClusterMembers"]
                if m["IsClusterWriter"]] == [new_id]
