# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""Faults (issue #16) against the MySQL endpoint, with real processes and real kills: mariadbd
killed mid-query and while a client's token is awaited (then restarted: the same endpoint serves
again), clients that leave, half-close their socket or go silent at every handshake step, and
TLS garbage. Each fault: the affected client's error, a healthy client on the same endpoint (and
a session on another instance) right after, and the endpoint's connections, tasks and this
process's fds back to their baseline. Real MariaDB, real TLS, loopback only."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from mysql_env import (  # noqa: F401
    MyEnv,
    _make_env,
    emulator_ca,
    mariadb,
    myenv,
)
from test_mysql_lifecycle import (
    CAPS,
    connect,
    fd_count,
    hello,
    make_user,
    read_packet,
    settle,
)

from rdsiam_emulator.backends.local_mysql import start_local_mysql
from rdsiam_emulator.backends.spec import BackendSpec
from rdsiam_emulator.endpoint.mysql import MysqlEndpointSettings
from rdsiam_emulator.protocols.mysql.constants import Capability as C
from rdsiam_emulator.protocols.mysql.messages import ErrPacket, HandshakeResponse
from rdsiam_emulator.protocols.mysql.packets import encode_packet
from rdsiam_emulator.reasons import Reason

SSL_REQUEST = encode_packet(1, HandshakeResponse(CAPS | C.SSL, 1 << 24, 45, b"\0" * 23,
                                                 is_ssl_request=True).build())


@pytest.fixture(scope="module")
def victim_server():
    """A MariaDB of this module's own: the tests kill it (the session's stays up)."""
    handle = start_local_mysql(BackendSpec(engine="mysql", provider="local"))
    try:
        yield handle
    finally:
        handle.stop()


def _up(handle) -> bool:
    try:
        handle.admin_execute("SELECT 1")
    except Exception:  # BackendError, or the driver's own while it is down
        return False
    return True


@pytest.fixture
def victim(victim_server, emulator_ca) -> Iterator[MyEnv]:
    if victim_server.server_pid is None or not _up(victim_server):
        victim_server.restart()
    yield from _make_env(victim_server, emulator_ca)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"pid {pid} is still there"
        time.sleep(0.02)


def _other_instance_session(env: MyEnv):
    user = make_user(env)
    conn = connect(env, user, env.token(user))
    assert conn.cursor().execute("SELECT 1") == 1
    return conn


def _login_works(env: MyEnv, user: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with connect(env, user, env.token(user)) as conn, conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER()")
                assert cur.fetchone() == (f"{user}@%",)
            return
        except pymysql.err.OperationalError as exc:
            assert time.monotonic() < deadline, f"no login within {timeout} s: {exc}"
            time.sleep(0.2)


def _warm(env: MyEnv, user: str) -> int:
    """One login (the admin connection exists afterwards); returns the fd baseline."""
    with connect(env, user, env.token(user)):
        pass
    settle(env, fd_count() + 1, "warm-up")
    return fd_count()


def test_server_killed_mid_query_then_restarted(victim: MyEnv, myenv: MyEnv) -> None:
    """kill -9 of mariadbd while a client's query runs: that client gets 2013 "Lost connection
    to MySQL server during query"; a login while it is down gets 1053 with a backend_unavailable
    event; a session on another instance goes on; after the server's restart the same endpoint
    serves IAM logins again and holds nothing of the dead sessions."""
    server = victim.backend
    user = make_user(victim)
    other = _other_instance_session(myenv)
    try:
        fds = _warm(victim, user)
        conn = connect(victim, user, victim.token(user))
        errors: list[BaseException] = []

        def query() -> None:
            try:
                conn.cursor().execute("SELECT SLEEP(30)")
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)

        worker = threading.Thread(target=query)
        worker.start()
        deadline = time.monotonic() + 10
        while not server.admin_execute(  # type: ignore[attr-defined]
                "SELECT COUNT(*) FROM information_schema.processlist "
                "WHERE info LIKE 'SELECT SLEEP%%'")[0][0]:
            assert time.monotonic() < deadline, "the query did not start"
            time.sleep(0.05)
        pid = server.server_pid  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
        worker.join(20)
        assert not worker.is_alive(), "the client still waits for its query"
        conn.close()
        [error] = errors
        assert isinstance(error, pymysql.err.OperationalError)
        assert error.args[0] == 2013 and "Lost connection" in error.args[1]
        _wait_gone(pid)

        cursor = victim.events.mark()
        with pytest.raises(pymysql.err.OperationalError) as down:
            connect(victim, user, victim.token(user))
        assert down.value.args == (1053, "Server shutdown in progress")
        assert [e.reason for e in victim.events.since(cursor) if not e.ok] == [
            Reason.BACKEND_UNAVAILABLE]

        assert other.cursor().execute("SELECT 2") == 1  # another instance: untouched
        server.restart()  # type: ignore[attr-defined]
        _login_works(victim, user)
        settle(victim, fds, "the server's restart")
    finally:
        other.close()


