# ruff: noqa: F811 - pytest fixtures imported from mysql_env / oracle_env are used as arguments
"""The MySQL endpoint in front of Oracle MySQL (Debian unstable's, 9.x, in the stand-in container
docker/standin-mysql) with PyMySQL over real TLS: caching_sha2_password backend logins seen on
the wire, mysql_native_password's absence, the greeting, the RDS DDL and SHOW CREATE USER."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from collections.abc import Iterator

import pymysql
import pytest
from mysql_env import (  # noqa: F401
    AKID,
    HOST,
    RDS_HOST,
    REGION,
    SECRET,
    LoopThread,
    MyEnv,
    _make_env,
    emulator_ca,
    mariadb,
    myenv,
    unique,
)
from oracle_env import WireTap, podman_env, sha2_path  # noqa: F401
from test_mysql_go_java import check_go_sdk_token, check_java_connector_j

from native_clients import GoClient, JavaClient, go_client, java_client  # noqa: F401
from rdsiam_emulator.auth.authenticator import Authenticator
from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.backends import BackendSpec, MysqlHandle, start_backend
from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.mysql import MysqlEndpoint
from rdsiam_emulator.engines import ORACLE_MYSQL
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.reasons import Reason

pytestmark = pytest.mark.containers

RDS_TAIL = ("PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK PASSWORD HISTORY DEFAULT "
            "PASSWORD REUSE INTERVAL DEFAULT PASSWORD REQUIRE CURRENT DEFAULT")
"""What RDS MySQL 8.4.11 prints after REQUIRE (docs/mysql.md: SHOW CREATE USER); MySQL 9 too."""


@pytest.fixture(scope="module")
def oracle_mysql(podman_env: dict[str, str]) -> Iterator[MysqlHandle]:
    # module scope: removed before other modules' container tests check that this process left
    # no container behind
    handle = start_backend(BackendSpec(engine="mysql", provider="docker", flavour=ORACLE_MYSQL))
    assert isinstance(handle, MysqlHandle)
    try:
        yield handle
    finally:
        handle.stop()


class TappedEnv(MyEnv):
    tap: WireTap


@pytest.fixture
def omenv(oracle_mysql: MysqlHandle, emulator_ca) -> Iterator[TappedEnv]:
    """An endpoint on the Oracle MySQL container, reached through a recording forwarder."""
    loop = LoopThread()
    tap = WireTap((oracle_mysql.host, oracle_mysql.port))
    loop.run(tap.start())
    events = EventLog()
    cert = emulator_ca.server_certificate([HOST, "127.0.0.1"])
    endpoint = MysqlEndpoint(
        backend=BackendAddress("127.0.0.1", tap.port, oracle_mysql.admin_user,
                               oracle_mysql.admin_password),
        authenticator=None,  # type: ignore[arg-type] - set below, once the port is known
        instance_secret=b"o" * 32, tls_context=cert.server_context(),
        catalog_version=oracle_mysql.catalog_version)
    loop.run(endpoint.start())
    endpoint.authenticator = Authenticator(
        instance_id="mydb", engine="mysql",
        endpoint=Endpoint(HOST, endpoint.port, REGION, aliases=("127.0.0.1",),
                          account_id="123456789012", resource_id="db-ORACLEMYSQLTEST1",
                          instance_id="mydb"),
        credentials=StaticCredentials({AKID: (SECRET, None)}), events=events)
    env = TappedEnv(endpoint, events, oracle_mysql, emulator_ca, loop)
    env.tap = tap
    try:
        yield env
    finally:
        loop.run(endpoint.close())
        loop.run(tap.close())
        loop.stop()


@pytest.fixture
def omenv_rds_name(oracle_mysql: MysqlHandle, emulator_ca) -> Iterator[MyEnv]:
    """An endpoint on the Oracle MySQL container under an RDS-style name that resolves to
    127.0.0.1 in this process only (for the Go and Java clients)."""
    from rdsiam_emulator import resolver

    resolver.register(RDS_HOST)
    try:
        yield from _make_env(oracle_mysql, emulator_ca, host=RDS_HOST)
    finally:
        resolver.unregister(RDS_HOST)


def connect(env: MyEnv, user: str, password: str, **kw):
    return pymysql.connect(host="localhost", port=env.port, user=user, password=password,
                           ssl={"ca": env.ca_file}, connect_timeout=10, **kw)


def master_sql(env: MyEnv, *statements: str) -> list[tuple]:
    user, pw = env.master
    out: list[tuple] = []
    with connect(env, user, pw) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
            out = list(cur.fetchall())
    return out


def current_user(env: MyEnv, user: str, password: str) -> str:
    with connect(env, user, password) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        return str(cur.fetchone()[0])


def test_the_server_is_oracle_mysql(oracle_mysql):
    assert oracle_mysql.flavour == "mysql"
    assert not oracle_mysql.version.lower().count("mariadb")
    assert int(oracle_mysql.version.split(".")[0]) >= 8


def test_caching_sha2_full_then_fast_for_iam_and_password_users(omenv):
    """The backend login the endpoint makes for an IAM user (derived password) and the one it
    relays for a password user both use caching_sha2_password: the first login after the
    password was set is full authentication (RSA public key over the plain backend link), the
    next one the fast path, as observed on the endpoint-to-server wire."""
    iam, pw_user = unique("iam"), unique("pw")
    master_sql(omenv,
               f"CREATE USER '{iam}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
               f"CREATE USER '{pw_user}'@'%' IDENTIFIED BY 'pw-secret-1'")
    for _ in range(2):
        assert current_user(omenv, iam, omenv.token(iam)) == f"{iam}@%"
        assert current_user(omenv, pw_user, "pw-secret-1") == f"{pw_user}@%"
    assert [sha2_path(p) for p in omenv.tap.logins_of(iam)] == ["full", "fast"]
    assert [sha2_path(p) for p in omenv.tap.logins_of(pw_user)] == ["full", "fast"]
    ok = [(e.db_user, e.method) for e in omenv.events.all() if e.ok]
    assert ok.count((iam, "iam")) == 2 and ok.count((pw_user, "password")) == 2


def test_wrong_password_and_bad_token_get_the_rds_1045(omenv):
    iam, pw_user = unique("iam"), unique("pw")
    master_sql(omenv,
               f"CREATE USER '{iam}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
               f"CREATE USER '{pw_user}'@'%' IDENTIFIED BY 'right'")
    for user, password, reason in ((iam, omenv.token(iam, secret="x" * 40),
                                    Reason.SIGNATURE_MISMATCH),
                                   (pw_user, "wrong", Reason.PASSWORD_MISMATCH)):
        with pytest.raises(pymysql.err.OperationalError) as info:
            connect(omenv, user, password)
        assert info.value.args == (
            1045, f"Access denied for user '{user}'@'127.0.0.1' (using password: YES)")
        assert omenv.events.all()[-1].reason is reason


def test_mysql_native_password_is_gone(omenv):
    """MySQL 9 removed mysql_native_password: the server refuses it as an unloaded plugin."""
    with pytest.raises(pymysql.err.OperationalError) as info:
        master_sql(omenv, f"CREATE USER '{unique('n')}'@'%' IDENTIFIED WITH "
                          "mysql_native_password BY 'x'")
    assert info.value.args == (1524, "Plugin 'mysql_native_password' is not loaded")
    plugins = master_sql(omenv, "SELECT plugin_name FROM information_schema.plugins "
                                "WHERE plugin_type = 'AUTHENTICATION' ORDER BY 1")
    assert ("caching_sha2_password",) in plugins
    assert ("mysql_native_password",) not in plugins


def _greeting(port: int) -> tuple[str, int, str]:
    """(server version, capability flags, auth plugin) of the endpoint's HandshakeV10."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = sock.recv(4, socket.MSG_WAITALL)
        payload = sock.recv(int.from_bytes(head[:3], "little"), socket.MSG_WAITALL)
    assert payload[0] == 10
    end = payload.index(b"\0", 1)
    version = payload[1:end].decode()
    pos = end + 1 + 4 + 8 + 1
    caps_low = struct.unpack_from("<H", payload, pos)[0]
    caps_high = struct.unpack_from("<H", payload, pos + 5)[0]  # after charset and status
    auth_len = payload[pos + 7]
    pos += 8 + 10 + max(13, auth_len - 8)
    plugin = payload[pos:payload.index(b"\0", pos)].decode()
    return version, caps_low | caps_high << 16, plugin


