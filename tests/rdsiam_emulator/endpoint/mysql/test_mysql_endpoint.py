# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""The MySQL endpoint against a real MariaDB with PyMySQL over real TLS."""

from __future__ import annotations

import socket
import threading
import time

import pymysql
import pytest
from mysql_env import (  # noqa: F401
    MyEnv,
    emulator_ca,
    mariadb,
    myenv,
    myenv_no_iam,
    myenv_uvloop,
    unique,
)

from rdsiam_emulator.reasons import Reason


def connect(env: MyEnv, user: str, password: str, *, tls: bool = True, **kw):
    tls_args = {"ssl": {"ca": env.ca_file}} if tls else {"ssl_disabled": True}
    return pymysql.connect(host="localhost", port=env.port, user=user, password=password,
                           connect_timeout=10, **tls_args, **kw)


def master(env: MyEnv, **kw):
    user, pw = env.master
    return connect(env, user, pw, **kw)


def make_iam_user(env: MyEnv, user: str | None = None) -> str:
    user = user or unique("iam")
    with master(env) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
        cur.execute(f"GRANT SELECT ON *.* TO '{user}'@'%'")
    return user


def scalar(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_master_password_login_is_relayed(myenv):
    with master(myenv) as conn:
        assert scalar(conn, "SELECT CURRENT_USER()") == f"{myenv.master[0]}@%"
        assert scalar(conn, "SELECT 1 + 1") == 2


def test_wrong_master_password_gets_1045_with_client_ip(myenv):
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv, myenv.master[0], "wrong")
    assert info.value.args == (
        1045, f"Access denied for user '{myenv.master[0]}'@'127.0.0.1' (using password: YES)")
    last = myenv.events.all()[-1]
    assert last.method == "password" and not last.ok


def test_master_user_cannot_log_in_with_a_token(myenv):
    """The master is a password user (as on RDS until it is made an IAM user): a valid token
    for it is just a wrong password."""
    name = myenv.master[0]
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv, name, myenv.token(name))
    assert info.value.args[0] == 1045
    assert myenv.events.all()[-1].reason is Reason.PASSWORD_MISMATCH
    with master(myenv) as conn:
        assert scalar(conn, "SELECT 1") == 1


def test_rds_ddl_creates_iam_user_that_logs_in_with_a_token(myenv):
    user = make_iam_user(myenv)
    with connect(myenv, user, myenv.token(user), database="app") as conn:
        assert scalar(conn, "SELECT CURRENT_USER()") == f"{user}@%"
        assert scalar(conn, "SELECT USER()").startswith(f"{user}@")
        assert scalar(conn, "SELECT DATABASE()") == "app"
    event = myenv.events.all()[-1]
    assert event.ok and event.db_user == user and event.method == "iam"


def test_iam_user_cannot_use_a_password(myenv):
    user = make_iam_user(myenv)
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv, user, "not-a-token")
    assert info.value.args == (
        1045, f"Access denied for user '{user}'@'127.0.0.1' (using password: YES)")
    assert myenv.events.all()[-1].reason is Reason.MALFORMED_TOKEN


def test_token_for_other_user_and_bad_signature_refused(myenv):
    user = make_iam_user(myenv)
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv, user, myenv.token("someone_else"))
    assert info.value.args[0] == 1045
    assert myenv.events.all()[-1].reason is Reason.DB_USER_MISMATCH
    with pytest.raises(pymysql.err.OperationalError):
        connect(myenv, user, myenv.token(user, secret="x" * 40))
    assert myenv.events.all()[-1].reason is Reason.SIGNATURE_MISMATCH


def test_iam_login_requires_tls(myenv):
    user = make_iam_user(myenv)
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv, user, myenv.token(user), tls=False)
    assert info.value.args == (
        1045, f"Access denied for user '{user}'@'127.0.0.1' (using password: YES)")
    assert myenv.events.all()[-1].reason is Reason.TLS_REQUIRED


def test_derived_password_is_not_a_way_in(myenv):
    from rdsiam_emulator.secrets import derived_password

    user = make_iam_user(myenv)
    with pytest.raises(pymysql.err.OperationalError):
        connect(myenv, user, derived_password(b"s" * 32, user))


