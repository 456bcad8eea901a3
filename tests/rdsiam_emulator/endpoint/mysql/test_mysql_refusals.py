# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""Every refused MySQL login (HandshakeResponse or COM_CHANGE_USER) records exactly one event
with a reason and a hint (issues #11/#12 follow-up). Real MariaDB, real TLS, real drivers
(PyMySQL, mysql-connector), loopback only; the two stand-ins are named where they are used."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import mysql.connector
import pymysql
import pytest
from mysql_env import MyEnv, _make_env, emulator_ca, mariadb, myenv, myenv_no_iam  # noqa: F401
from test_mysql_lifecycle import CAPS, connect, fd_count, hello, make_user, read_packet, settle

from rdsiam_emulator.endpoint.mysql import MysqlEndpointSettings
from rdsiam_emulator.events import AuthEvent
from rdsiam_emulator.protocols.mysql.constants import Capability as C
from rdsiam_emulator.protocols.mysql.messages import ErrPacket
from rdsiam_emulator.protocols.mysql.packets import encode_packet
from rdsiam_emulator.reasons import Reason


def one_refusal(env: MyEnv, cursor: int) -> AuthEvent:
    """The single refusal recorded since ``cursor``; it must have a reason and a hint."""
    deadline = time.monotonic() + 5
    while not [e for e in env.events.since(cursor) if not e.ok]:
        assert time.monotonic() < deadline, "no refusal recorded"
        time.sleep(0.02)
    time.sleep(0.05)
    denied = [e for e in env.events.since(cursor) if not e.ok]
    assert len(denied) == 1, [e.summary() for e in denied]
    assert denied[0].reason is not None and denied[0].hint, denied[0].summary()
    return denied[0]


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain_connector(env: MyEnv, user: str, password: str, **kw):
    return mysql.connector.connect(host="127.0.0.1", port=env.port, user=user, password=password,
                                   use_pure=True, connection_timeout=10, **kw)


# ------------------------------------------------------------------ password logins


def test_wrong_scrambled_password_is_password_mismatch(myenv):
    """PyMySQL scrambles (mysql_native_password): the endpoint never sees the password, so the
    event cannot say not_iam_user; its hint says what to do if it was a token."""
    user = make_user(myenv, "BY 'secret-pw'")
    cursor = myenv.events.mark()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv, user, myenv.token(user))
    assert info.value.args[0] == 1045
    event = one_refusal(myenv, cursor)
    assert (event.reason, event.method) == (Reason.PASSWORD_MISMATCH, "password")
    assert "scrambled" in event.detail
    assert event.hint is not None and "AWSAuthenticationPlugin" in event.hint
    assert myenv.token(user)[:40] not in event.detail + event.hint


def test_unknown_database_is_backend_refused(myenv):
    cursor = myenv.events.mark()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv, *myenv.master, database="no_such_db_here")
    assert info.value.args[0] in (1044, 1049)
    event = one_refusal(myenv, cursor)
    assert event.reason is Reason.BACKEND_REFUSED and event.method == "password"
    assert str(info.value.args[0]) in event.detail


# ------------------------------------------------------------------ COM_CHANGE_USER


def test_change_user_to_an_iam_user_without_tls_is_tls_required_with_a_hint(myenv):
    iam_user = make_user(myenv)
    mu, mp = myenv.master
    conn = plain_connector(myenv, mu, mp, ssl_disabled=True)
    try:
        cursor = myenv.events.mark()
        with pytest.raises(mysql.connector.Error) as info:
            conn.cmd_change_user(username=iam_user, password=myenv.token(iam_user))
        assert info.value.errno == 1045
        event = one_refusal(myenv, cursor)
        assert event.reason is Reason.TLS_REQUIRED and "TLS" in (event.hint or "")
    finally:
        conn.close()


def test_change_user_with_a_wrong_password_is_password_mismatch(myenv):
    pw_user = make_user(myenv, "BY 'secret-pw'")
    mu, mp = myenv.master
    conn = plain_connector(myenv, mu, mp, ssl_ca=myenv.ca_file)
    try:
        cursor = myenv.events.mark()
        with pytest.raises(mysql.connector.Error) as info:
            conn.cmd_change_user(username=pw_user, password="not-the-password")
        assert info.value.errno == 1045
        event = one_refusal(myenv, cursor)
        assert (event.reason, event.method) == (Reason.PASSWORD_MISMATCH, "password")
        assert "COM_CHANGE_USER" in event.detail
    finally:
        conn.close()


