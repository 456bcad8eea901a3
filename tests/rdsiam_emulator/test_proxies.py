"""RDS Proxy end to end: create_db_proxy + register_db_proxy_targets through boto3 (moto) start a
real proxy endpoint in front of an emulated instance; real drivers over real TLS to real servers."""

import json
import uuid

import boto3
import psycopg
import pymysql
import pytest
from moto import mock_aws

from rdsiam_emulator.auth.throttle import Throttle, ThrottleLimits
from rdsiam_emulator.aws.rds import no_default_amis
from rdsiam_emulator.backends import BackendSpec, start_local
from rdsiam_emulator.instances import Emulator, InstanceConfig
from rdsiam_emulator.proxies import auto_start

REGION = "us-east-1"
PASSWORD = "s3cret-Pass"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    emu = Emulator(tmp_path_factory.mktemp("proxy-emulator"))
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


class World:
    """One test's moto state, the instance and helpers to build proxies in front of it."""

    def __init__(self, emulator, instance):
        self.emulator = emulator
        self.instance = instance
        self.rds = boto3.client("rds", region_name=REGION)
        self.iam = boto3.client("iam", region_name=REGION)
        self.sm = boto3.client("secretsmanager", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.role_arn = self.iam.create_role(
            RoleName=f"proxy-role-{uuid.uuid4().hex[:8]}",
            AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "rds.amazonaws.com"}}]}),
        )["Role"]["Arn"]

    def secret(self, username, password=PASSWORD):
        return self.sm.create_secret(
            Name=f"proxy-{username}-{uuid.uuid4().hex[:6]}",
            SecretString=json.dumps({"username": username, "password": password}))["ARN"]

    def proxy(self, *, auth=(), scheme=None, require_tls=False):
        name = f"px-{uuid.uuid4().hex[:8]}"
        family = "POSTGRESQL" if self.instance.engine == "postgres" else "MYSQL"
        extra = {"DefaultAuthScheme": scheme} if scheme else {}
        self.rds.create_db_proxy(DBProxyName=name, EngineFamily=family, Auth=list(auth),
                                 RoleArn=self.role_arn, VpcSubnetIds=[self.subnet],
                                 RequireTLS=require_tls, **extra)
        self.rds.register_db_proxy_targets(DBProxyName=name,
                                           DBInstanceIdentifiers=[self.instance.instance_id])
        return self.emulator.proxy(name)

    def session(self, resource):
        name = f"app-{uuid.uuid4().hex[:8]}"
        self.iam.create_user(UserName=name)
        self.iam.put_user_policy(UserName=name, PolicyName="connect", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource}]}))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return boto3.Session(aws_access_key_id=key["AccessKeyId"],
                             aws_secret_access_key=key["SecretAccessKey"], region_name=REGION)

    def token(self, proxy, user, *, host=None, port=None):
        session = self.session(proxy.db_user_arn(user))
        return session.client("rds").generate_db_auth_token(
            DBHostname=host or proxy.host, Port=port or proxy.port, DBUsername=user)

    def allow_role(self, db_user):
        self.iam.put_role_policy(
            RoleName=self.role_arn.rsplit("/", 1)[-1], PolicyName="connect-db",
            PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                               "Resource": self.instance.db_user_arn(db_user)}]}))


def _world(emulator, backend, engine):
    instance = emulator.start_instance(
        InstanceConfig(instance_id=f"db-{uuid.uuid4().hex[:8]}", engine=engine), backend)
    try:
        with no_default_amis(), mock_aws(), auto_start(emulator):
            instance.register_in_moto()
            yield World(emulator, instance)
    finally:
        instance.close()


@pytest.fixture
def pg(emulator, pg_backend):
    yield from _world(emulator, pg_backend, "postgres")


@pytest.fixture
def my(emulator, mysql_backend):
    yield from _world(emulator, mysql_backend, "mysql")


def _last_event(proxy):
    return proxy.events_since(0)[-1]