def test_greeting_advertises_caching_sha2_and_tls_and_iam_logins_switch_to_cleartext(omenv):
    version, caps, plugin = _greeting(omenv.port)
    assert version == omenv.backend.version
    assert plugin == "caching_sha2_password"
    assert caps & 0x800 and caps & 0x80000  # CLIENT_SSL, CLIENT_PLUGIN_AUTH
    iam = unique("iam")
    master_sql(omenv, f"CREATE USER '{iam}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    assert current_user(omenv, iam, omenv.token(iam)) == f"{iam}@%"
    event = omenv.events.all()[-1]
    assert event.ok and event.method == "iam" and event.db_user == iam


def test_rds_ddl_require_ssl_rename_drop_and_show_create_user(omenv):
    a, b = unique("a"), unique("b")
    master_sql(omenv, f"CREATE USER '{a}' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' "
                      "REQUIRE SSL")
    assert master_sql(omenv, f"SHOW CREATE USER '{a}'@'%'") == [(
        f"CREATE USER `{a}`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' "
        f"REQUIRE SSL {RDS_TAIL}",)]
    # the requirement is the endpoint's (the client's TLS meets it), not the server's: its
    # link to the server has no TLS
    assert master_sql(omenv, f"SELECT ssl_type FROM mysql.user WHERE user = '{a}'") == [("",)]
    assert omenv.backend.is_iam_user(a)
    assert current_user(omenv, a, omenv.token(a)) == f"{a}@%"
    master_sql(omenv, f"RENAME USER '{a}'@'%' TO '{b}'@'%'")
    assert not omenv.backend.is_iam_user(a) and omenv.backend.is_iam_user(b)
    assert current_user(omenv, b, omenv.token(b)) == f"{b}@%"
    assert master_sql(omenv, f"SHOW CREATE USER '{b}'@'%'") == [(
        f"CREATE USER `{b}`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' "
        f"REQUIRE SSL {RDS_TAIL}",)]
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(omenv, a, omenv.token(a))
    assert info.value.args == (
        1045, f"Access denied for user '{a}'@'127.0.0.1' (using password: YES)")
    master_sql(omenv, f"DROP USER '{b}'@'%'")
    assert not omenv.backend.is_iam_user(b)
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(omenv, b, omenv.token(b))
    assert info.value.args[0] == 1045


def test_show_create_user_of_password_users_is_the_servers(omenv):
    pw_user = unique("pw")
    master_sql(omenv, f"CREATE USER '{pw_user}'@'%' IDENTIFIED BY 'p'")
    [(text,)] = master_sql(omenv, f"SHOW CREATE USER '{pw_user}'")
    assert text.startswith(f"CREATE USER `{pw_user}`@`%` IDENTIFIED WITH "
                           "'caching_sha2_password' AS '")
    assert text.endswith(f"REQUIRE NONE {RDS_TAIL}")


def test_show_create_user_on_mariadb_names_the_plugin(myenv):
    """MariaDB's form for a plugin account, instead of the derived password's stored hash."""
    iam, pw_user = unique("iam"), unique("pw")
    master_sql(myenv, f"CREATE USER '{iam}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"
                      " REQUIRE SSL",
               f"CREATE USER '{pw_user}'@'%' IDENTIFIED BY 'p'")
    assert master_sql(myenv, f"SHOW CREATE USER '{iam}'") == [(
        f"CREATE USER `{iam}`@`%` IDENTIFIED VIA AWSAuthenticationPlugin USING 'RDS' "
        "REQUIRE SSL",)]
    [(text,)] = master_sql(myenv, f"SHOW CREATE USER '{pw_user}'@'%'")
    assert text.startswith(f"CREATE USER `{pw_user}`@`%` IDENTIFIED BY PASSWORD '*")


def _shown_tls(env: MyEnv, user: str, engine: str) -> str:
    """The REQUIRE clause SHOW CREATE USER prints (MariaDB prints none for REQUIRE NONE)."""
    [(text,)] = master_sql(env, f"SHOW CREATE USER '{user}'@'%'")
    iam = ("IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS'" if engine == "oracle"
           else "IDENTIFIED VIA AWSAuthenticationPlugin USING 'RDS'")
    assert text.startswith(f"CREATE USER `{user}`@`%` {iam}"), text
    rest = text.removeprefix(f"CREATE USER `{user}`@`%` {iam}")
    return rest.removesuffix(f" {RDS_TAIL}").strip()


def _ssl_type(env: MyEnv, user: str) -> str:
    [(kind,)] = master_sql(env, f"SELECT ssl_type FROM mysql.user WHERE user = '{user}'")
    return str(kind)


@pytest.mark.parametrize("engine", ["oracle", "mariadb"])
def test_iam_user_with_require_ssl_logs_in(engine, request):
    """RDS's own DDL for an IAM user (REQUIRE SSL) then a token login: the endpoint keeps the
    requirement (met by the client's TLS) instead of handing it to the server."""
    env = request.getfixturevalue("omenv" if engine == "oracle" else "myenv")
    user = unique("rs")
    master_sql(env, f"CREATE USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' "
                    "REQUIRE SSL")
    assert current_user(env, user, env.token(user)) == f"{user}@%"
    assert env.events.all()[-1].ok
    assert _shown_tls(env, user, engine) == "REQUIRE SSL"


@pytest.mark.parametrize("engine", ["oracle", "mariadb"])
def test_alter_user_require_ssl_and_none_on_iam_and_password_accounts(engine, request):
    """ALTER USER ... REQUIRE SSL|NONE on an IAM account moves only the catalog's requirement;
    a password account with REQUIRE SSL made IAM (and back) hands it over (and back)."""
    env = request.getfixturevalue("omenv" if engine == "oracle" else "myenv")
    iam, pw = unique("ra"), unique("rp")
    master_sql(env, f"CREATE USER '{iam}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
               f"ALTER USER '{iam}'@'%' REQUIRE SSL")
    assert _shown_tls(env, iam, engine) == "REQUIRE SSL"
    assert _ssl_type(env, iam) == ""
    assert current_user(env, iam, env.token(iam)) == f"{iam}@%"
    master_sql(env, f"ALTER USER '{iam}'@'%' REQUIRE NONE")
    assert _shown_tls(env, iam, engine) == ("REQUIRE NONE" if engine == "oracle" else "")
    assert current_user(env, iam, env.token(iam)) == f"{iam}@%"
    # a password account with the server's own REQUIRE SSL becomes an IAM account
    master_sql(env, f"CREATE USER '{pw}'@'%' IDENTIFIED BY 'Pw-123456' REQUIRE SSL",
               f"ALTER USER '{pw}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    assert _ssl_type(env, pw) == ""
    assert _shown_tls(env, pw, engine) == "REQUIRE SSL"
    assert current_user(env, pw, env.token(pw)) == f"{pw}@%"
    # and back to a password account: the server holds the requirement again
    master_sql(env, f"ALTER USER '{pw}'@'%' IDENTIFIED BY 'Pw-123456'")
    assert not env.backend.is_iam_user(pw)
    assert _ssl_type(env, pw) == "ANY"
    # RDS's answer to a client without TLS: the server's own 1045
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host="localhost", port=env.port, user=pw, password="Pw-123456",
                        ssl_disabled=True, connect_timeout=10)
    assert info.value.args == (
        1045, f"Access denied for user '{pw}'@'127.0.0.1' (using password: YES)")
    event = env.events.all()[-1]
    assert (event.reason, event.tls) == (Reason.PASSWORD_MISMATCH, False)


def _mysql_cli(env: MyEnv, podman_env: dict[str, str], user: str, password: str,
               *options: str) -> subprocess.CompletedProcess[str]:
    """Oracle's `mysql` client (from the stand-in image: it needs unstable's libc) on the host's
    network, verifying the endpoint's certificate with the emulator CA."""
    cmd = ["podman", "run", "--rm", "--network=host", "-v", f"{env.ca_file}:/ca.pem:ro",
           podman_env["RDSIAM_ORACLE_MYSQL_IMAGE"], "mysql", "-h", "127.0.0.1",
           "-P", str(env.port), "-u", user, f"--password={password}",
           "--ssl-mode=VERIFY_IDENTITY", "--ssl-ca=/ca.pem", *options,
           "-N", "-B", "-e", "SELECT CURRENT_USER()"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **podman_env})