def test_change_user_whose_derived_login_fails_is_internal_error(myenv, mariadb):
    """The IAM user's backend password was changed behind the endpoint's back: the token is
    allowed, the derived login fails (COM_CHANGE_USER does not repair it)."""
    iam_user = make_user(myenv)
    mu, mp = myenv.master
    with pymysql.connect(**mariadb.address_kwargs(), user=mariadb.admin_user,
                         password=mariadb.admin_password) as direct, direct.cursor() as cur:
        cur.execute(f"ALTER USER '{iam_user}'@'%' IDENTIFIED BY 'changed-behind-its-back'")
    conn = plain_connector(myenv, mu, mp, ssl_ca=myenv.ca_file,
                           auth_plugin="mysql_native_password")
    try:
        cursor = myenv.events.mark()
        with pytest.raises(mysql.connector.Error) as info:
            conn.cmd_change_user(username=iam_user, password=myenv.token(iam_user))
        assert info.value.errno == 1045
        event = one_refusal(myenv, cursor)
        assert event.reason is Reason.INTERNAL_ERROR
        assert "derived-password" in event.detail and "outside the endpoint" in (event.hint or "")
    finally:
        conn.close()


def drop_unseen(env: MyEnv, user: str) -> None:
    """DROP USER through a prepared statement, which the endpoint does not inspect: the catalog
    still lists the user as IAM."""
    with connect(env, *env.master) as conn, conn.cursor() as cur:
        cur.execute(f"PREPARE s FROM 'DROP USER ''{user}''@''%'''")
        cur.execute("EXECUTE s")


def test_iam_login_whose_account_is_gone_is_iam_account_missing(myenv):
    """#17: the token is allowed, the server has no such account: RDS's 1045 and one refusal
    naming the cause (was internal_error, "a bug")."""
    iam_user = make_user(myenv)
    drop_unseen(myenv, iam_user)
    cursor = myenv.events.mark()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv, iam_user, myenv.token(iam_user))
    assert info.value.args == (
        1045, f"Access denied for user '{iam_user}'@'127.0.0.1' (using password: YES)")
    event = one_refusal(myenv, cursor)
    assert event.reason is Reason.IAM_ACCOUNT_MISSING and "create it again" in event.hint
    assert "no account" in event.detail and event.access_key_id  # the allow's caller


def test_change_user_to_an_iam_user_whose_account_is_gone_is_iam_account_missing(myenv):
    iam_user = make_user(myenv)
    drop_unseen(myenv, iam_user)
    mu, mp = myenv.master
    conn = plain_connector(myenv, mu, mp, ssl_ca=myenv.ca_file)
    try:
        cursor = myenv.events.mark()
        with pytest.raises(mysql.connector.Error) as info:
            conn.cmd_change_user(username=iam_user, password=myenv.token(iam_user))
        assert info.value.errno == 1045
        event = one_refusal(myenv, cursor)
        assert event.reason is Reason.IAM_ACCOUNT_MISSING and "COM_CHANGE_USER" in event.detail
    finally:
        conn.close()


# ------------------------------------------------------------------ the backend


@pytest.fixture
def dead_env(mariadb, emulator_ca) -> Iterator[MyEnv]:
    yield from _make_env(mariadb, emulator_ca, backend_port=dead_port(),
                         settings=MysqlEndpointSettings(backend_timeout=1.0))


def test_unreachable_backend_is_backend_unavailable(dead_env):
    cursor = dead_env.events.mark()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(dead_env, "anyone", "x")
    assert info.value.args[0] == 1053
    event = one_refusal(dead_env, cursor)
    assert (event.reason, event.db_user) == (Reason.BACKEND_UNAVAILABLE, "")  # no login yet
    assert "cannot reach" in event.detail
    settle(dead_env, fd_count(), "a refused client")


@pytest.fixture
def deferred_env(mariadb, emulator_ca) -> Iterator[MyEnv]:
    """Every client after the first gets the endpoint's own greeting (no backend until login)."""
    yield from _make_env(mariadb, emulator_ca, settings=MysqlEndpointSettings(
        handshake_timeout=3.0, backend_timeout=1.0, eager_backend_logins=0))


