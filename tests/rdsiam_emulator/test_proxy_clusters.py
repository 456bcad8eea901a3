"""RDS Proxy in front of an Aurora cluster, end to end: register_db_proxy_targets with
DBClusterIdentifiers (boto3 against moto) starts the proxy on the cluster's writer; the read-only
proxy endpoint (create_db_proxy_endpoint) sends new sessions to the readers; failover is followed.
Real replicas (PostgreSQL streaming, MariaDB GTID), real TLS, psycopg and PyMySQL."""

import json
import uuid

import boto3
import psycopg
import pymysql
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from rdsiam_emulator.aws.rds import no_default_amis
from rdsiam_emulator.backends import BackendSpec
from rdsiam_emulator.backends.replication import (
    start_local_mariadb_cluster,
    start_local_postgres_cluster,
    wait_for_replay,
)
from rdsiam_emulator.clusters import ClusterConfig, start_cluster
from rdsiam_emulator.instances import Emulator
from rdsiam_emulator.proxies import auto_start

REGION = "us-east-1"
PASSWORD = "s3cret-Pass"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    emu = Emulator(tmp_path_factory.mktemp("proxy-cluster-emulator"))
    yield emu
    emu.close()


class World:
    """One test's moto state around a running cluster, and helpers to make a proxy for it."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.rds = boto3.client("rds", region_name=REGION)
        self.iam = boto3.client("iam", region_name=REGION)
        self.sm = boto3.client("secretsmanager", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.role_arn = self.iam.create_role(
            RoleName="proxy-role", AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "rds.amazonaws.com"}}]}))["Role"]["Arn"]

    def proxy(self, user, iam_auth):
        name = f"px-{uuid.uuid4().hex[:8]}"
        arn = self.sm.create_secret(Name=f"s-{name}", SecretString=json.dumps(
            {"username": user, "password": PASSWORD}))["ARN"]
        family = "POSTGRESQL" if self.cluster.engine == "postgres" else "MYSQL"
        self.rds.create_db_proxy(DBProxyName=name, EngineFamily=family, RoleArn=self.role_arn,
                                 Auth=[{"SecretArn": arn, "IAMAuth": iam_auth}],
                                 VpcSubnetIds=[self.subnet])
        self.rds.register_db_proxy_targets(DBProxyName=name,
                                           DBClusterIdentifiers=[self.cluster.cluster_id])
        return name

    def token(self, proxy, user, host):
        name = f"u-{uuid.uuid4().hex[:8]}"
        self.iam.create_user(UserName=name)
        self.iam.put_user_policy(UserName=name, PolicyName="c", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                           "Resource": proxy.db_user_arn(user)}]}))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        session = boto3.Session(aws_access_key_id=key["AccessKeyId"],
                                aws_secret_access_key=key["SecretAccessKey"], region_name=REGION)
        port = proxy.port if host == proxy.host else proxy.endpoints[host.split(".")[0]].port
        return session.client("rds").generate_db_auth_token(DBHostname=host, Port=port,
                                                            DBUsername=user)

    def read_only_endpoint(self, proxy_name, name="reads"):
        made = self.rds.create_db_proxy_endpoint(
            DBProxyName=proxy_name, DBProxyEndpointName=name, VpcSubnetIds=[self.subnet],
            TargetRole="READ_ONLY")["DBProxyEndpoint"]
        return made


def _world(emulator, cluster):
    with no_default_amis(), mock_aws(), auto_start(emulator):
        cluster.register_in_moto()
        yield World(cluster)


def _targets(world, proxy_name):
    rows = world.rds.describe_db_proxy_targets(DBProxyName=proxy_name)["Targets"]
    return {(r["Type"], r["RdsResourceId"]): r for r in rows}


def _check_targets(world, proxy_name):
    """describe_db_proxy_targets as RDS reports a cluster target: the TRACKED_CLUSTER row and one
    RDS_INSTANCE row per member, roles by the current writer, health checked for real."""
    cluster = world.cluster
    rows = _targets(world, proxy_name)
    tracked = rows.pop(("TRACKED_CLUSTER", cluster.cluster_id))
    assert (tracked["Endpoint"], tracked["Port"], tracked["TrackedClusterId"]) == (
        cluster.host, cluster.port, cluster.cluster_id)
    assert tracked["TargetArn"].endswith(f":cluster:{cluster.cluster_id}")
    assert "TargetHealth" not in tracked and "Role" not in tracked
    assert set(rows) == {("RDS_INSTANCE", m) for m in cluster.members}
    for (_, member_id), row in rows.items():
        role = "READ_WRITE" if member_id == cluster.topology.writer else "READ_ONLY"
        assert (row["Role"], row["Endpoint"], row["Port"]) == (
            role, cluster.members[member_id].host, cluster.port)
        assert row["TrackedClusterId"] == cluster.cluster_id
        assert row["TargetHealth"] == {"State": "AVAILABLE"}


# ---------------------------------------------------------------------------------- PostgreSQL

@pytest.fixture(scope="module")
def pg_cluster(emulator):
    writer, readers = start_local_postgres_cluster(
        BackendSpec("postgres", provider="local", dbname="app"), readers=1)
    try:
        cluster = start_cluster(emulator, ClusterConfig("orders"), writer, readers)
        for stmt in (f"CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'",
                     "GRANT ALL ON SCHEMA public TO app", "CREATE TABLE items (id int)",
                     "GRANT ALL ON items TO app",
                     "GRANT pg_read_all_settings TO app"):  # data_directory names a server
            writer.admin_execute(stmt, dbname="app")
        wait_for_replay(writer, readers[0])
        yield cluster
        cluster.close()
    finally:
        for handle in (*readers, writer):
            handle.stop()


@pytest.fixture
def pg(emulator, pg_cluster):
    yield from _world(emulator, pg_cluster)


def _pg(proxy_host, port, password, ca):
    return psycopg.connect(host=proxy_host, port=port, user="app", password=password,
                           dbname="app", sslmode="verify-full", sslrootcert=str(ca),
                           connect_timeout=10, autocommit=True)


def _data_dir(conn):
    return conn.execute("SELECT current_setting('data_directory')").fetchone()[0]


def test_pg_proxy_writer_reader_endpoint_and_failover(pg, emulator):
    cluster = pg.cluster
    name = pg.proxy("app", "REQUIRED")
    proxy = emulator.proxy(name)
    assert proxy.target_id == cluster.cluster_id
    ca = proxy.ca_bundle
    _check_targets(pg, name)

    # the default endpoint: the cluster's writer
    with _pg(proxy.host, proxy.port, pg.token(proxy, "app", proxy.host), ca) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        writer_dir = _data_dir(conn)
        conn.execute("INSERT INTO items VALUES (42)")

    # the read-only endpoint: its own name, the readers
    made = pg.read_only_endpoint(name)
    ro = proxy.endpoints["reads"]
    assert made["Endpoint"] == ro.host == proxy.host.replace(
        f"{name}.proxy-", "reads.endpoint.proxy-")
    assert (made["TargetRole"], made["IsDefault"], made["Status"]) == (
        "READ_ONLY", False, "available")
    assert made["DBProxyEndpointArn"].split(":")[5] == "db-proxy-endpoint"
    listed = pg.rds.describe_db_proxy_endpoints(DBProxyName=name)["DBProxyEndpoints"]
    assert [(e["DBProxyEndpointName"], e["TargetRole"], e["IsDefault"], e["Endpoint"])
            for e in listed] == [("default", "READ_WRITE", True, proxy.host),
                                 ("reads", "READ_ONLY", False, ro.host)]
    wait_for_replay(cluster.writer.backend, cluster.readers[0].backend)
    with _pg(ro.host, ro.port, pg.token(proxy, "app", ro.host), ca) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert conn.execute("SELECT id FROM items").fetchall() == [(42,)]  # replicated
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO items VALUES (1)")
    event = proxy.events_since(0)[-1]
    assert (event.outcome, event.instance_id) == ("allow", name)

    # a token for the proxy's default name is refused on the read-only endpoint
    with pytest.raises(psycopg.OperationalError, match='IAM authentication failed for user "app"'):
        _pg(ro.host, ro.port, pg.token(proxy, "app", proxy.host), ca)
    event = proxy.events_since(0)[-1]
    assert event.reason == "host_mismatch"
    assert repr(ro.host) in event.hint

    # failover: new sessions through the default endpoint land on the new writer
    new_writer = cluster.failover()
    with _pg(proxy.host, proxy.port, pg.token(proxy, "app", proxy.host), ca) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        assert _data_dir(conn) != writer_dir
        assert _data_dir(conn) == _data_dir_of(cluster.members[new_writer].backend)
        conn.execute("INSERT INTO items VALUES (43)")
    with _pg(ro.host, ro.port, pg.token(proxy, "app", ro.host), ca) as conn:
        assert _data_dir(conn) == writer_dir  # the old writer is the reader now
    _check_targets(pg, name)

    pg.rds.delete_db_proxy_endpoint(DBProxyEndpointName="reads")
    assert "reads" not in proxy.endpoints
    assert [e["DBProxyEndpointName"] for e in pg.rds.describe_db_proxy_endpoints(
        DBProxyName=name)["DBProxyEndpoints"]] == ["default"]
    with pytest.raises(psycopg.OperationalError):
        _pg(ro.host, ro.port, "x", ca)


def _data_dir_of(backend):
    conn = psycopg.connect(**backend.dsn(backend.master_user, backend.master_password, "app"))
    try:
        return _data_dir(conn)
    finally:
        conn.close()


def test_pg_proxy_endpoint_api_errors(pg, emulator):
    name = pg.proxy("app", "DISABLED")
    with pytest.raises(ClientError, match="TargetRole"):
        pg.rds.create_db_proxy_endpoint(DBProxyName=name, DBProxyEndpointName="x",
                                        VpcSubnetIds=[pg.subnet], TargetRole="READ_MOSTLY")
    with pytest.raises(ClientError, match="DBProxyNotFoundFault"):
        pg.rds.create_db_proxy_endpoint(DBProxyName="nope", DBProxyEndpointName="x",
                                        VpcSubnetIds=[pg.subnet])
    with pytest.raises(ClientError, match="DBProxyEndpointNotFoundFault"):
        pg.rds.delete_db_proxy_endpoint(DBProxyEndpointName="nope")
    with pytest.raises(ClientError, match="DBClusterNotFoundFault"):
        pg.rds.register_db_proxy_targets(DBProxyName=name, DBClusterIdentifiers=["nope"])
    # a READ_WRITE endpoint of its own name also reaches the writer; DISABLED checks the secret
    pg.rds.create_db_proxy_endpoint(DBProxyName=name, DBProxyEndpointName="writes",
                                    VpcSubnetIds=[pg.subnet])
    proxy = emulator.proxy(name)
    rw = proxy.endpoints["writes"]
    with _pg(rw.host, rw.port, PASSWORD, proxy.ca_bundle) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    with pytest.raises(psycopg.OperationalError, match="no credentials for the role app"):
        _pg(rw.host, rw.port, "wrong", proxy.ca_bundle)
    assert proxy.events_since(0)[-1].reason == "proxy_password_mismatch"
    pg.rds.delete_db_proxy(DBProxyName=name)
    assert name not in {p.name for p in emulator.proxies}
    assert rw._closed


# ----------------------------------------------------------------------------- MySQL (MariaDB)

@pytest.fixture(scope="module")
def my_cluster(emulator):
    writer, readers = start_local_mariadb_cluster(
        BackendSpec("mysql", provider="local", dbname="app"), readers=1)
    try:
        cluster = start_cluster(emulator, ClusterConfig("shop", engine="mysql"), writer, readers)
        master = pymysql.connect(host=cluster.host, port=cluster.port, user=writer.master_user,
                                 password=writer.master_password,
                                 ssl={"ca": str(cluster.ca_bundle)}, autocommit=True)
        with master.cursor() as cur:
            cur.execute(f"CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}'")
            cur.execute("GRANT ALL ON app.* TO 'app'@'%'")
            cur.execute("CREATE TABLE app.items (id INT)")
        master.close()
        wait_for_replay(writer, readers[0])
        yield cluster
        cluster.close()
    finally:
        for handle in (*readers, writer):
            handle.stop()


@pytest.fixture
def my(emulator, my_cluster):
    yield from _world(emulator, my_cluster)


def _my(host, port, password, ca):
    return pymysql.connect(host=host, port=port, user="app", password=password, database="app",
                           ssl={"ca": str(ca)}, autocommit=True, connect_timeout=10)


def _my_query(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_mysql_proxy_disabled_reader_endpoint_and_failover(my, emulator):
    cluster = my.cluster
    name = my.proxy("app", "DISABLED")
    proxy = emulator.proxy(name)
    ca = proxy.ca_bundle
    _check_targets(my, name)

    conn = _my(proxy.host, proxy.port, PASSWORD, ca)
    assert _my_query(conn, "SELECT @@global.read_only") == ((0,),)
    writer_id = _my_query(conn, "SELECT @@server_id")
    _my_query(conn, "INSERT INTO items VALUES (7)")
    conn.close()
    with pytest.raises(pymysql.err.OperationalError) as info:
        _my(proxy.host, proxy.port, "wrong", ca)
    assert info.value.args == (1045, "Access denied for user 'app'@'%' (using password: YES)")
    assert proxy.events_since(0)[-1].reason == "proxy_password_mismatch"

    my.read_only_endpoint(name)
    ro = proxy.endpoints["reads"]
    wait_for_replay(cluster.writer.backend, cluster.readers[0].backend)
    conn = _my(ro.host, ro.port, PASSWORD, ca)
    assert _my_query(conn, "SELECT @@global.read_only") == ((1,),)
    assert _my_query(conn, "SELECT id FROM items") == ((7,),)
    with pytest.raises(pymysql.err.OperationalError) as info:
        _my_query(conn, "INSERT INTO items VALUES (8)")
    assert info.value.args[0] == 1290  # --read-only
    conn.close()

    new_writer = cluster.failover()
    conn = _my(proxy.host, proxy.port, PASSWORD, ca)
    assert _my_query(conn, "SELECT @@global.read_only") == ((0,),)
    assert _my_query(conn, "SELECT @@server_id") != writer_id
    _my_query(conn, "INSERT INTO items VALUES (9)")
    conn.close()
    assert cluster.topology.writer == new_writer
    conn = _my(ro.host, ro.port, PASSWORD, ca)
    assert _my_query(conn, "SELECT @@server_id") == writer_id  # the old writer reads now
    conn.close()
    _check_targets(my, name)