# ---------------------------------------------------------------------------------- PostgreSQL

def _pg_user(backend, name, *, iam=False):
    backend.admin_execute(f'CREATE ROLE "{name}" LOGIN PASSWORD \'{PASSWORD}\'')
    if iam:
        backend.admin_execute(f'GRANT rds_iam TO "{name}"')
    backend.admin_execute(f'GRANT CONNECT ON DATABASE app TO "{name}"')
    return name


def _pg_connect(proxy, user, password, *, sslmode="verify-full"):
    return psycopg.connect(host=proxy.host, port=proxy.port, user=user, password=password,
                           dbname="app", sslmode=sslmode, sslrootcert=str(proxy.ca_bundle),
                           connect_timeout=10)


def _pg_refused(proxy, user, password, **kwargs):
    with pytest.raises(psycopg.OperationalError) as info:
        _pg_connect(proxy, user, password, **kwargs)
    return str(info.value)


def test_pg_describe_and_iam_required(pg, pg_backend):
    user = _pg_user(pg_backend, f"app_{uuid.uuid4().hex[:6]}")
    proxy = pg.proxy(auth=[{"SecretArn": pg.secret(user), "IAMAuth": "REQUIRED"}])

    [described] = pg.rds.describe_db_proxies(DBProxyName=proxy.name)["DBProxies"]
    assert described["Endpoint"] == proxy.host
    assert proxy.host.startswith(f"{proxy.name}.proxy-")
    assert proxy.host.endswith(f".{REGION}.rds.amazonaws.com")
    assert ".db-proxy-" not in proxy.host
    assert described["DBProxyArn"].endswith(f":db-proxy:{proxy.resource_id}")
    assert proxy.resource_id.startswith("prx-") and len(proxy.resource_id) == 21
    assert described["DefaultAuthScheme"] == "NONE"
    assert described["Auth"][0]["IAMAuth"] == "REQUIRED"
    assert described["Auth"][0]["AuthScheme"] == "SECRETS"
    [target] = pg.rds.describe_db_proxy_targets(DBProxyName=proxy.name)["Targets"]
    assert target["TargetHealth"] == {"State": "AVAILABLE"}
    assert (target["Endpoint"], target["Port"]) == (pg.instance.host, pg.instance.port)
    assert target["Type"] == "RDS_INSTANCE"

    token = pg.token(proxy, user)
    with _pg_connect(proxy, user, token) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)
    assert _last_event(proxy).outcome == "allow"

    # tampered: the proxy's own text, reason signature_mismatch
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    text = _pg_refused(proxy, user, tampered)
    assert (f'IAM authentication failed for user "{user}". Check the IAM token for this user '
            "and try again.") in text
    assert "PAM" not in text
    event = _last_event(proxy)
    assert (event.reason, event.instance_id) == ("signature_mismatch", proxy.name)
    assert event.hint

    # a token signed for the instance's name is refused at the proxy
    direct = pg.token(proxy, user, host=pg.instance.host, port=pg.instance.port)
    assert "IAM authentication failed for user" in _pg_refused(proxy, user, direct)
    event = _last_event(proxy)
    assert event.reason == "host_mismatch"
    assert event.hint.startswith(f"sign for the proxy endpoint {proxy.host!r}")

    # IAM without TLS (RequireTLS is off)
    text = _pg_refused(proxy, user, token, sslmode="disable")
    assert "IAM authentication is allowed only with SSL connections." in text
    assert _last_event(proxy).reason == "tls_required"

    # no secret for that DB user
    text = _pg_refused(proxy, "nobody", token)
    assert ("This RDS proxy has no credentials for the role nobody. Check the credentials for "
            "this role and try again.") in text
    assert _last_event(proxy).reason == "proxy_no_credentials"


