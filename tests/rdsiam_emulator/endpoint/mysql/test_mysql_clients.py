# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""Real client libraries and tools through the MySQL endpoint (IAM token over TLS)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pymysql
import pytest
from mysql_env import (  # noqa: F401
    MyEnv,
    emulator_ca,
    mariadb,
    myenv,
    myenv_rds_name,
    unique,
)


def make_iam_user(env: MyEnv) -> str:
    user = unique("iam")
    mu, mp = env.master
    with pymysql.connect(host="localhost", port=env.port, user=mu, password=mp,
                         ssl={"ca": env.ca_file}) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
        cur.execute(f"GRANT ALL ON app.* TO '{user}'@'%'")
    return user


def test_mysql_connector(myenv):
    import mysql.connector

    user = make_iam_user(myenv)
    conn = mysql.connector.connect(
        host="localhost", port=myenv.port, user=user, password=myenv.token(user),
        ssl_ca=myenv.ca_file, ssl_verify_cert=True, auth_plugin="mysql_clear_password",
        use_pure=True, database="app")
    try:
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_USER(), DATABASE()")
        assert cur.fetchone() == (f"{user}@%", "app")
        # COM_CHANGE_USER to the master with its password is relayed ...
        mu, mp = myenv.master
        conn.cmd_change_user(username=mu, password=mp)
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == (f"{mu}@%",)
    finally:
        conn.close()


C_EXT_SCRIPT = """
import os, sys
import _mysql_connector  # before ssl: its vendored OpenSSL must load first
import mysql.connector
conn = mysql.connector.connect(host="localhost", port=int(os.environ["P"]), user=os.environ["U"],
    password=os.environ["T"], ssl_ca=os.environ["CA"], ssl_verify_cert=True, use_pure=False,
    auth_plugin="mysql_clear_password")
assert type(conn).__name__ == "CMySQLConnection", type(conn)
cur = conn.cursor()
cur.execute("SELECT CURRENT_USER()")
print(cur.fetchone()[0])
conn.close()
"""


