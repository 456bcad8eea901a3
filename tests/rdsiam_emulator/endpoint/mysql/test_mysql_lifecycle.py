# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""The MySQL endpoint's connection lifecycle and engine-stage refusals (issues #11 and #12):
every way out of a connection releases both legs (tracked connections, tasks and this process's
fds, counted after each failure path), overload is answered with ERROR 1040, and refusals that
happen before a token exists carry their own reason. Real MariaDB, real TLS, loopback only."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable

import pymysql
import pytest
from mysql_env import (  # noqa: F401
    MyEnv,
    _make_env,
    emulator_ca,
    mariadb,
    myenv,
    unique,
)

from rdsiam_emulator.endpoint.mysql import MysqlEndpointSettings
from rdsiam_emulator.protocols.mysql.constants import Capability as C
from rdsiam_emulator.protocols.mysql.messages import ChangeUser, ErrPacket, HandshakeResponse
from rdsiam_emulator.protocols.mysql.packets import Packet, PacketDecoder, encode_packet
from rdsiam_emulator.reasons import REASONS, Reason

CAPS = int(C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH)


def connect(env: MyEnv, user: str, password: str, **kw):
    return pymysql.connect(host="localhost", port=env.port, user=user, password=password,
                           ssl={"ca": env.ca_file}, connect_timeout=10, **kw)


def make_user(env: MyEnv, how: str = "WITH AWSAuthenticationPlugin AS 'RDS'") -> str:
    user = unique("lc")
    with connect(env, *env.master) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED {how}")
    return user


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(env: MyEnv, fds: int, what: str, timeout: float = 10.0) -> None:
    """Wait until the endpoint tracks nothing and this process holds no more fds than before."""
    deadline = time.monotonic() + timeout
    while True:
        state = (env.endpoint.active_tasks, env.endpoint.active_connections, fd_count())
        if state[0] == 0 and state[1] == 0 and state[2] <= fds:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"after {what}: {state[0]} tasks, {state[1]} connections, "
                                 f"{state[2]} fds (baseline {fds})")
        time.sleep(0.05)


def read_packet(sock: socket.socket | ssl.SSLSocket) -> Packet | None:
    """One packet, or None at EOF."""
    decoder = PacketDecoder()
    while True:
        data = sock.recv(65536)
        if not data:
            return None
        packets = decoder.feed(data)
        if packets:
            return packets[0]


def tls_client(env: MyEnv, caps: int = CAPS) -> ssl.SSLSocket:
    """A raw client that got the greeting, sent SSLRequest and finished TLS (seq 2 is next)."""
    raw = socket.create_connection(("127.0.0.1", env.port), timeout=5)
    assert read_packet(raw) is not None
    raw.sendall(encode_packet(1, HandshakeResponse(caps | C.SSL, 1 << 24, 45, b"\0" * 23,
                                                   is_ssl_request=True).build()))
    ctx = ssl.create_default_context(cafile=env.ca_file)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def hello(user: str, caps: int = CAPS, plugin: str | None = "mysql_native_password",
          auth: bytes = b"\x01" * 20) -> HandshakeResponse:
    return HandshakeResponse(caps, 1 << 24, 45, b"\0" * 23, user=user.encode(),
                             auth_response=auth, auth_plugin=plugin)


@pytest.fixture
def lc_env(mariadb, emulator_ca):
    yield from _make_env(mariadb, emulator_ca,
                         settings=MysqlEndpointSettings(handshake_timeout=1.0))


# ------------------------------------------------------------------ every failure path is released


def _bad_token(env: MyEnv, user: str) -> None:
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(env, user, env.token(user, port=env.port + 1))
    assert info.value.args[0] == 1045


def _bad_password(env: MyEnv, user: str) -> None:
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(env, env.master[0], "wrong-password")
    assert info.value.args[0] == 1045


def _silent_tcp(env: MyEnv, user: str) -> None:
    with socket.create_connection(("127.0.0.1", env.port), timeout=5) as s:
        assert read_packet(s) is not None
        assert s.recv(4096) == b""  # closed by the endpoint after handshake_timeout