# -- issue #17: break review of the Oracle MySQL path (DDL interception) ---------------------------
IAM = "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"


def _connector(env, user: str, password: str):
    import mysql.connector

    return mysql.connector.connect(host="127.0.0.1", port=env.port, user=user, password=password,
                                   ssl_ca=env.ca_file, ssl_verify_cert=True, use_pure=True,
                                   connection_timeout=10)


def test_show_create_user_keeps_default_role(omenv):
    """MySQL prints DEFAULT ROLE between the authentication clause and REQUIRE: the IAM
    account's SHOW CREATE USER keeps it (RDS shows it)."""
    role, user = unique("role"), unique("dr")
    master_sql(omenv, f"CREATE ROLE '{role}'",
               f"CREATE USER '{user}'@'%' {IAM} DEFAULT ROLE '{role}'")
    assert master_sql(omenv, f"SHOW CREATE USER '{user}'@'%'") == [(
        f"CREATE USER `{user}`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' "
        f"DEFAULT ROLE `{role}`@`%` REQUIRE NONE {RDS_TAIL}",)]


def test_show_create_user_of_a_name_containing_identified_with(omenv):
    """The clause is looked for after the account, whose name may hold the same text."""
    user = "x IDENTIFIED WITH 'y" + unique("")[:4]
    sql_user = user.replace("'", "''")
    master_sql(omenv, f"CREATE USER '{sql_user}'@'%' {IAM}")
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"
    assert master_sql(omenv, f"SHOW CREATE USER '{sql_user}'@'%'") == [(
        f"CREATE USER `{user}`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' "
        f"REQUIRE NONE {RDS_TAIL}",)]