def test_pg_wrong_secret_auth_failure(pg, pg_backend):
    user = _pg_user(pg_backend, f"app_{uuid.uuid4().hex[:6]}")
    proxy = pg.proxy(auth=[{"SecretArn": pg.secret(user, "not-the-password"),
                            "IAMAuth": "REQUIRED"}])
    [target] = pg.rds.describe_db_proxy_targets(DBProxyName=proxy.name)["Targets"]
    assert target["TargetHealth"]["State"] == "UNAVAILABLE"
    assert target["TargetHealth"]["Reason"] == "AUTH_FAILURE"
    assert "not-the-password" not in target["TargetHealth"]["Description"]
    text = _pg_refused(proxy, user, pg.token(proxy, user))
    assert "This RDS proxy has no credentials for the role" in text
    assert "password authentication failed" not in text
    event = _last_event(proxy)
    assert event.reason == "proxy_secret_refused"
    assert event.principal_arn  # the caller that IAM had accepted
    # the proxy never repaired the server's password to the secret's
    with psycopg.connect(**pg_backend.dsn(user, PASSWORD, "app")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_pg_iam_disabled_checks_the_secret(pg, pg_backend):
    user = _pg_user(pg_backend, f"app_{uuid.uuid4().hex[:6]}")
    proxy = pg.proxy(auth=[{"SecretArn": pg.secret(user), "IAMAuth": "DISABLED"}])
    with _pg_connect(proxy, user, PASSWORD, sslmode="disable") as conn:
        assert conn.execute("select current_user").fetchone() == (user,)
    event = _last_event(proxy)
    assert (event.outcome, event.method) == ("allow", "password")
    text = _pg_refused(proxy, user, "wrong")
    assert ("This RDS proxy has no credentials for the role " + user) in text
    assert "password authentication failed" not in text  # the proxy's text, not the server's
    event = _last_event(proxy)
    assert (event.reason, event.method) == ("proxy_password_mismatch", "password")
    assert event.hint and "wrong" not in event.detail

    # the proxy checks the secret, not the database: a stale secret stops a client that knows
    # the database's real password, and the secret's password gets as far as the database
    stale = pg.proxy(auth=[{"SecretArn": pg.secret(user, "stale-secret"), "IAMAuth": "DISABLED"}])
    _pg_refused(stale, user, PASSWORD)
    assert _last_event(stale).reason == "proxy_password_mismatch"
    text = _pg_refused(stale, user, "stale-secret")
    assert "This RDS proxy has no credentials for the role" in text
    assert _last_event(stale).reason == "proxy_secret_refused"


def test_pg_require_tls(pg, pg_backend):
    user = _pg_user(pg_backend, f"app_{uuid.uuid4().hex[:6]}")
    proxy = pg.proxy(auth=[{"SecretArn": pg.secret(user), "IAMAuth": "DISABLED"}],
                     require_tls=True)
    assert pg.rds.describe_db_proxies(DBProxyName=proxy.name)["DBProxies"][0]["RequireTLS"]
    text = _pg_refused(proxy, user, PASSWORD, sslmode="disable")
    assert "This RDS Proxy requires TLS connections." in text
    event = _last_event(proxy)
    assert event.reason == "proxy_tls_required"
    assert "TLS" in event.hint
    with _pg_connect(proxy, user, PASSWORD) as conn:  # with TLS: in
        assert conn.execute("select 1").fetchone() == (1,)


def test_pg_end_to_end_iam(pg, pg_backend):
    user = _pg_user(pg_backend, f"app_{uuid.uuid4().hex[:6]}", iam=True)
    proxy = pg.proxy(scheme="IAM_AUTH")
    [described] = pg.rds.describe_db_proxies(DBProxyName=proxy.name)["DBProxies"]
    assert (described["DefaultAuthScheme"], described["Auth"]) == ("IAM_AUTH", [])
    [target] = pg.rds.describe_db_proxy_targets(DBProxyName=proxy.name)["Targets"]
    assert target["TargetHealth"] == {"State": "AVAILABLE"}

    # the role may not connect to the database: the proxy's refusal
    text = _pg_refused(proxy, user, pg.token(proxy, user))
    assert (f"The IAM authentication failed for the role {user}. Check the IAM token for this "
            "role and try again.") in text
    event = _last_event(proxy)
    assert event.reason == "proxy_role_not_authorized"
    assert pg.instance.db_user_arn(user) in event.hint
    assert pg.role_arn in event.detail

    pg.allow_role(user)
    with _pg_connect(proxy, user, pg.token(proxy, user)) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)
    assert _last_event(proxy).outcome == "allow"

    # a password user on the database cannot log in end to end
    plain = _pg_user(pg_backend, f"pw_{uuid.uuid4().hex[:6]}")
    _pg_refused(proxy, plain, pg.token(proxy, plain))
    assert _last_event(proxy).reason == "not_iam_user"


