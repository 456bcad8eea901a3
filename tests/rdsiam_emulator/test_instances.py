"""End to end through an emulated instance: real backend, real TLS, real drivers, moto IAM."""

import json

import boto3
import psycopg
import pymysql
import pytest
from moto import mock_aws

from rdsiam_emulator.backends import BackendSpec, start_local
from rdsiam_emulator.instances import Emulator, InstanceConfig


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def emulator(request, tmp_path_factory):
    """Both event loops the endpoints support: uvloop (the default when installed) and asyncio."""
    emu = Emulator(tmp_path_factory.mktemp("emulator"), event_loop=request.param)
    assert emu.event_loop == request.param
    yield emu
    emu.close()


@pytest.fixture(scope="module")
def pg_backend():
    handle = start_local(BackendSpec(engine="postgres", provider="local", dbname="app"))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def mysql_backend():
    handle = start_local(BackendSpec(engine="mysql", provider="local", dbname="app"))
    yield handle
    handle.stop()


def _iam_session(instance, db_user, *, resource=None):
    iam = boto3.client("iam", region_name=instance.region)
    name = f"app-{db_user}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                       "Resource": resource or instance.db_user_arn(db_user)}],
    }))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"],
                         region_name=instance.region)


def test_postgres_iam_login_end_to_end(emulator, pg_backend):
    instance = emulator.start_instance(InstanceConfig(instance_id="orders"), pg_backend)
    try:
        assert instance.host.startswith("orders.c") and instance.host.endswith(
            ".us-east-1.rds.amazonaws.com")
        with mock_aws():
            instance.register_in_moto()
            [db] = boto3.client("rds", region_name="us-east-1").describe_db_instances(
                DBInstanceIdentifier="orders")["DBInstances"]
            assert db["Endpoint"]["Address"] == instance.host
            assert db["Endpoint"]["Port"] == instance.port
            assert db["DbiResourceId"] == instance.resource_id
            pg_backend.admin_execute("CREATE ROLE app_user LOGIN")
            pg_backend.admin_execute("GRANT rds_iam TO app_user")
            session = _iam_session(instance, "app_user")
            token = session.client("rds").generate_db_auth_token(
                DBHostname=db["Endpoint"]["Address"], Port=db["Endpoint"]["Port"],
                DBUsername="app_user")
            with psycopg.connect(host=instance.host, port=instance.port, user="app_user",
                                 password=token, dbname="app", sslmode="verify-full",
                                 sslrootcert=str(instance.ca_bundle)) as conn:
                assert conn.execute("select current_user, session_user").fetchone() == (
                    "app_user", "app_user")
                # a local server is reached through its private socket, not loopback TCP
                assert conn.execute("select inet_client_addr()").fetchone() == (None,)
            # a policy naming the instance identifier instead of the resource id is refused
            wrong = _iam_session(instance, "app_user2",
                                 resource="arn:aws:rds-db:us-east-1:123456789012:dbuser:"
                                          "orders/app_user")
            bad = wrong.client("rds").generate_db_auth_token(
                DBHostname=instance.host, Port=instance.port, DBUsername="app_user")
            with pytest.raises(psycopg.OperationalError,
                               match='PAM authentication failed for user "app_user"'):
                psycopg.connect(host=instance.host, port=instance.port, user="app_user",
                                password=bad, dbname="app", sslmode="verify-full",
                                sslrootcert=str(instance.ca_bundle))
        events = instance.events_since()
        assert [e.outcome for e in events if e.method == "iam"] == ["allow", "deny"]
        denied = events[-1]
        assert denied.reason == "not_authorized" and denied.rds_error_code == "NotAuthorized"
        assert denied.hint and instance.resource_id in denied.hint
    finally:
        instance.close()
        pg_backend.reset_users()


def test_mysql_iam_login_end_to_end(emulator, mysql_backend):
    instance = emulator.start_instance(
        InstanceConfig(instance_id="shop", engine="mysql", region="eu-west-1"), mysql_backend)
    try:
        with mock_aws():
            instance.register_in_moto()
            master = pymysql.connect(host=instance.host, port=instance.port,
                                     user=mysql_backend.master_user,
                                     password=mysql_backend.master_password,
                                     ssl={"ca": str(instance.ca_bundle)})
            with master.cursor() as cur:
                cur.execute("CREATE USER 'shopper'@'%' IDENTIFIED WITH AWSAuthenticationPlugin "
                            "AS 'RDS'")
                cur.execute("GRANT SELECT ON app.* TO 'shopper'@'%'")
            master.close()
            token = _iam_session(instance, "shopper").client("rds").generate_db_auth_token(
                DBHostname=instance.host, Port=instance.port, DBUsername="shopper")
            conn = pymysql.connect(host=instance.host, port=instance.port, user="shopper",
                                   password=token, ssl={"ca": str(instance.ca_bundle)})
            with conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER(), USER()")
                # USER(): the local server's private socket, not loopback TCP
                assert cur.fetchone() == ("shopper@%", "shopper@localhost")
            conn.close()
            with pytest.raises(pymysql.err.OperationalError) as info:
                pymysql.connect(host=instance.host, port=instance.port, user="shopper",
                                password=token + "x", ssl={"ca": str(instance.ca_bundle)})
            assert info.value.args[0] == 1045
            assert "Access denied for user 'shopper'@'127.0.0.1' (using password: YES)" in \
                info.value.args[1]
        reasons = [e.reason for e in instance.events_since() if e.method == "iam"]
        assert reasons == [None, "malformed_token"]  # the appended "x" breaks the signature format
    finally:
        instance.close()
        mysql_backend.reset_users()