def test_syntax_error_in_iam_ddl_names_the_clients_text(omenv):
    """A syntax error in rewritten DDL names the client's text, in the answer and in SHOW
    WARNINGS (the replay's PREPARE takes a quoted string on Oracle MySQL, whose grammar has no
    hex literal there)."""
    user = unique("se")
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        master_sql(omenv, f"CREATE USER '{user}' {IAM} FOO")
    assert info.value.args[0] == 1064
    assert "near 'FOO' at line 1" in info.value.args[1], info.value.args[1]


@pytest.mark.parametrize("mode", ["", "NO_BACKSLASH_ESCAPES"])
def test_syntax_error_replay_keeps_backslashes_in_either_sql_mode(omenv, mode):
    """The replay's quoted string says the same as the client's text: its backslashes escaped
    unless the session's sql_mode takes them literally. The error quotes the text after the
    failing point as written, so a backslash lost or doubled there would show."""
    user = unique("bs")
    with connect(omenv, *omenv.master) as conn, conn.cursor() as cur:
        cur.execute(f"SET SESSION sql_mode = '{mode}'")
        with pytest.raises(pymysql.err.ProgrammingError) as info:
            cur.execute(f"CREATE USER '{user}' {IAM} FOO '\\x'")
        assert info.value.args[0] == 1064
        assert info.value.args[1].endswith("near 'FOO '\\x'' at line 1"), info.value.args[1]
        cur.execute("SHOW WARNINGS")
        assert [row[1:] for row in cur.fetchall()] == [(1064, info.value.args[1])]