def test_drop_user_and_alter_back_to_password(myenv):
    user = make_iam_user(myenv)
    with master(myenv) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'plain-pw'")
    with connect(myenv, user, "plain-pw") as conn:
        assert scalar(conn, "SELECT CURRENT_USER()") == f"{user}@%"
    with master(myenv) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER USER `{user}`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS'")
    with connect(myenv, user, myenv.token(user)) as conn:
        assert scalar(conn, "SELECT 1") == 1
    with master(myenv) as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER '{user}'@'%'")
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'again'")
    with connect(myenv, user, "again") as conn:  # no longer IAM after DROP USER
        assert scalar(conn, "SELECT 1") == 1


def test_multi_user_if_not_exists_and_existing_password_user_untouched(myenv):
    a, b, pw_user = unique("a"), unique("b"), unique("pw")
    with master(myenv) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{pw_user}'@'%' IDENTIFIED BY 'keep'")
        cur.execute(
            f"CREATE USER IF NOT EXISTS '{a}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS',"
            f" {b} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS',"
            f" '{pw_user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    for user in (a, b):
        with connect(myenv, user, myenv.token(user)) as conn:
            assert scalar(conn, "SELECT CURRENT_USER()") == f"{user}@%"
    with connect(myenv, pw_user, "keep") as conn:
        assert scalar(conn, "SELECT 1") == 1


def test_failed_create_does_not_make_existing_user_iam(myenv):
    pw_user = unique("pw")
    with master(myenv) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{pw_user}'@'%' IDENTIFIED BY 'keep'")
        with pytest.raises(pymysql.err.OperationalError) as info:
            cur.execute(
                f"CREATE USER '{pw_user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
        assert info.value.args[0] == 1396
    with connect(myenv, pw_user, "keep") as conn:
        assert scalar(conn, "SELECT 1") == 1


def test_ddl_refused_when_iam_disabled(myenv_no_iam):
    with master(myenv_no_iam) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as info:
            cur.execute("CREATE USER 'x'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
        assert info.value.args == (1524, "Plugin 'AWSAuthenticationPlugin' is not loaded")
        assert scalar(conn, "SELECT 42") == 42  # session still usable


def test_show_grants_and_ddl_inside_string_untouched(myenv):
    user = make_iam_user(myenv)
    with master(myenv) as conn:
        grants = scalar(conn, f"SHOW GRANTS FOR '{user}'@'%'")
        assert grants.startswith(f"GRANT SELECT ON *.* TO `{user}`@`%`")
        text = "CREATE USER 'z' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"
        assert scalar(conn, f"SELECT {conn.escape(text)}") == text


def test_multi_statements_and_deprecate_eof(myenv):
    user = make_iam_user(myenv)
    flags = pymysql.constants.CLIENT.MULTI_STATEMENTS
    with connect(myenv, user, myenv.token(user), client_flag=flags) as conn, \
            conn.cursor() as cur:
        cur.execute("SELECT 1; SELECT 2")
        assert cur.fetchone() == (1,)
        assert cur.nextset() and cur.fetchone() == (2,)


def test_kill_query_from_another_connection(myenv):
    user = make_iam_user(myenv)
    conn = connect(myenv, user, myenv.token(user))
    conn_id = conn.thread_id()
    result = {}

    def sleeper():
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT SLEEP(20)")
                result["v"] = cur.fetchone()[0]
            except pymysql.err.OperationalError as exc:
                result["v"] = exc.args[0]

    t = threading.Thread(target=sleeper)
    started = time.monotonic()
    t.start()
    with master(myenv) as m, m.cursor() as cur:
        deadline = time.monotonic() + 10  # KILL QUERY only once the SLEEP is running
        while time.monotonic() < deadline:
            cur.execute("SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = %s",
                        (conn_id,))
            row = cur.fetchone()
            if row and row[0] and "SLEEP" in row[0]:
                break
            time.sleep(0.05)
        cur.execute(f"KILL QUERY {conn_id}")
    t.join(10)
    assert result.get("v") in (1, 1317)  # interrupted: SLEEP returns 1, or ER_QUERY_INTERRUPTED
    assert time.monotonic() - started < 10
    conn.close()


def test_malformed_first_packet_gets_error_and_endpoint_keeps_serving(myenv):
    with socket.create_connection(("127.0.0.1", myenv.port), timeout=5) as s:
        greeting = s.recv(4096)
        assert greeting[4] == 10
        s.sendall(b"\x05\x00\x00\x01hello")
        err = s.recv(4096)
        assert err[4] == 0xFF
    with socket.create_connection(("127.0.0.1", myenv.port), timeout=5) as s:
        s.recv(4096)
        s.sendall(b"\x20\x00\x00\x07" + b"\x00" * 32)  # wrong sequence id
        err = s.recv(4096)
        assert err[4] == 0xFF and int.from_bytes(err[5:7], "little") == 1156
    with socket.create_connection(("127.0.0.1", myenv.port), timeout=5) as s:
        s.recv(4096)
        s.sendall(b"\xff\xff\xff\x01")  # oversized first packet
        err = s.recv(4096)
        assert int.from_bytes(err[5:7], "little") == 1153
    with master(myenv) as conn:
        assert scalar(conn, "SELECT 7") == 7


def test_tls_garbage_and_silent_clients_are_closed(myenv):
    from rdsiam_emulator.protocols.mysql.constants import Capability as C

    ssl_req = (int(C.PROTOCOL_41 | C.SSL | C.SECURE_CONNECTION).to_bytes(4, "little")
               + b"\0\0\0\1" + b"\x2d" + b"\0" * 23)
    with socket.create_connection(("127.0.0.1", myenv.port), timeout=5) as s:
        s.recv(4096)
        s.sendall(b"\x20\x00\x00\x01" + ssl_req + b"this is not a TLS ClientHello" * 10)
        s.settimeout(5)
        try:
            rest = s.recv(4096)
        except ConnectionResetError:
            rest = b""
        assert rest == b"" or rest[:1] == b"\x15"  # closed, or a TLS alert
    with master(myenv) as conn:
        assert scalar(conn, "SELECT 8") == 8
    deadline = time.monotonic() + 10
    while myenv.endpoint.active_tasks > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert myenv.endpoint.active_tasks == 0



def test_endpoint_runs_on_uvloop(myenv_uvloop):
    env = myenv_uvloop
    user = make_iam_user(env)
    with connect(env, user, env.token(user)) as conn:
        assert scalar(conn, "SELECT CURRENT_USER()") == f"{user}@%"
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(env, user, "bad")
    assert info.value.args[0] == 1045


def test_rename_user_keeps_iam_and_follows_the_name(myenv):
    old, new = unique("old"), unique("new")
    make_iam_user(myenv, old)
    with master(myenv) as conn, conn.cursor() as cur:
        cur.execute(f"RENAME USER '{old}'@'%' TO '{new}'@'%'")
    with connect(myenv, new, myenv.token(new)) as conn:
        assert scalar(conn, "SELECT CURRENT_USER()") == f"{new}@%"
    with master(myenv) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{old}'@'%' IDENTIFIED BY 'pw'")
    with connect(myenv, old, "pw") as conn:  # the old name is a plain password user now
        assert scalar(conn, "SELECT 1") == 1


def test_backend_password_out_of_step_is_repaired_once(myenv):
    """E.g. a reused backend and a new instance secret: the derived password no longer matches."""
    user = make_iam_user(myenv)
    myenv.backend.admin_execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'stale'")
    with connect(myenv, user, myenv.token(user)) as conn:
        assert scalar(conn, "SELECT CURRENT_USER()") == f"{user}@%"
    with connect(myenv, user, myenv.token(user)) as conn:  # and from now on directly
        assert scalar(conn, "SELECT CONNECTION_ID()") == conn.thread_id()
    with pytest.raises(pymysql.err.OperationalError):
        connect(myenv, user, "stale")


def test_tls_requirement_follows_the_authenticator_switch(myenv):
    user = make_iam_user(myenv)
    myenv.endpoint.authenticator.require_tls = False  # an instance configured without TLS
    with connect(myenv, user, myenv.token(user), tls=False) as conn:
        assert scalar(conn, "SELECT CURRENT_USER()") == f"{user}@%"
    assert not myenv.events.all()[-1].tls
