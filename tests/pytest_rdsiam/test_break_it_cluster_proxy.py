"""Found by a break-it review of clusters and RDS Proxy, run as users meet the plugin (pytester):
users made on a ``rds_iam_db_factory`` instance are dropped after the test; a MySQL proxy's
target health logs in without a default database (a user granted on its own database only is
AVAILABLE, not 1044 CONNECTION_FAILED); a proxy's EngineFamily must match its target's engine."""

import pytest

TEST_A_ISOLATION = r'''
def _users(db):
    conn = db.connect_master()
    with conn.cursor() as cur:
        cur.execute("SELECT user FROM mysql.user WHERE user = 'leftover'")
        rows = cur.fetchall()
    conn.close()
    return rows


def test_a_makes_a_user(rds_iam_db_factory):
    db = rds_iam_db_factory(engine="mysql")
    conn = db.connect_master()
    with conn.cursor() as cur:
        cur.execute("CREATE USER 'leftover'@'%' IDENTIFIED BY 'pw'")
    conn.close()
    assert len(_users(db)) == 1


def test_b_starts_clean(rds_iam_db_factory):
    db = rds_iam_db_factory(engine="mysql")
    assert _users(db) == ()                      # observed: (('leftover',),)
'''

TEST_B_PROXY_MYSQL = r'''
import boto3
import pymysql
import pytest


@pytest.fixture
def shop_db(rds_iam_db_factory):
    db = rds_iam_db_factory(engine="mysql")
    conn = db.connect_master()
    with conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'app'@'%'")   # see test_t15brk_factory_isolation.py
        cur.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'")
        cur.execute(f"GRANT ALL ON `{db.dbname}`.* TO 'app'@'%'")
    conn.close()
    return db


def _login(db, proxy, password):
    conn = pymysql.connect(host=proxy.host, port=proxy.port, user="app", password=password,
                           database=db.dbname, ssl={"ca": str(proxy.ca_bundle)},
                           connect_timeout=20)
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        user = cur.fetchone()[0]
    conn.close()
    return user


def test_health_of_a_working_secret(shop_db, rds_iam_proxy_factory):
    proxy = rds_iam_proxy_factory(shop_db, secrets={"app": "app-pw"}, iam_auth="DISABLED")
    assert _login(shop_db, proxy, "app-pw") == "app@%"          # the secret is right
    [target] = boto3.client("rds", region_name=shop_db.region).describe_db_proxy_targets(
        DBProxyName=proxy.name)["Targets"]
    assert target["TargetHealth"] == {"State": "AVAILABLE"}     # observed: CONNECTION_FAILED


def test_wrong_password_gets_the_proxys_1045(shop_db, rds_iam_proxy_factory):
    proxy = rds_iam_proxy_factory(shop_db, secrets={"app": "app-pw"}, iam_auth="DISABLED")
    with pytest.raises(pymysql.err.OperationalError) as caught:
        _login(shop_db, proxy, "not-the-password")
    assert caught.value.args == (
        1045, "Access denied for user 'app'@'%' (using password: YES)")
'''

TEST_C_ENGINE_FAMILY = r'''
import json

import boto3
import pytest
from botocore.exceptions import ClientError


def test_mysql_proxy_on_a_postgres_instance(rds_iam_db, rds_iam_proxy_factory):
    db = rds_iam_db
    rds_iam_proxy_factory._start()
    ec2 = boto3.client("ec2", region_name=db.region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    role = boto3.client("iam", region_name=db.region).create_role(
        RoleName="proxy-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    secret = boto3.client("secretsmanager", region_name=db.region).create_secret(
        Name="s", SecretString=json.dumps({"username": "u", "password": "p"}))["ARN"]
    rds = boto3.client("rds", region_name=db.region)
    rds.create_db_proxy(DBProxyName="my-proxy", EngineFamily="MYSQL", RoleArn=role,
                        VpcSubnetIds=[subnet], Auth=[{"SecretArn": secret}])
    with pytest.raises(ClientError):
        rds.register_db_proxy_targets(DBProxyName="my-proxy",
                                      DBInstanceIdentifiers=[db.instance_id])
'''


def test_break_it_findings_stay_fixed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a_isolation=TEST_A_ISOLATION, test_b_proxy_mysql=TEST_B_PROXY_MYSQL,
                        test_c_engine_family=TEST_C_ENGINE_FAMILY)
    result = pytester.runpytest_subprocess("--rdsiam-emulator", "--rdsiam-backend", "local",
                                           "-p", "no:xdist", "-p", "no:randomly",
                                           "-p", "no:cacheprovider", "-p", "no:pytest_postgresql")
    result.assert_outcomes(passed=5)