def test_mysql_connector_c_extension(myenv):
    """The C extension, in a fresh interpreter: it loads only before anything imports ``ssl``
    (its vendored libssl needs a newer libcrypto than the system one that ``ssl`` pulls in)."""
    import sys

    probe = subprocess.run([sys.executable, "-c", "import _mysql_connector"], capture_output=True)
    if probe.returncode:
        pytest.skip(reason="mysql-connector C extension not loadable here")
    user = make_iam_user(myenv)
    env = dict(os.environ, P=str(myenv.port), U=user, T=myenv.token(user), CA=myenv.ca_file)
    out = subprocess.run([sys.executable, "-c", C_EXT_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{user}@%"


def test_mysql_connector_change_user_to_iam_requires_token(myenv):
    import mysql.connector

    user = make_iam_user(myenv)
    mu, mp = myenv.master
    conn = mysql.connector.connect(host="localhost", port=myenv.port, user=mu, password=mp,
                                   ssl_ca=myenv.ca_file, use_pure=True)
    conn.cmd_change_user(username=user, password=myenv.token(user))
    cur = conn.cursor()
    cur.execute("SELECT CURRENT_USER()")
    assert cur.fetchone() == (f"{user}@%",)
    with pytest.raises(mysql.connector.Error) as info:
        conn.cmd_change_user(username=user, password="not-a-token")
    assert info.value.errno == 1045
    assert myenv.events.all()[-1].reason is not None


def test_aiomysql(myenv):
    import ssl

    import aiomysql

    user = make_iam_user(myenv)
    ctx = ssl.create_default_context(cafile=myenv.ca_file)

    async def run():
        conn = await aiomysql.connect(host="localhost", port=myenv.port, user=user,
                                      password=myenv.token(user), ssl=ctx, db="app",
                                      auth_plugin="mysql_clear_password")
        async with conn.cursor() as cur:
            await cur.execute("SELECT CURRENT_USER()")
            row = await cur.fetchone()
        conn.close()
        return row

    assert asyncio.run(run()) == (f"{user}@%",)


def test_sqlalchemy_do_connect_token_pattern(myenv):
    from sqlalchemy import create_engine, event, text

    user = make_iam_user(myenv)
    engine = create_engine(
        f"mysql+pymysql://{user}@localhost:{myenv.port}/app",
        connect_args={"ssl": {"ca": myenv.ca_file}}, pool_size=2)
    tokens = []

    @event.listens_for(engine, "do_connect")
    def provide_token(dialect, conn_rec, cargs, cparams):
        tokens.append(myenv.token(user))
        cparams["password"] = tokens[-1]

    with engine.connect() as conn:
        assert conn.execute(text("SELECT CURRENT_USER()")).scalar() == f"{user}@%"
        conn.execute(text("CREATE TABLE t_sa (id INT PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t_sa VALUES (1), (2)"))
        assert conn.execute(text("SELECT COUNT(*) FROM t_sa")).scalar() == 2
        conn.execute(text("DROP TABLE t_sa"))
    engine.dispose()
    assert tokens


@pytest.mark.skipif(shutil.which("mariadb") is None, reason="mariadb client not installed")
def test_mariadb_cli(myenv):
    user = make_iam_user(myenv)
    base = ["mariadb", "--no-defaults", "-h", "localhost", "-P", str(myenv.port), "-u", user,
            "--ssl", f"--ssl-ca={myenv.ca_file}", "--ssl-verify-server-cert", "-N", "-B"]
    ok = subprocess.run([*base, f"--password={myenv.token(user)}", "-e", "SELECT CURRENT_USER()"],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"{user}@%"
    bad = subprocess.run([*base, "--password=nope", "-e", "SELECT 1"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1
    assert bad.stderr.strip().endswith(
        f"ERROR 1045 (28000): Access denied for user '{user}'@'127.0.0.1' (using password: YES)")


def test_perl_dbd_mysql(myenv):
    if subprocess.run(["perl", "-MDBD::mysql", "-e", "1"], capture_output=True).returncode:
        pytest.skip(reason="DBD::mysql not installed")
    user = make_iam_user(myenv)
    script = (
        "use DBI; my $dbh = DBI->connect("
        "\"DBI:mysql:database=app;host=127.0.0.1;port=$ENV{P};mysql_ssl=1;"
        "mysql_ssl_ca_file=$ENV{CA};mysql_ssl_optional=1\", $ENV{U}, $ENV{T},"
        " {RaiseError=>1, PrintError=>0});"
        "print $dbh->selectrow_array('SELECT CURRENT_USER()');"
    )
    env = dict(os.environ, P=str(myenv.port), CA=myenv.ca_file, U=user,
               T=myenv.token(user, host="127.0.0.1"),
               LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN="1")
    out = subprocess.run(["perl", "-e", script], capture_output=True, text=True, env=env,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{user}@%"


def test_mysqlclient(myenv):
    try:
        import MySQLdb
    except ImportError:
        pytest.skip(reason="mysqlclient is not installed (needs libmariadb-dev to build)")
    user = make_iam_user(myenv)
    conn = MySQLdb.connect(host="127.0.0.1", port=myenv.port, user=user,
                           password=myenv.token(user, host="127.0.0.1"),
                           ssl={"ca": myenv.ca_file})
    cur = conn.cursor()
    cur.execute("SELECT CURRENT_USER()")
    assert cur.fetchone() == (f"{user}@%",)
    conn.close()


NODE_DIR = Path(__file__).resolve().parents[3] / "node"


@pytest.mark.node
def test_node_mysql2_with_rds_signer_token(myenv):
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "mysql2").is_dir():
        pytest.skip(reason="node or tests/node/node_modules (npm ci) missing")
    from mysql_env import AKID, REGION, SECRET

    user = make_iam_user(myenv)
    base = dict(os.environ, HOST="localhost", PORT=str(myenv.port), DBUSER=user,
                CA=myenv.ca_file, REGION=REGION, AWS_ACCESS_KEY_ID=AKID,
                AWS_SECRET_ACCESS_KEY=SECRET)

    def run(**extra):
        out = subprocess.run(["node", str(NODE_DIR / "mysql2_iam.mjs")], capture_output=True,
                             text=True, env=dict(base, **extra), timeout=60, cwd=NODE_DIR)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert run() == {"ok": True, "user": f"{user}@%"}
    assert run(PASSWORD="not-a-token") == {
        "ok": False, "errno": 1045, "sqlState": "28000",
        "message": f"Access denied for user '{user}'@'127.0.0.1' (using password: YES)"}


def test_aws_advanced_python_wrapper_iam_plugin(myenv_rds_name, monkeypatch):
    from aws_advanced_python_wrapper import AwsWrapperConnection
    from mysql.connector import Connect
    from mysql_env import AKID, RDS_HOST, SECRET

    env = myenv_rds_name
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    user = make_iam_user(env)
    conn = AwsWrapperConnection.connect(
        Connect, host=RDS_HOST, port=env.port, database="app", user=user, plugins="iam",
        iam_region="us-east-1", ssl_ca=env.ca_file, use_pure=True, wrapper_dialect="mysql",
        auth_plugin="mysql_clear_password")
    try:
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == (f"{user}@%",)
    finally:
        conn.close()
    event = env.events.all()[-1]
    assert event.ok and event.db_user == user and event.method == "iam"


def test_compressed_session_after_iam_login(myenv):
    import mysql.connector

    user = make_iam_user(myenv)
    conn = mysql.connector.connect(
        host="localhost", port=myenv.port, user=user, password=myenv.token(user),
        ssl_ca=myenv.ca_file, use_pure=True, compress=True, database="app",
        auth_plugin="mysql_clear_password")
    try:
        cur = conn.cursor()
        cur.execute("SHOW SESSION STATUS LIKE 'Compression'")
        assert cur.fetchone() == ("Compression", "ON")
        cur.execute("SELECT REPEAT('x', 100000), CURRENT_USER()")
        assert cur.fetchone() == ("x" * 100000, f"{user}@%")
    finally:
        conn.close()


def test_pymysql_ssl_ca_checks_the_name_and_ssl_verify_identity_drops_the_ca(myenv):
    """What docs/pytest.md tells PyMySQL users: ``ssl={"ca": …}`` alone verifies the certificate
    and the host name; ``ssl_verify_identity=True`` beside it makes PyMySQL build its own TLS
    settings without that CA, so the emulator's certificate is no longer trusted."""
    from rdsiam_emulator import resolver

    other = "other.c0abcdefghij.us-east-1.rds.amazonaws.com"  # on no endpoint certificate
    mu, mp = myenv.master

    def connect(host: str, **kw) -> None:
        pymysql.connect(host=host, port=myenv.port, user=mu, password=mp, connect_timeout=10,
                        ssl={"ca": myenv.ca_file}, **kw).close()

    connect("localhost")
    resolver.register(other)
    try:
        with pytest.raises(pymysql.err.OperationalError) as info:
            connect(other)
    finally:
        resolver.unregister(other)
    assert "Hostname mismatch" in str(info.value), info.value
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect("localhost", ssl_verify_identity=True)
    assert "unable to get local issuer certificate" in str(info.value), info.value