def test_deferred_backend_unreachable_after_the_login_is_backend_unavailable(deferred_env):
    env = deferred_env
    user = make_user(env)  # the endpoint learns the backend's greeting
    env.endpoint.backend = replace(  # then it goes away
        env.endpoint.backend, host="127.0.0.1", port=dead_port(), unix_socket=None)
    cursor = env.events.mark()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(env, user, env.token(user))
    assert info.value.args[0] == 1053
    event = one_refusal(env, cursor)
    assert (event.reason, event.db_user) == (Reason.BACKEND_UNAVAILABLE, user)


def test_deferred_password_client_without_plugin_auth_has_its_reason(deferred_env):
    env = deferred_env
    make_user(env)  # the endpoint learns the backend's greeting
    caps = CAPS & ~C.PLUGIN_AUTH
    cursor = env.events.mark()
    with socket.create_connection(("127.0.0.1", env.port), timeout=5) as raw:
        assert read_packet(raw) is not None
        raw.sendall(encode_packet(1, hello(env.master[0], caps, plugin=None).build()))
        packet = read_packet(raw)
        assert packet is not None and ErrPacket.parse(packet.payload).code == 1251
    event = one_refusal(env, cursor)
    assert (event.reason, event.method) == (Reason.AUTH_SWITCH_UNSUPPORTED, "password")
    assert "eager_backend_logins" in (event.hint or "")


def _erring_server(code: int, message: bytes) -> tuple[socket.socket, threading.Thread]:
    """A loopback listener that answers each connection with an ERR packet instead of a greeting
    (what MariaDB sends a blocked host: 1129); a stand-in, since making the real server block
    loopback would break every other test using it."""
    listener = socket.create_server(("127.0.0.1", 0))
    payload = b"\xff" + code.to_bytes(2, "little") + message

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(encode_packet(0, payload))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_backend_refusing_the_connection_is_backend_refused(mariadb, emulator_ca):
    listener, thread = _erring_server(1129, b"Host '127.0.0.1' is blocked")
    try:
        for env in _make_env(mariadb, emulator_ca, backend_port=listener.getsockname()[1]):
            cursor = env.events.mark()
            with pytest.raises(pymysql.err.OperationalError) as info:
                connect(env, "anyone", "x")
            assert info.value.args[0] == 1129
            event = one_refusal(env, cursor)
            assert event.reason is Reason.BACKEND_REFUSED and "1129" in event.detail
    finally:
        listener.close()
        thread.join(5)


def test_catalog_lookup_failure_is_internal_error_with_a_hint(myenv, monkeypatch):
    """The admin session failing mid-lookup is injected (a stand-in: the shared server cannot be
    made to fail one query); the client gets 1045, the event internal_error with a hint."""
    async def broken(user: str) -> bool:
        raise ConnectionResetError("the admin connection broke")

    monkeypatch.setattr(myenv.endpoint.admin, "is_iam_user", broken)
    cursor = myenv.events.mark()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv, "anyone", "x")
    assert info.value.args[0] == 1045
    event = one_refusal(myenv, cursor)
    assert event.reason is Reason.INTERNAL_ERROR and "catalog lookup failed" in event.detail
    monkeypatch.undo()
    with connect(myenv, *myenv.master) as conn:  # the endpoint keeps serving
        assert conn.cursor().execute("SELECT 1") == 1


def test_iam_user_on_an_instance_with_iam_disabled_is_iam_disabled(myenv, myenv_no_iam):
    """With IAM off the endpoint relays an IAM user's login as a password login; its failure is
    iam_disabled, not a password problem (both endpoints share one MariaDB and its catalog)."""
    user = make_user(myenv)
    cursor = myenv_no_iam.events.mark()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(myenv_no_iam, user, myenv_no_iam.token(user))
    assert info.value.args[0] == 1045
    event = one_refusal(myenv_no_iam, cursor)
    assert event.reason is Reason.IAM_DISABLED and "iam_enabled=True" in (event.hint or "")


def test_change_user_to_an_iam_user_with_iam_disabled_is_iam_disabled(myenv, myenv_no_iam):
    user = make_user(myenv)
    mu, mp = myenv_no_iam.master
    conn = plain_connector(myenv_no_iam, mu, mp, ssl_ca=myenv_no_iam.ca_file)
    try:
        cursor = myenv_no_iam.events.mark()
        with pytest.raises(mysql.connector.Error) as info:
            conn.cmd_change_user(username=user, password=myenv_no_iam.token(user))
        assert info.value.errno == 1045
        event = one_refusal(myenv_no_iam, cursor)
        assert event.reason is Reason.IAM_DISABLED and "COM_CHANGE_USER" in event.detail
    finally:
        conn.close()