def _silent_after_tls(env: MyEnv, user: str) -> None:
    with tls_client(env) as tls:
        started = time.monotonic()
        assert tls.recv(4096) == b""  # the endpoint closes it: the client sees the close
        assert time.monotonic() - started < 4


def _cut_after_ssl_request(env: MyEnv, user: str) -> None:
    s = socket.create_connection(("127.0.0.1", env.port), timeout=5)
    read_packet(s)
    s.sendall(encode_packet(1, HandshakeResponse(CAPS | C.SSL, 1 << 24, 45, b"\0" * 23,
                                                 is_ssl_request=True).build()))
    s.close()


def _garbage(env: MyEnv, user: str) -> None:
    with socket.create_connection(("127.0.0.1", env.port), timeout=5) as s:
        read_packet(s)
        s.sendall(encode_packet(7, b"\x00" * 40))  # wrong sequence id
        packet = read_packet(s)
        assert packet is not None and packet.payload[0] == 0xFF


def _no_plugin_auth(env: MyEnv, user: str) -> None:
    caps = CAPS & ~C.PLUGIN_AUTH
    with tls_client(env, caps) as tls:
        tls.sendall(encode_packet(2, hello(user, caps | C.SSL, plugin=None).build()))
        packet = read_packet(tls)
        assert packet is not None and ErrPacket.parse(packet.payload).code == 1251


def _hang_up_at_cleartext_switch(env: MyEnv, user: str) -> None:
    with tls_client(env) as tls:
        tls.sendall(encode_packet(2, hello(user, CAPS | C.SSL).build()))
        packet = read_packet(tls)
        assert packet is not None and packet.payload.startswith(b"\xfemysql_clear_password\0")


def _plain_tcp_iam(env: MyEnv, user: str) -> None:
    with socket.create_connection(("127.0.0.1", env.port), timeout=5) as s:
        read_packet(s)
        s.sendall(encode_packet(1, hello(user).build()))
        packet = read_packet(s)
        assert packet is not None and ErrPacket.parse(packet.payload).code == 1045


PATHS: list[Callable[[MyEnv, str], None]] = [
    _bad_token, _bad_password, _silent_tcp, _silent_after_tls, _cut_after_ssl_request,
    _garbage, _no_plugin_auth, _hang_up_at_cleartext_switch, _plain_tcp_iam,
]


def test_every_failure_path_releases_connections_tasks_and_fds(lc_env):
    env = lc_env
    user = make_user(env)
    with connect(env, user, env.token(user)):  # warm up: the admin connection exists now
        pass
    settle(env, fd_count() + 1, "warm-up")
    baseline = fd_count()
    for path in PATHS:
        for _ in range(3):
            path(env, user)
        settle(env, baseline, path.__name__)
    with connect(env, user, env.token(user)) as conn:  # and it still serves
        assert conn.cursor().execute("SELECT 1") == 1
    settle(env, baseline, "a good login")


def test_failed_logins_are_forgotten(myenv):
    """Issue #12 item 4: each failed login used to stay in the tracked connections for good."""
    user = make_user(myenv)
    for _ in range(30):
        _bad_token(myenv, user)
    settle(myenv, fd_count(), "30 failed logins")


# ------------------------------------------------------------------ engine-stage refusals (#11)


def test_non_tls_client_is_refused_before_any_token_is_requested(myenv):
    """The endpoint's own TLS gate: no AuthSwitchRequest to mysql_clear_password over plain TCP
    (the authenticator's second check would only refuse after the token was already sent)."""
    user = make_user(myenv)
    cursor = myenv.events.mark()
    with socket.create_connection(("127.0.0.1", myenv.port), timeout=5) as s:
        read_packet(s)
        s.sendall(encode_packet(1, hello(user).build()))
        packet = read_packet(s)
        assert packet is not None
        assert packet.payload[0] == 0xFF, "the endpoint asked a plain-TCP client for its token"
        err = ErrPacket.parse(packet.payload)
        assert (err.code, err.sqlstate) == (1045, "28000")
    (event,) = myenv.events.since(cursor)
    assert (event.reason, event.tls) == (Reason.TLS_REQUIRED, False)