def test_loopback_naming_and_iam_switch(emulator, pg_backend):
    instance = emulator.start_instance(
        InstanceConfig(instance_id="plain", naming="loopback", iam_enabled=False), pg_backend)
    try:
        assert instance.host == "localhost"
        assert instance.endpoint.accepts("127.0.0.1", instance.port)
        with mock_aws():
            instance.register_in_moto()
            pg_backend.admin_execute("CREATE ROLE lb_user LOGIN")
            pg_backend.admin_execute("GRANT rds_iam TO lb_user")
            token = _iam_session(instance, "lb_user").client("rds").generate_db_auth_token(
                DBHostname="localhost", Port=instance.port, DBUsername="lb_user")
            kwargs = dict(host="localhost", port=instance.port, user="lb_user", password=token,
                          dbname="app", sslmode="verify-full",
                          sslrootcert=str(instance.ca_bundle))
            with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
                psycopg.connect(**kwargs)
            assert instance.events_since()[-1].reason == "iam_disabled"
            instance.set_iam_enabled(True)
            # one switch: moto's view of the instance follows the endpoint's
            [db] = boto3.client("rds", region_name="us-east-1").describe_db_instances(
                DBInstanceIdentifier="plain")["DBInstances"]
            assert db["IAMDatabaseAuthenticationEnabled"] is True
            with psycopg.connect(**kwargs) as conn:
                assert conn.execute("select current_user").fetchone() == ("lb_user",)
        instance.set_iam_enabled(False)  # not registered in any moto state now: endpoint only
        assert not instance.iam_enabled
    finally:
        instance.close()
        pg_backend.reset_users()


def test_certificate_names_only_the_endpoint_and_declared_aliases(emulator, pg_backend,
                                                                   mysql_backend):
    """As on RDS: verify-full by IP or ``localhost`` fails, by the endpoint's name (or a declared
    alias) it passes. The master's password login is enough: TLS fails before authentication."""
    alias = "orders-db.internal.example"
    pg = emulator.start_instance(InstanceConfig(instance_id="certs", aliases=(alias,)),
                                 pg_backend)
    my = emulator.start_instance(InstanceConfig(instance_id="certs-my", engine="mysql",
                                                aliases=(alias,)), mysql_backend)
    try:
        common = dict(port=pg.port, user=pg_backend.master_user,
                      password=pg_backend.master_password, dbname="app",
                      sslmode="verify-full", sslrootcert=str(pg.ca_bundle), connect_timeout=10)
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(psycopg.OperationalError, match=r"certificate|match"):
                psycopg.connect(host=host, hostaddr="127.0.0.1", **common)
        for host in (pg.host, alias):
            with psycopg.connect(host=host, hostaddr="127.0.0.1", **common) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
        mine = dict(port=my.port, user=mysql_backend.master_user,
                    password=mysql_backend.master_password, database="app",
                    ssl={"ca": str(my.ca_bundle)}, connect_timeout=10)
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(pymysql.err.OperationalError, match=r"match|CERTIFICATE"):
                pymysql.connect(host=host, **mine)
        for host in (my.host, alias):  # both resolve to 127.0.0.1 in this process only
            pymysql.connect(host=host, **mine).close()
    finally:
        pg.close()
        my.close()


def test_instance_global_keys_selects_the_authorizers_reading():
    """InstanceConfig.global_keys puts the instance's IamAuthorizer under that reading of the
    request context (the decision itself is tested on the wire in the endpoint tests)."""
    from rdsiam_emulator.iam import IamAuthorizer
    from rdsiam_emulator.iam.api_source import StaticPolicySource
    from rdsiam_emulator.instances import _authorizer_for

    base = IamAuthorizer(StaticPolicySource(()))
    assert InstanceConfig(instance_id="x").global_keys == "documented"
    assert _authorizer_for(base, "documented") is base
    strict = _authorizer_for(base, "none")
    assert isinstance(strict, IamAuthorizer) and strict.global_keys == "none"
    with pytest.raises(ValueError, match="global_keys must be one of documented, none"):
        _authorizer_for(base, "all")