def test_pg_throttled(pg, pg_backend):
    user = _pg_user(pg_backend, f"app_{uuid.uuid4().hex[:6]}")
    proxy = pg.proxy(auth=[{"SecretArn": pg.secret(user), "IAMAuth": "REQUIRED"}])
    proxy.authenticator.throttle = Throttle(ThrottleLimits(distinct_identities_per_second=1),
                                            window=60.0)
    with _pg_connect(proxy, user, pg.token(proxy, user)):
        pass
    text = _pg_refused(proxy, user, pg.token(proxy, user))  # a second identity
    assert "The IAM authentication failed because of too many competing requests." in text
    assert _last_event(proxy).reason == "throttled"


# ---------------------------------------------------------------------------------- MySQL

def _my_user(my, backend, name, *, iam=False):
    if iam:
        conn = my.instance.engine_info.connect(_master_target(my.instance, backend))
        try:
            with conn.cursor() as cur:
                for statement in my.instance.engine_info.iam_user_ddl(name, "app"):
                    cur.execute(statement)
        finally:
            conn.close()
        return name
    backend.admin_execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{PASSWORD}'")
    backend.admin_execute(f"GRANT ALL ON app.* TO '{name}'@'%'")
    return name


def _master_target(instance, backend):
    from rdsiam_emulator.engines import ConnectTarget

    return ConnectTarget(host=instance.host, hostaddr="127.0.0.1", port=instance.port,
                         user=backend.master_user, password=backend.master_password,
                         dbname="app", ca_bundle=str(instance.ca_bundle))


def _my_connect(proxy, user, password, *, tls=True):
    tls_args = {"ssl": {"ca": str(proxy.ca_bundle)}} if tls else {"ssl_disabled": True}
    return pymysql.connect(host=proxy.host, port=proxy.port, user=user, password=password,
                           database="app", connect_timeout=10, **tls_args)


def _my_refused(proxy, user, password, **kwargs):
    with pytest.raises(pymysql.err.OperationalError) as info:
        _my_connect(proxy, user, password, **kwargs)
    return info.value.args


def test_mysql_iam_required_and_tls(my, mysql_backend):
    user = _my_user(my, mysql_backend, f"app_{uuid.uuid4().hex[:6]}")
    proxy = my.proxy(auth=[{"SecretArn": my.secret(user), "IAMAuth": "REQUIRED"}])
    token = my.token(proxy, user)
    conn = _my_connect(proxy, user, token)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0].startswith(f"{user}@")
    finally:
        conn.close()

    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert _my_refused(proxy, user, tampered) == (
        1045, f"Access denied for user '{user}'@'%' (using password: YES)")
    assert _last_event(proxy).reason == "signature_mismatch"

    direct = my.token(proxy, user, host=my.instance.host, port=my.instance.port)
    assert _my_refused(proxy, user, direct)[0] == 1045
    assert _last_event(proxy).reason == "host_mismatch"

    [target] = my.rds.describe_db_proxy_targets(DBProxyName=proxy.name)["Targets"]
    assert target["TargetHealth"] == {"State": "AVAILABLE"}

    proxy.authenticator.throttle = Throttle(ThrottleLimits(distinct_identities_per_second=1),
                                            window=60.0)
    _my_connect(proxy, user, my.token(proxy, user)).close()
    assert _my_refused(proxy, user, my.token(proxy, user)) == (
        1040, "IAM authentication rate limit exceeded")
    assert _last_event(proxy).reason == "throttled"