def test_client_without_plugin_auth_gets_its_own_reason(myenv):
    user = make_user(myenv)
    cursor = myenv.events.mark()
    _no_plugin_auth(myenv, user)
    (event,) = myenv.events.since(cursor)
    assert event.reason is Reason.CLEARTEXT_PLUGIN_UNSUPPORTED
    assert "enable_cleartext_plugin" in event.hint and "--enable-cleartext-plugin" in event.hint
    assert "LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN" in event.hint
    assert REASONS[event.reason].stage == "engine"


def test_client_hanging_up_at_the_cleartext_switch_is_recorded(myenv):
    """What libmysqlclient does without the cleartext plugin enabled: no token, no silence."""
    user = make_user(myenv)
    cursor = myenv.events.mark()
    _hang_up_at_cleartext_switch(myenv, user)
    deadline = time.monotonic() + 5
    while not myenv.events.since(cursor) and time.monotonic() < deadline:
        time.sleep(0.02)
    (event,) = myenv.events.since(cursor)
    assert event.reason is Reason.CLEARTEXT_PLUGIN_UNSUPPORTED
    assert event.db_user == user


def _connector(env: MyEnv, user: str, password: str):
    import mysql.connector

    return mysql.connector.connect(host="localhost", port=env.port, user=user,
                                   password=password, ssl_ca=env.ca_file,
                                   auth_plugin="mysql_clear_password", use_pure=True,
                                   connection_timeout=10)


def test_token_for_a_password_user_is_not_iam_user(myenv):
    import mysql.connector

    user = make_user(myenv, "BY 'secret-pw'")
    cursor = myenv.events.mark()
    with pytest.raises(mysql.connector.Error) as info:
        _connector(myenv, user, myenv.token(user))
    assert info.value.errno == 1045
    with pytest.raises(mysql.connector.Error) as info:  # a wrong plain password stays plain
        _connector(myenv, user, "not-the-password")
    assert info.value.errno == 1045
    token_event, plain_event = myenv.events.since(cursor)
    assert (token_event.reason, token_event.method) == (Reason.NOT_IAM_USER, "password")
    assert "AWSAuthenticationPlugin" in token_event.hint
    assert myenv.token(user) not in (token_event.detail + token_event.hint)
    assert (plain_event.reason, plain_event.method) == (Reason.PASSWORD_MISMATCH, "password")
    assert "not an IAM token" in plain_event.detail and plain_event.hint


def test_change_user_with_a_token_to_a_password_user_is_not_iam_user(myenv):
    """COM_CHANGE_USER carries a cleartext token only from a client without
    CLIENT_SECURE_CONNECTION (otherwise the field has a one-byte length, too short for a token),
    so this client is raw: an IAM login in clear over TLS, then the change to a password user."""
    iam_user = make_user(myenv)
    pw_user = make_user(myenv, "BY 'secret-pw'")
    caps = int(C.PROTOCOL_41 | C.PLUGIN_AUTH | C.PLUGIN_AUTH_LENENC_CLIENT_DATA)
    with tls_client(myenv, caps) as tls:
        tls.sendall(encode_packet(2, hello(iam_user, caps | C.SSL, plugin="mysql_clear_password",
                                           auth=myenv.token(iam_user).encode() + b"\0").build()))
        ok = read_packet(tls)
        assert ok is not None and ok.payload[0] == 0x00
        cursor = myenv.events.mark()
        change = ChangeUser(pw_user.encode(), myenv.token(pw_user).encode(), b"", 45,
                            "mysql_clear_password", None)
        tls.sendall(encode_packet(0, change.build(caps)))
        switch = read_packet(tls)  # the server's switch to the user's own plugin, relayed
        assert switch is not None and switch.payload.startswith(b"\xfemysql_native_password\0")
        tls.sendall(encode_packet(switch.seq + 1, b"\x01" * 20))  # a client that holds a token
        answer = read_packet(tls)
        assert answer is not None and ErrPacket.parse(answer.payload).code == 1045
    deadline = time.monotonic() + 5
    while not myenv.events.since(cursor) and time.monotonic() < deadline:
        time.sleep(0.02)
    events = myenv.events.since(cursor)
    assert [(e.db_user, e.reason, e.method) for e in events] == [
        (pw_user, Reason.NOT_IAM_USER, "password")]