def test_rename_chain_keeps_iam(omenv):
    """RENAME USER a TO b, b TO c: the renames are followed in order, the derived password goes
    to the final name."""
    a = unique("rc")
    master_sql(omenv, f"CREATE USER '{a}'@'%' {IAM}")
    master_sql(omenv, f"RENAME USER '{a}'@'%' TO 'n{a}'@'%', 'n{a}'@'%' TO 'nn{a}'@'%'")
    assert omenv.backend.is_iam_user(f"nn{a}")
    assert current_user(omenv, f"nn{a}", omenv.token(f"nn{a}")) == f"nn{a}@%"


def test_rename_swap_keeps_iam(omenv):
    """Swapping an IAM and a password account's names (a->t, b->a, t->b) in one statement."""
    a, b = unique("sa"), unique("sb")
    master_sql(omenv, f"CREATE USER '{a}'@'%' {IAM}", f"CREATE USER '{b}'@'%' IDENTIFIED BY 'pwb'")
    master_sql(omenv, f"RENAME USER '{a}'@'%' TO 't{a}'@'%', '{b}'@'%' TO '{a}'@'%', "
                      f"'t{a}'@'%' TO '{b}'@'%'")
    assert current_user(omenv, a, "pwb") == f"{a}@%"
    assert current_user(omenv, b, omenv.token(b)) == f"{b}@%"


def test_executable_comment_iam_ddl(omenv):
    """MySQL runs /*!NNNNN ... */ as code: so does the DDL inspection (RDS accepts the RDS DDL
    inside one)."""
    user = unique("ec")
    master_sql(omenv, f"CREATE USER '{user}'@'%' /*!80000 {IAM} */")
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"