def _to_password_request(env: MyEnv, user: str) -> ssl.SSLSocket:
    """A raw IAM client asked for its token (AuthSwitchRequest to mysql_clear_password)."""
    raw = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    assert read_packet(raw) is not None
    raw.sendall(SSL_REQUEST)
    tls = ssl.create_default_context(cafile=env.ca_file).wrap_socket(
        raw, server_hostname="localhost")
    tls.sendall(encode_packet(2, hello(user, CAPS | C.SSL).build()))
    packet = read_packet(tls)
    assert packet is not None and packet.payload.startswith(b"\xfemysql_clear_password\0")
    return tls


def test_server_killed_while_the_token_is_awaited(victim: MyEnv, myenv: MyEnv) -> None:
    """mariadbd killed after the endpoint asked for the token: the token is answered with an
    error packet (no hang, no silent close), and the endpoint serves again after the restart."""
    server = victim.backend
    user = make_user(victim)
    other = _other_instance_session(myenv)
    try:
        fds = _warm(victim, user)
        tls = _to_password_request(victim, user)
        pid = server.server_pid  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        cursor = victim.events.mark()
        tls.sendall(encode_packet(4, victim.token(user).encode() + b"\0"))
        packet = read_packet(tls)
        tls.close()
        assert packet is not None and packet.payload[0] == 0xFF
        err = ErrPacket.parse(packet.payload)
        assert (err.code, err.message) == (1053, "Server shutdown in progress")
        refused = [e for e in victim.events.since(cursor) if not e.ok]
        assert [(e.reason, e.db_user) for e in refused] == [(Reason.BACKEND_UNAVAILABLE, user)]

        assert other.cursor().execute("SELECT 2") == 1
        server.restart()  # type: ignore[attr-defined]
        _login_works(victim, user)
        settle(victim, fds, "the server's restart")
    finally:
        other.close()


def test_server_restarted_while_the_token_is_awaited(victim: MyEnv) -> None:
    """The server restarted (its connection from accept is dead) while the client was asked for
    its token: the endpoint logs in on a fresh connection and the client is in."""
    server = victim.backend
    user = make_user(victim)
    fds = _warm(victim, user)
    tls = _to_password_request(victim, user)
    server.restart()  # type: ignore[attr-defined]
    tls.sendall(encode_packet(4, victim.token(user).encode() + b"\0"))
    packet = read_packet(tls)
    tls.close()
    assert packet is not None and packet.payload[0] == 0x00, packet  # OK
    settle(victim, fds, "a login across the server's restart")


# ------------------------------------------------- clients that leave, half-close or go silent