# ------------------------------------------------------------------ overload (#12 items 3 and 5)


@pytest.fixture
def small_env(mariadb, emulator_ca):
    yield from _make_env(mariadb, emulator_ca, settings=MysqlEndpointSettings(
        handshake_timeout=3.0, max_pending_logins=4))


def test_endpoint_answers_1040_beyond_its_pending_login_limit(small_env):
    env = small_env
    user = make_user(env)
    cursor = env.events.mark()
    silent = [socket.create_connection(("127.0.0.1", env.port), timeout=5) for _ in range(4)]
    try:
        for s in silent:
            assert read_packet(s) is not None  # each got a greeting and holds a login slot
        with socket.create_connection(("127.0.0.1", env.port), timeout=5) as extra:
            packet = read_packet(extra)
            assert packet is not None and packet.seq == 0
            err = ErrPacket.parse(packet.payload)
            assert (err.code, err.sqlstate, err.message) == (1040, "08004",
                                                             "Too many connections")
            assert extra.recv(16) == b""
    finally:
        for s in silent:
            s.close()
    (event,) = env.events.since(cursor)
    assert (event.reason, event.db_user) == (Reason.TOO_MANY_CONNECTIONS, "")
    settle(env, fd_count(), "silent clients")
    with connect(env, user, env.token(user)) as conn:  # the slots are free again
        assert conn.cursor().execute("SELECT 1") == 1


def test_backend_1040_reaches_the_client_as_1040(myenv, mariadb):
    """Issue #12 item 5: a full backend used to surface as 1045 and an internal_error event."""
    user = make_user(myenv)
    with connect(myenv, *myenv.master) as conn, conn.cursor() as cur:
        cur.execute(f"GRANT ALL ON app.* TO '{user}'@'%'")
    direct = pymysql.connect(**mariadb.address_kwargs(), user=mariadb.admin_user,
                             password=mariadb.admin_password, autocommit=True)
    held: list = []
    try:
        with direct.cursor() as cur:
            cur.execute("SELECT @@max_connections")
            (old,) = cur.fetchone()
            cur.execute("SELECT COUNT(*) FROM information_schema.processlist")
            (busy,) = cur.fetchone()
            cur.execute(f"SET GLOBAL max_connections = {int(busy) + 3}")
        cursor = myenv.events.mark()
        codes = []
        for _ in range(8):
            try:
                held.append(connect(myenv, user, myenv.token(user)))
            except pymysql.err.OperationalError as exc:
                codes.append(exc.args)
        assert codes, "the backend never filled up"
        assert {c[0] for c in codes} == {1040}, codes
        assert all("Too many connections" in c[1] for c in codes)
        refusals = [e for e in myenv.events.since(cursor) if e.outcome != "allow"]
        assert len(refusals) == len(codes)
        assert {e.reason for e in refusals} == {Reason.TOO_MANY_CONNECTIONS}
    finally:
        for conn in held:
            conn.close()
        with direct.cursor() as cur:
            cur.execute(f"SET GLOBAL max_connections = {int(old)}")
        direct.close()
    with connect(myenv, user, myenv.token(user)) as conn:
        assert conn.cursor().execute("SELECT 1") == 1


# ------------------------------------------------------------------ deferred backend (#12 item 3)