def test_mysql_require_tls_and_disabled(my, mysql_backend):
    user = _my_user(my, mysql_backend, f"app_{uuid.uuid4().hex[:6]}")
    proxy = my.proxy(auth=[{"SecretArn": my.secret(user), "IAMAuth": "DISABLED"}],
                     require_tls=True)
    assert _my_refused(proxy, user, PASSWORD, tls=False) == (
        3159, "This RDS Proxy requires TLS connections.")
    assert _last_event(proxy).reason == "proxy_tls_required"
    conn = _my_connect(proxy, user, PASSWORD)  # DISABLED: the secret's password
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0].startswith(f"{user}@")
    finally:
        conn.close()
    assert _last_event(proxy).method == "password"
    assert _my_refused(proxy, user, "wrong") == (
        1045, f"Access denied for user '{user}'@'%' (using password: YES)")
    assert _last_event(proxy).reason == "proxy_password_mismatch"
    stale = my.proxy(auth=[{"SecretArn": my.secret(user, "stale"), "IAMAuth": "DISABLED"}])
    assert _my_refused(stale, user, PASSWORD)[0] == 1045  # the database's password: not enough
    assert _last_event(stale).reason == "proxy_password_mismatch"


def test_mysql_wrong_secret_and_end_to_end(my, mysql_backend):
    user = _my_user(my, mysql_backend, f"app_{uuid.uuid4().hex[:6]}")
    bad = my.proxy(auth=[{"SecretArn": my.secret(user, "nope"), "IAMAuth": "REQUIRED"}])
    [target] = my.rds.describe_db_proxy_targets(DBProxyName=bad.name)["Targets"]
    assert (target["TargetHealth"]["State"], target["TargetHealth"]["Reason"]) == (
        "UNAVAILABLE", "AUTH_FAILURE")
    assert _my_refused(bad, user, my.token(bad, user))[0] == 1045
    assert _last_event(bad).reason == "proxy_secret_refused"

    iam_user = _my_user(my, mysql_backend, f"iam_{uuid.uuid4().hex[:6]}", iam=True)
    proxy = my.proxy(scheme="IAM_AUTH")
    assert _my_refused(proxy, iam_user, my.token(proxy, iam_user))[0] == 1045
    event = _last_event(proxy)
    assert event.reason == "proxy_role_not_authorized"
    assert my.instance.db_user_arn(iam_user) in event.hint
    my.allow_role(iam_user)
    conn = _my_connect(proxy, iam_user, my.token(proxy, iam_user))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0].startswith(f"{iam_user}@")
    finally:
        conn.close()


def test_api_errors(pg):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="IAMAuth"):
        pg.rds.create_db_proxy(DBProxyName="bad", EngineFamily="POSTGRESQL",
                               Auth=[{"SecretArn": pg.secret("x"), "IAMAuth": "ENABLED"}],
                               RoleArn=pg.role_arn, VpcSubnetIds=[pg.subnet])
    with pytest.raises(ClientError, match="Auth is required"):
        pg.rds.create_db_proxy(DBProxyName="bad", EngineFamily="POSTGRESQL",
                               RoleArn=pg.role_arn, VpcSubnetIds=[pg.subnet])
    proxy = pg.proxy(scheme="IAM_AUTH")
    with pytest.raises(ClientError, match="DBInstanceNotFound"):
        pg.rds.register_db_proxy_targets(DBProxyName=proxy.name, DBInstanceIdentifiers=["nope"])
    pg.rds.delete_db_proxy(DBProxyName=proxy.name)
    assert proxy.name not in {p.name for p in pg.emulator.proxies}

