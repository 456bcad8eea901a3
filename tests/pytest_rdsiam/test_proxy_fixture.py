"""``rds_iam_proxy_factory`` as users meet it: real test files run by pytester against real
servers, proxies created through boto3 against the plugin's moto."""

USER_TESTS = r'''
import json

import boto3
import psycopg
import pytest


def _session(db, resource):
    iam = boto3.client("iam", region_name=db.region)
    iam.create_user(UserName="caller")
    iam.put_user_policy(UserName="caller", PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource}]}))
    key = iam.create_access_key(UserName="caller")["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"], region_name=db.region)


def _connect(db, proxy, user, password):
    return psycopg.connect(host=proxy.host, port=proxy.port, user=user, password=password,
                           dbname=db.dbname, sslmode="verify-full",
                           sslrootcert=str(proxy.ca_bundle))


def test_end_to_end_iam(rds_iam_db, rds_iam_proxy_factory):
    db = rds_iam_db
    db.create_iam_db_user("app")
    proxy = rds_iam_proxy_factory(db, default_auth_scheme="IAM_AUTH", role_may_connect_as=["app"])
    assert proxy.resource_id.startswith("prx-")
    token = _session(db, proxy.db_user_arn("app")).client("rds").generate_db_auth_token(
        DBHostname=proxy.host, Port=proxy.port, DBUsername="app")
    with _connect(db, proxy, "app", token) as conn:
        assert conn.execute("select current_user").fetchone() == ("app",)


def test_own_boto3_calls_and_health(rds_iam_db, rds_iam_proxy_factory):
    db = rds_iam_db
    sm = boto3.client("secretsmanager", region_name=db.region)
    arn = sm.create_secret(Name="master", SecretString=json.dumps(
        {"username": db.master_username, "password": "wrong"}))["ARN"]
    ec2 = boto3.client("ec2", region_name=db.region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    rds = boto3.client("rds", region_name=db.region)
    rds.create_db_proxy(DBProxyName="mine", EngineFamily="POSTGRESQL",
                        Auth=[{"SecretArn": arn, "IAMAuth": "DISABLED"}],
                        RoleArn="arn:aws:iam::123456789012:role/any", VpcSubnetIds=[subnet])
    rds.register_db_proxy_targets(DBProxyName="mine", DBInstanceIdentifiers=[db.instance_id])
    proxy = rds_iam_proxy_factory.get("mine")
    [target] = rds.describe_db_proxy_targets(DBProxyName="mine")["Targets"]
    assert target["TargetHealth"]["Reason"] == "AUTH_FAILURE"
    # IAMAuth DISABLED: the proxy checks the secret's password, then the database refuses it
    for password, reason in ((db.master_password, "proxy_password_mismatch"),
                             ("wrong", "proxy_secret_refused")):
        with pytest.raises(psycopg.OperationalError, match="no credentials for the role"):
            _connect(db, proxy, db.master_username, password)
        assert proxy.events_since(0)[-1].reason == reason


def test_refused_by_the_proxy(rds_iam_db, rds_iam_proxy_factory):
    db = rds_iam_db
    db.create_iam_db_user("app")
    proxy = rds_iam_proxy_factory(db, default_auth_scheme="IAM_AUTH")
    token = _session(db, proxy.db_user_arn("app")).client("rds").generate_db_auth_token(
        DBHostname=proxy.host, Port=proxy.port, DBUsername="app")
    _connect(db, proxy, "app", token)
'''


CLUSTER_TESTS = r'''
import json

import boto3
import psycopg
import pytest


def test_proxy_in_front_of_a_cluster(rds_iam_cluster, rds_iam_proxy_factory):
    c = rds_iam_cluster
    c.create_iam_db_user("app")
    with c.connect_master() as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("GRANT ALL ON t TO app")
    proxy = rds_iam_proxy_factory(target=c, default_auth_scheme="IAM_AUTH",
                                  role_may_connect_as=["app"], read_only_endpoint="reads")
    assert proxy.target_id == c.cluster_id
    ro = proxy.endpoints["reads"]
    assert ro.host.startswith("reads.endpoint.proxy-")
    iam = boto3.client("iam", region_name=c.region)
    iam.create_user(UserName="caller")
    iam.put_user_policy(UserName="caller", PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                       "Resource": proxy.db_user_arn("app")}]}))
    key = iam.create_access_key(UserName="caller")["AccessKey"]
    rds = boto3.Session(aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"],
                        region_name=c.region).client("rds")

    def connect(host, port):
        token = rds.generate_db_auth_token(DBHostname=host, Port=port, DBUsername="app")
        return psycopg.connect(host=host, port=port, user="app", password=token, dbname=c.dbname,
                               sslmode="verify-full", sslrootcert=str(proxy.ca_bundle),
                               autocommit=True)

    with connect(ro.host, ro.port) as conn:  # first login on a reader: end-to-end IAM
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    with connect(proxy.host, proxy.port) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        conn.execute("INSERT INTO t VALUES (1)")
    c.wait_for_replicas()
    with connect(ro.host, ro.port) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO t VALUES (2)")
    c.failover()
    with connect(proxy.host, proxy.port) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        conn.execute("INSERT INTO t VALUES (3)")
    rows = boto3.client("rds", region_name=c.region).describe_db_proxy_targets(
        DBProxyName=proxy.name)["Targets"]
    assert sorted((r["Type"], r.get("Role", "")) for r in rows) == [
        ("RDS_INSTANCE", "READ_ONLY"), ("RDS_INSTANCE", "READ_WRITE"), ("TRACKED_CLUSTER", "")]
    with pytest.raises(ValueError, match="target"):
        rds_iam_proxy_factory()
'''


def test_proxy_factory_and_report(pytester):
    # one run (the in-process pytester cannot start the emulator twice in one process)
    pytester.makepyfile(test_proxy=USER_TESTS, test_proxy_cluster=CLUSTER_TESTS)
    result = pytester.runpytest("--rdsiam-emulator", "--rdsiam-backend", "local",
                                "-p", "no:xdist", "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*The IAM authentication failed for the role app.*",
        "*- rdsiam auth events -*",
        "*DENY  iam app@proxy-*: proxy_role_not_authorized [[]NotAuthorized[]]*",
    ])