@pytest.fixture
def deferred_env(mariadb, emulator_ca):
    """Every client after the first gets the endpoint's own greeting (no backend until login)."""
    yield from _make_env(mariadb, emulator_ca, settings=MysqlEndpointSettings(
        handshake_timeout=3.0, eager_backend_logins=0))


def backend_sessions(mariadb) -> int:
    with pymysql.connect(**mariadb.address_kwargs(), user=mariadb.admin_user,
                         password=mariadb.admin_password) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.processlist")
        (count,) = cur.fetchone()
    return int(count)


def test_logins_with_a_deferred_backend(deferred_env):
    import mysql.connector

    env = deferred_env
    mu, mp = env.master
    user = make_user(env)  # the first login learns the backend's greeting
    with connect(env, user, env.token(user)) as conn, conn.cursor() as cur:
        assert conn.thread_id() >= 1 << 30  # the endpoint's greeting, not the backend's
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == (f"{user}@%",)
    with connect(env, mu, mp) as conn, conn.cursor() as cur:  # re-scrambled by an auth switch
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone()[0].startswith(f"{mu}@")
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(env, mu, "wrong")
    assert info.value.args == (
        1045, f"Access denied for user '{mu}'@'127.0.0.1' (using password: YES)")
    conn = mysql.connector.connect(host="localhost", port=env.port, user=mu, password=mp,
                                   ssl_ca=env.ca_file, use_pure=True, connection_timeout=10)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    finally:
        conn.close()
    cli = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(env.port), "-u", mu,
           f"--password={mp}", "--ssl", f"--ssl-ca={env.ca_file}", "-N", "-B", "-e", "SELECT 7"]
    import subprocess

    out = subprocess.run(cli, capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout.strip()) == (0, "7"), out.stderr
    settle(env, fd_count() + 64, "deferred logins")  # nothing tracked is left


def test_silent_clients_hold_no_backend_connections_beyond_the_eager_ones(mariadb, emulator_ca):
    """Issue #12 item 3: silent sockets used to hold one backend connection each."""
    for env in _make_env(mariadb, emulator_ca, settings=MysqlEndpointSettings(
            handshake_timeout=5.0, eager_backend_logins=2)):
        user = make_user(env)
        before = backend_sessions(mariadb)
        silent = [socket.create_connection(("127.0.0.1", env.port), timeout=5)
                  for _ in range(60)]
        try:
            for s in silent:
                assert read_packet(s) is not None
            assert backend_sessions(mariadb) - before <= 2
            with connect(env, user, env.token(user)) as conn:  # and a good login still works
                assert conn.cursor().execute("SELECT 1") == 1
        finally:
            for s in silent:
                s.close()


# ------------------------------------------------------------------ unbounded input (#12 item 7)


def test_huge_user_name_is_capped_in_events_and_log_lines(myenv, caplog):
    """A 100,000-character user name used to become a 100,404-character event line. Every
    client-supplied string is capped, with a visible mark, in the event and in log records."""
    user = "u" * 100_000
    cursor = myenv.events.mark()
    with caplog.at_level("DEBUG"), tls_client(myenv) as tls:
        tls.sendall(encode_packet(2, hello(user, CAPS | C.SSL, plugin="mysql_clear_password",
                                           auth=b"not-a-token\0").build()))
        packet = read_packet(tls)
        assert packet is not None
        if packet.payload[:1] == b"\xfe":  # the server asks for its own plugin: a wrong answer
            tls.sendall(encode_packet(packet.seq + 1, b"\x01" * 20))
            packet = read_packet(tls)
        assert packet is not None and ErrPacket.parse(packet.payload).code == 1045
        deadline = time.monotonic() + 5
        while not myenv.events.since(cursor):
            assert time.monotonic() < deadline, "no event recorded"
            time.sleep(0.02)
    (event,) = myenv.events.since(cursor)
    assert event.db_user.startswith("uuu") and event.db_user.endswith("truncated]")
    assert len(event.db_user) <= 256
    assert len(event.to_json()) < 4000
    assert all(len(r.getMessage()) < 4000 for r in caplog.records)