def test_executable_comment_password_change_is_seen(omenv):
    """ALTER USER iam /*!80000 IDENTIFIED BY 'pw' */ makes a password account."""
    user = unique("ep")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    master_sql(omenv, f"ALTER USER '{user}'@'%' /*!80000 IDENTIFIED BY 'New-pw-1' */")
    assert current_user(omenv, user, "New-pw-1") == f"{user}@%"


def test_query_attributes_bypass_the_ddl_rewriting(omenv):
    """A COM_QUERY that carries query attributes (mysql-connector cursor.add_attribute,
    the mysql CLI's `query_attributes`) is inspected like any other."""
    user = unique("qa")
    conn = _connector(omenv, *omenv.master)
    try:
        cur = conn.cursor()
        cur.add_attribute("trace", "1")
        cur.execute(f"CREATE USER '{user}'@'%' {IAM}")
    finally:
        conn.close()
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"


def test_query_attributes_password_change_is_seen(omenv):
    """ALTER USER iam IDENTIFIED BY 'pw' with a query attribute makes a password account."""
    user = unique("qb")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    conn = _connector(omenv, *omenv.master)
    try:
        cur = conn.cursor()
        cur.add_attribute("trace", "1")
        cur.execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'Qa-pw-1'")
    finally:
        conn.close()
    assert current_user(omenv, user, "Qa-pw-1") == f"{user}@%"


@pytest.mark.parametrize("form", ["USER()", "CURRENT_USER()", "CURRENT_USER"])
def test_iam_user_alter_user_own_account_password_is_seen(omenv, form):
    """An IAM user sets its own password with ALTER USER USER()/CURRENT_USER() IDENTIFIED BY (the
    MySQL 8 form of SET PASSWORD = ...): it becomes a password account."""
    user = unique("own")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    with connect(omenv, user, omenv.token(user)) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER USER {form} IDENTIFIED BY 'Own-pw-1'")
    assert not omenv.backend.is_iam_user(user)
    assert current_user(omenv, user, "Own-pw-1") == f"{user}@%"


def test_random_password_on_an_iam_account_is_seen(omenv):
    """ALTER USER iam IDENTIFIED BY RANDOM PASSWORD (MySQL 8.0.18+) answers with a result set
    (user, host, generated password, auth_factor): a successful statement all the same, the
    account is a password account."""
    user = unique("rnd")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    [(_, _, generated, _)] = master_sql(
        omenv, f"ALTER USER '{user}'@'%' IDENTIFIED BY RANDOM PASSWORD")
    assert current_user(omenv, user, generated) == f"{user}@%"


def test_iam_account_created_beside_a_random_password_one(omenv):
    """CREATE USER a IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS', b IDENTIFIED BY RANDOM
    PASSWORD: the answer is a result set; a is an IAM user all the same."""
    a, b = unique("rna"), unique("rnb")
    master_sql(omenv, f"CREATE USER '{a}'@'%' {IAM}, '{b}'@'%' IDENTIFIED BY RANDOM PASSWORD")
    assert current_user(omenv, a, omenv.token(a)) == f"{a}@%"


def test_host_part_case(omenv):
    """MySQL stores an account's host in lower case ('Ten.Example.COM' -> 'ten.example.com'):
    the catalog follows, so SHOW CREATE USER and DROP USER with the server's spelling find the
    IAM account."""
    user = unique("hc")
    master_sql(omenv, f"CREATE USER '{user}'@'Ten.Example.COM' {IAM}")
    [(shown,)] = master_sql(omenv, f"SHOW CREATE USER '{user}'@'ten.example.com'")
    assert "AWSAuthenticationPlugin" in shown, shown
    master_sql(omenv, f"DROP USER '{user}'@'ten.example.com'",
               f"CREATE USER '{user}'@'%' IDENTIFIED BY 'Pw-1'")
    assert current_user(omenv, user, "Pw-1") == f"{user}@%"