def _client_hello(env: MyEnv) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context(cafile=env.ca_file).wrap_bio(
        incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        return outgoing.read()
    raise AssertionError("a TLS handshake cannot finish without a server")


def _hold_at(step: str, env: MyEnv, user: str) -> socket.socket:
    """A client that got as far as ``step`` and stops there (TLS socket from ``tls`` on)."""
    if step == "password_request":
        return _to_password_request(env, user)
    raw = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    assert read_packet(raw) is not None  # the greeting
    if step == "greeting":
        return raw
    raw.sendall(SSL_REQUEST)
    if step == "ssl_request":
        return raw
    if step == "mid_tls":
        hello_bytes = _client_hello(env)
        raw.sendall(hello_bytes[:len(hello_bytes) // 2])
        return raw
    tls = ssl.create_default_context(cafile=env.ca_file).wrap_socket(
        raw, server_hostname="localhost")
    assert step == "tls", step
    return tls


HOLD_STEPS = ("greeting", "ssl_request", "mid_tls", "tls", "password_request")
LEAVE_STEPS = (*HOLD_STEPS, "token_sent")


def _closed_by_endpoint(sock: socket.socket, timeout: float) -> float:
    """Seconds until the endpoint closed ``sock``, reading whatever comes first."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    except TimeoutError:
        raise AssertionError(f"the endpoint kept the connection open for {timeout} s") from None
    return time.monotonic() - started


@pytest.fixture
def patient(mariadb, emulator_ca) -> Iterator[MyEnv]:
    """Handshake timeout 60 s: a prompt close cannot be the timeout's."""
    yield from _make_env(mariadb, emulator_ca,
                         settings=MysqlEndpointSettings(handshake_timeout=60.0))


@pytest.mark.parametrize("step", LEAVE_STEPS)
def test_client_leaving_at_every_step_leaves_nothing(patient: MyEnv, step: str) -> None:
    """Closed at each step (``token_sent``: right after sending the token, while the endpoint
    logs in to the server for it); five times each."""
    user = make_user(patient)
    fds = _warm(patient, user)
    for _ in range(5):
        if step == "token_sent":
            tls = _to_password_request(patient, user)
            tls.sendall(encode_packet(4, patient.token(user).encode() + b"\0"))
            tls.close()
        else:
            _hold_at(step, patient, user).close()
    settle(patient, fds, f"clients leaving at {step}")
    with connect(patient, user, patient.token(user)) as conn:
        assert conn.cursor().execute("SELECT 1") == 1


@pytest.mark.parametrize("step", HOLD_STEPS)
def test_half_closed_client_is_let_go(patient: MyEnv, step: str) -> None:
    """shutdown(SHUT_WR) at each step: the endpoint closes at once, not at the timeout."""
    user = make_user(patient)
    fds = _warm(patient, user)
    sock = _hold_at(step, patient, user)
    raw = socket.socket(fileno=os.dup(sock.fileno()))  # the TCP socket under any TLS
    try:
        raw.shutdown(socket.SHUT_WR)
        assert _closed_by_endpoint(sock, timeout=10) < 10
    finally:
        raw.close()
        sock.close()
    settle(patient, fds, f"a half-close at {step}")
    with connect(patient, user, patient.token(user)) as conn:
        assert conn.cursor().execute("SELECT 1") == 1


@pytest.fixture
def quick(mariadb, emulator_ca) -> Iterator[MyEnv]:
    yield from _make_env(mariadb, emulator_ca,
                         settings=MysqlEndpointSettings(handshake_timeout=0.5))


@pytest.mark.parametrize("step", HOLD_STEPS)
def test_silent_client_is_closed_at_the_handshake_timeout(quick: MyEnv, step: str) -> None:
    """A client that stops at each step is closed after ``handshake_timeout`` (0.5 s here)."""
    user = make_user(quick)
    fds = _warm(quick, user)
    with _hold_at(step, quick, user) as sock:
        assert _closed_by_endpoint(sock, timeout=10) < 5
    settle(quick, fds, f"a silent client at {step}")
    with connect(quick, user, quick.token(user)) as conn:
        assert conn.cursor().execute("SELECT 1") == 1


def _garbage_hello(env: MyEnv) -> bytes:
    """A ClientHello record whose header is right and whose body is noise (its full length)."""
    hello_bytes = _client_hello(env)
    return hello_bytes[:60] + os.urandom(len(hello_bytes))


@pytest.mark.parametrize("kind", ["not_tls", "bad_record_type", "hello_then_garbage"])
def test_tls_handshake_garbage_is_closed(patient: MyEnv, kind: str) -> None:
    user = make_user(patient)
    fds = _warm(patient, user)
    payload = {"not_tls": os.urandom(600),
               "bad_record_type": b"\x63\x03\x03\x00\x10" + b"\x00" * 16,
               "hello_then_garbage": _garbage_hello(patient)}[kind]
    with socket.create_connection(("127.0.0.1", patient.port), timeout=10) as sock:
        assert read_packet(sock) is not None
        sock.sendall(SSL_REQUEST + payload)
        assert _closed_by_endpoint(sock, timeout=10) < 10
    settle(patient, fds, f"TLS garbage ({kind})")
    with connect(patient, user, patient.token(user)) as conn:
        assert conn.cursor().execute("SELECT 1") == 1