def test_create_then_rename_in_one_multi_statement_query(omenv):
    """CREATE USER a (IAM); RENAME USER a TO b in one query: the statements are followed in
    order, b is the IAM user."""
    a, b = unique("ma"), unique("mb")
    conn = connect(omenv, *omenv.master, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE USER '{a}'@'%' {IAM}; RENAME USER '{a}'@'%' TO '{b}'@'%'")
            while cur.nextset():
                pass
    finally:
        conn.close()
    assert current_user(omenv, b, omenv.token(b)) == f"{b}@%"


def test_oracle_mysql_cli(omenv, podman_env):
    """libmysqlclient sends a token only with --enable-cleartext-plugin (RDS's instructions);
    without it the client refuses the switch itself, and a bad token gets RDS's 1045 line."""
    user = unique("cli")
    master_sql(omenv, f"CREATE USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    token = omenv.token(user, host="127.0.0.1")
    refused = _mysql_cli(omenv, podman_env, user, token)
    assert refused.returncode == 1
    assert ("Authentication plugin 'mysql_clear_password' cannot be loaded: plugin not enabled"
            in refused.stderr)
    assert omenv.events.all()[-1].reason is Reason.CLEARTEXT_PLUGIN_UNSUPPORTED
    ok = _mysql_cli(omenv, podman_env, user, token, "--enable-cleartext-plugin")
    assert (ok.returncode, ok.stdout) == (0, f"{user}@%\n"), ok.stderr
    bad = _mysql_cli(omenv, podman_env, user, omenv.token(user, host="127.0.0.1",
                                                          secret="x" * 40),
                     "--enable-cleartext-plugin")
    assert bad.returncode == 1
    assert (f"ERROR 1045 (28000): Access denied for user '{user}'@'127.0.0.1' "
            "(using password: YES)") in bad.stderr


PLUGIN_TEST = """
import pymysql
import pytest

@pytest.mark.parametrize("rds_iam_db", ["mysql"], indirect=True)
def test_mysql(rds_iam_db):
    rds_iam_db.create_iam_db_user("app_user")
    token = rds_iam_db.generate_token("app_user", rds_iam_db.iam_session("app_user"))
    with pymysql.connect(**rds_iam_db.connect_kwargs("app_user", token)) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION(), CURRENT_USER()")
            print("SERVER", *cur.fetchone())
        with conn.cursor() as cur:
            cur.execute("SHOW CREATE USER CURRENT_USER()")
            print("SHOWN", cur.fetchone()[0])
"""


def test_plugin_mysql_flavour_mysql_runs_oracle_mysql(pytester, podman_env):
    """--rdsiam-mysql-flavour mysql with the container backend: the fixture's server is Oracle
    MySQL (the stand-in image from $RDSIAM_ORACLE_MYSQL_IMAGE, while $RDSIAM_MYSQL_IMAGE names
    the MariaDB one), and an IAM login through it works."""
    assert "mariadb" in podman_env["RDSIAM_MYSQL_IMAGE"]
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest("-s", "-p", "no:xdist", "-p", "no:randomly", "--rdsiam-emulator",
                                "--rdsiam-backend", "docker", "--rdsiam-mysql-flavour", "mysql")
    result.assert_outcomes(passed=1)
    [line] = [out.split("SERVER ", 1)[1] for out in result.outlines if "SERVER " in out]
    version, user = line.split()
    assert "mariadb" not in version.lower() and user == "app_user@%"
    result.stdout.fnmatch_lines(["*SHOWN CREATE USER `app_user`@`%` IDENTIFIED WITH "
                                 "'AWSAuthenticationPlugin' AS 'RDS' REQUIRE NONE *"])


def _refused(env: MyEnv, user: str, password: str) -> bool:
    try:
        connect(env, user, password).close()
    except pymysql.err.OperationalError as exc:
        assert exc.args[0] == 1045, exc.args
        return True
    return False


@pytest.mark.parametrize("engine", ["oracle", "mariadb"])
def test_failed_multi_account_statement_catalog_follows_the_server(engine, request):
    """A multi-account statement naming an account that does not exist fails with 1396. Oracle
    MySQL 8+ changes nothing (account statements are atomic), MariaDB changes every other
    account: the IAM catalog (and the derived passwords) must do what the server did."""
    env = request.getfixturevalue("omenv" if engine == "oracle" else "myenv")
    atomic = engine == "oracle"
    p1, iam, iam2, new, missing = (unique(x) for x in ("p1", "i1", "i2", "n1", "missing"))
    master_sql(env, f"CREATE USER '{p1}'@'%' IDENTIFIED BY 'Pw-123456'",
               f"CREATE USER '{iam}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
               f"CREATE USER '{iam2}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    plugin = "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"
    statements = [
        f"ALTER USER '{p1}'@'%' {plugin}, '{missing}'@'%' {plugin}",
        f"CREATE USER '{new}'@'%' {plugin}, '{p1}'@'%' {plugin}",
        f"RENAME USER '{iam}'@'%' TO '{iam}x'@'%', '{missing}'@'%' TO '{missing}x'@'%'",
        f"DROP USER '{iam2}'@'%', '{missing}'@'%'",
    ]
    for sql in statements:
        with pytest.raises(pymysql.err.OperationalError) as info:
            master_sql(env, sql)
        assert info.value.args[0] == 1396, (sql, info.value.args)
    # ALTER: p1 keeps its password (atomic) or became an IAM user (partial)
    assert env.backend.is_iam_user(p1) is not atomic
    assert _refused(env, p1, "Pw-123456") is not atomic
    assert _refused(env, p1, env.token(p1)) is atomic
    # CREATE: the new account exists only where the statement was applied in part
    assert env.backend.is_iam_user(new) is not atomic
    assert _refused(env, new, env.token(new)) is atomic
    # RENAME: the IAM account keeps its name, or its new name logs in with a token
    assert env.backend.is_iam_user(iam) is atomic
    assert env.backend.is_iam_user(f"{iam}x") is not atomic
    assert _refused(env, iam, env.token(iam)) is not atomic
    assert _refused(env, f"{iam}x", env.token(f"{iam}x")) is atomic
    # DROP: the IAM account is still there, or gone
    assert env.backend.is_iam_user(iam2) is atomic
    assert _refused(env, iam2, env.token(iam2)) is not atomic


@pytest.mark.slow
@pytest.mark.parametrize("sdk", ["v1", "v2"])
def test_go_sdk_token_over_go_sql_driver_on_oracle(go_client: GoClient, omenv_rds_name: MyEnv,
                                                   sdk: str) -> None:
    """The Go program (AWS SDK for Go v1/v2 token, go-sql-driver/mysql) against Oracle MySQL."""
    check_go_sdk_token(go_client, omenv_rds_name, sdk)


@pytest.mark.slow
def test_java_connector_j_on_oracle(java_client: JavaClient, omenv_rds_name: MyEnv) -> None:
    """MariaDB Connector/J 2.7 (Debian's libmariadb-java; Oracle's Connector/J is not packaged)
    against Oracle MySQL behind the endpoint."""
    check_java_connector_j(java_client, omenv_rds_name)


def test_plugin_oracle_version_not_in_the_image_hint_is_for_docker(pytester, podman_env):
    """--rdsiam-mysql-version 8.4 with --rdsiam-mysql-flavour mysql on the docker backend, whose
    Oracle image (the stand-in, tag ``sid``) says no version: it starts, runs MySQL 9, and the
    hint says how to get 8.4 with docker (not "use --rdsiam-backend docker")."""
    image = podman_env["RDSIAM_ORACLE_MYSQL_IMAGE"]
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:randomly", "--rdsiam-emulator",
                                "--rdsiam-backend", "docker", "--rdsiam-mysql-flavour", "mysql",
                                "--rdsiam-mysql-version", "8.4")
    result.assert_outcomes(errors=1)
    text = " ".join(result.outlines)
    assert ("--rdsiam-mysql-version 8.4 cannot be honoured: the docker:" + image) in text, text
    assert ("To get MySQL 8.4: the image comes from $RDSIAM_ORACLE_MYSQL_IMAGE, which is used "
            "whatever version is asked: set it (or --rdsiam-mysql-image) to an image of MySQL "
            "8.4, or unset it to run mysql:8.4") in text, text
    assert "use --rdsiam-backend docker" not in text


@pytest.mark.xfail(strict=True, reason="known limit (docs/mysql.md): the server reports its own "
                   "link to the endpoint, which has no TLS, not the client's TLS as RDS does")
@pytest.mark.parametrize("engine", ["oracle", "mariadb"])
def test_session_status_shows_the_clients_tls(engine, request):
    env = request.getfixturevalue("omenv" if engine == "oracle" else "myenv")
    iam, pw = unique("st"), unique("sp")
    master_sql(env, f"CREATE USER '{iam}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
               f"CREATE USER '{pw}'@'%' IDENTIFIED BY 'Pw-123456'")
    seen = []
    for user, password in ((iam, env.token(iam)), (pw, "Pw-123456")):
        with connect(env, user, password) as conn, conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
            seen.append((cur.fetchone()[1], conn._sock.version()))  # the client's TLS version
    assert all(shown == client and client.startswith("TLS") for shown, client in seen), seen
