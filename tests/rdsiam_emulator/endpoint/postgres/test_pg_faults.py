"""Faults (issue #16) against the PostgreSQL endpoint, with real processes and real kills: the
real server's backend process killed mid-query and mid-handshake, the whole server killed while a
client waits for its token to be checked, clients that half-close their socket or go silent at
every handshake step, and TLS garbage. Each fault: the affected client's error, a healthy client
on the same endpoint (and a session on another instance) right after, and the endpoint's
connections, tasks, this process's fds and the server's sessions back to their baseline.
Clients leaving at every step are in test_pg_robustness.py (``STEPS``).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pg_env import (
    LoopThread,
    PgServer,
    RunningEndpoint,
    close_and_check,
    make_endpoint,
)
from test_pg_robustness import (
    _read_until,
    _tls,
    _wait_clean,
    _warm_up,
    backend_sessions,
    client_hello,
)

from rdsiam_emulator.backends import BackendSpec, PostgresHandle, start_local
from rdsiam_emulator.endpoint.postgres import PostgresEndpointSettings
from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.reasons import Reason
from rdsiam_emulator.tls import EmulatorCA


@pytest.fixture(scope="module")
def victim_server() -> Iterator[PgServer]:
    """A server of this module's own: the tests kill its processes (the session's stays up)."""
    handle = start_local(BackendSpec(engine="postgres", provider="local", version="15",
                                     dbname="app"))
    assert isinstance(handle, PostgresHandle)
    try:
        yield PgServer(handle)
    finally:
        handle.stop()


@pytest.fixture
def victim(victim_server: PgServer, ca: EmulatorCA,
           loop_thread: LoopThread) -> Iterator[RunningEndpoint]:
    """An endpoint (another instance) in front of the module's own server, which is up when the
    test starts whatever the previous test did to it."""
    if not _accepts(victim_server):
        victim_server.handle.restart()
    running = make_endpoint(victim_server, ca, loop_thread)
    yield running
    close_and_check(running)


def _accepts(server: PgServer) -> bool:
    try:
        server.sql("select 1")
    except psycopg.Error:
        return False
    return True


def _durable(running: RunningEndpoint) -> None:
    """CHECKPOINT before a kill: the local servers run with synchronous_commit=off and fsync=off
    (throw-away data), so crash recovery after a SIGKILL may drop the roles, passwords and the
    database the test set up just before; the tests are about the endpoint, not durability."""
    running.server.sql("CHECKPOINT")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _postmaster(ep: RunningEndpoint) -> int:
    assert ep.server.handle.unix_socket is not None
    pidfile = Path(ep.server.handle.unix_socket).parent / "data" / "postmaster.pid"
    return int(pidfile.read_text().split()[0])


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"pid {pid} is still there"
        time.sleep(0.02)


def _login_works_again(ep: RunningEndpoint, user: str, timeout: float = 30.0) -> list[str]:
    """Log in through ``ep`` until it works (the server recovers from a crash by itself);
    returns the errors seen before, for the caller to check their kind."""
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(ep.conninfo(user, ep.token(user)), connect_timeout=10) as conn:
                assert conn.execute("select current_user").fetchone() == (user,)
            return errors
        except psycopg.OperationalError as exc:
            errors.append(str(exc))
            assert time.monotonic() < deadline, f"no login within {timeout} s: {errors[-3:]}"
            time.sleep(0.2)


RECOVERING = ("the database system is not accepting connections",
              "the database system is in recovery mode",
              "the database system is starting up")
"""What a client may be told while the server restarts after a crash (57P03)."""


def _other_instance_session(endpoint: RunningEndpoint) -> psycopg.Connection[tuple[object, ...]]:
    user = endpoint.iam_user("other")
    conn = psycopg.connect(endpoint.conninfo(user, endpoint.token(user)))
    assert conn.execute("select 1").fetchone() == (1,)
    return conn


def test_backend_process_killed_mid_query(victim: RunningEndpoint,
                                          endpoint: RunningEndpoint) -> None:
    """kill -9 of the server process running a client's query: that client gets libpq's "SSL
    connection has been closed unexpectedly"; a session on another instance goes on; the endpoint
    serves new logins once the server has recovered, and holds nothing of the dead session."""
    user = victim.iam_user()
    _warm_up(victim, user)
    other = _other_instance_session(endpoint)
    try:
        sessions, fds = backend_sessions(victim), _fds()
        conn = psycopg.connect(victim.conninfo(user, victim.token(user)))
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        errors: list[BaseException] = []

        def query() -> None:
            try:
                conn.execute("select pg_sleep(30)")
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)

        worker = threading.Thread(target=query)
        worker.start()
        victim.wait_until_sleeping(user)
        _durable(victim)
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        worker.join(20)
        assert not worker.is_alive(), "the client still waits for its query"
        assert time.monotonic() - started < 10
        conn.close()
        [error] = errors
        assert isinstance(error, psycopg.OperationalError)
        assert "closed unexpectedly" in str(error)  # libpq: "SSL connection has been ..."

        assert other.execute("select 2").fetchone() == (2,)  # another instance: untouched
        seen = _login_works_again(victim, user)
        assert all(any(text in e for text in RECOVERING) for e in seen), seen
        _wait_clean(victim, sessions, fds)
    finally:
        other.close()


def test_backend_process_killed_mid_handshake(victim: RunningEndpoint,
                                              endpoint: RunningEndpoint) -> None:
    """kill -9 of the server process a password client is in the middle of SCRAM with: the
    client's connection is closed (as a dying PostgreSQL closes it), nothing hangs, the rest
    as above."""
    user, password = victim.password_user()
    victim.server.sql(f"GRANT ALL ON DATABASE app TO {user}")
    iam_user = victim.iam_user()
    _warm_up(victim, iam_user)
    other = _other_instance_session(endpoint)
    try:
        sessions, fds = backend_sessions(victim), _fds()
        before = _server_children(victim)
        tls = _tls(victim.port, victim)
        tls.sendall(codec.startup_message({"user": user, "database": "app"}))
        _read_until(tls, b"R")  # AuthenticationSASL from the server process
        [pid] = _server_children(victim) - before
        _durable(victim)
        os.kill(pid, signal.SIGKILL)
        tls.sendall(codec.sasl_initial_response("SCRAM-SHA-256",
                                                b"n,,n=,r=abcdefghijklmnopqrstuvwx"))
        tls.settimeout(10)
        with pytest.raises((ConnectionError, ssl.SSLError, AssertionError)) as closed:
            _read_until(tls, b"R")
        tls.close()
        assert "closed" in str(closed.value) or not isinstance(closed.value, AssertionError)

        assert other.execute("select 2").fetchone() == (2,)
        seen = _login_works_again(victim, iam_user)
        assert all(any(text in e for text in RECOVERING) for e in seen), seen
        with psycopg.connect(victim.conninfo(user, password)) as conn:  # relayed login too
            assert conn.execute("select current_user").fetchone() == (user,)
        _wait_clean(victim, sessions, fds)
    finally:
        other.close()


def _server_children(ep: RunningEndpoint) -> set[int]:
    """Processes the postmaster forked for client sessions (auxiliary processes included:
    the caller takes a difference)."""
    postmaster = _postmaster(ep)
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                out.add(int(entry))
    return out


def test_server_killed_while_the_token_is_awaited(victim: RunningEndpoint,
                                                  endpoint: RunningEndpoint) -> None:
    """The whole server killed after the endpoint asked a client for its token: the token is
    answered with 57P03 "not accepting connections" and a backend_unavailable event; after the
    server's restart the same endpoint serves new logins (no emulator restart)."""
    user = victim.iam_user()
    _warm_up(victim, user)
    other = _other_instance_session(endpoint)
    try:
        sessions, fds = backend_sessions(victim), _fds()
        tls = _tls(victim.port, victim)
        tls.sendall(codec.startup_message({"user": user, "database": "app"}))
        _read_until(tls, b"R")  # AuthenticationCleartextPassword
        postmaster = _postmaster(victim)
        _durable(victim)
        os.kill(postmaster, signal.SIGKILL)
        _wait_gone(postmaster)
        cursor = victim.events.mark()
        tls.sendall(codec.password_message(victim.token(user)))
        fields = codec.parse_fields(_read_until(tls, b"E").body)
        tls.close()
        assert (fields["S"], fields["C"], fields["M"]) == (
            "FATAL", "57P03", "the database system is not accepting connections")
        # the token was good (its allow), then the server could not be reached
        events = victim.events.since(cursor)
        assert [(e.ok, e.reason, e.db_user) for e in events] == [
            (True, None, user), (False, Reason.BACKEND_UNAVAILABLE, user)]
        assert events[1].hint

        assert other.execute("select 2").fetchone() == (2,)
        victim.server.handle.restart()
        assert _login_works_again(victim, user, timeout=10) == []
        _wait_clean(victim, sessions, fds)
    finally:
        other.close()


# ------------------------------------------------------------ half-closed and silent clients


def _hold_at(step: str, ep: RunningEndpoint, user: str) -> socket.socket:
    """A client that got as far as ``step`` and stops there; returns its socket (TLS or not)."""
    sock = socket.create_connection(("127.0.0.1", ep.port), timeout=10)
    if step == "tcp":
        return sock
    sock.sendall(codec.ssl_request())
    assert sock.recv(1) == b"S"
    if step == "ssl_request":
        return sock
    if step == "mid_tls":
        hello = client_hello(ep)
        sock.sendall(hello[:len(hello) // 2])
        return sock
    tls = ep.ca.client_context().wrap_socket(sock, server_hostname="mydb.c9akciq32example."
                                             "us-east-1.rds.amazonaws.com")
    if step == "tls":
        return tls
    tls.sendall(codec.startup_message({"user": user, "database": "app"}))
    _read_until(tls, b"R")  # AuthenticationCleartextPassword: the token is awaited
    assert step == "password_request", step
    return tls


HOLD_STEPS = ("tcp", "ssl_request", "mid_tls", "tls", "password_request")


def _closed_by_endpoint(sock: socket.socket, timeout: float) -> float:
    """Seconds until the endpoint closed ``sock`` (EOF, reset or TLS EOF), reading whatever
    comes first; fails after ``timeout``."""
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


@pytest.mark.parametrize("step", HOLD_STEPS)
def test_half_closed_client_is_let_go(endpoint: RunningEndpoint, step: str) -> None:
    """shutdown(SHUT_WR) at each step: the endpoint sees the end of the client's stream and
    closes at once (well before the handshake timeout, 60 s here), holding nothing."""
    user = endpoint.iam_user()
    _warm_up(endpoint, user)
    sessions, fds = backend_sessions(endpoint), _fds()
    sock = _hold_at(step, endpoint, user)
    raw = socket.socket(fileno=os.dup(sock.fileno()))  # the TCP socket under any TLS
    try:
        raw.shutdown(socket.SHUT_WR)
        assert _closed_by_endpoint(sock, timeout=10) < 10
    finally:
        raw.close()
        sock.close()
    _wait_clean(endpoint, sessions, fds)
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


@pytest.fixture
def quick(pg_server: PgServer, ca: EmulatorCA,
          loop_thread: LoopThread) -> Iterator[RunningEndpoint]:
    running = make_endpoint(pg_server, ca, loop_thread,
                            PostgresEndpointSettings(handshake_timeout=0.5))
    yield running
    close_and_check(running)


@pytest.mark.parametrize("step", HOLD_STEPS)
def test_silent_client_is_closed_at_the_handshake_timeout(quick: RunningEndpoint,
                                                          step: str) -> None:
    """A client that stops at each step is closed after ``handshake_timeout`` (0.5 s here;
    PostgreSQL's authentication_timeout, 60 s, by default) and leaves nothing behind."""
    user = quick.iam_user()
    _warm_up(quick, user)
    sessions, fds = backend_sessions(quick), _fds()
    with _hold_at(step, quick, user) as sock:
        waited = _closed_by_endpoint(sock, timeout=10)
    assert waited < 5
    _wait_clean(quick, sessions, fds)
    with psycopg.connect(quick.conninfo(user, quick.token(user))) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


TLS_GARBAGE = {
    "not_tls": os.urandom(600),
    "bad_record_type": b"\x63\x03\x03\x00\x10" + b"\x00" * 16,
    "huge_record": b"\x16\x03\x01\xff\xff" + os.urandom(1000),
    "hello_then_garbage": b"",  # filled in by the test: a real ClientHello's first half + junk
}


@pytest.mark.parametrize("kind", sorted(TLS_GARBAGE))
def test_tls_handshake_garbage_is_closed(endpoint: RunningEndpoint, kind: str) -> None:
    """Bytes that are not a TLS handshake after ``S``: the endpoint closes the connection at once
    and keeps serving."""
    user = endpoint.iam_user()
    _warm_up(endpoint, user)
    sessions, fds = backend_sessions(endpoint), _fds()
    payload = TLS_GARBAGE[kind]
    if kind == "hello_then_garbage":
        hello = client_hello(endpoint)
        payload = hello[:60] + os.urandom(len(hello))
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
        sock.sendall(codec.ssl_request())
        assert sock.recv(1) == b"S"
        sock.sendall(payload)
        assert _closed_by_endpoint(sock, timeout=10) < 10
    _wait_clean(endpoint, sessions, fds)
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_garbage_tls_record_after_login_ends_only_that_session(endpoint: RunningEndpoint) -> None:
    """A corrupted TLS record in a logged-in session (bytes written under the TLS layer): the
    endpoint drops that session and its server session; another session is unaffected."""
    user = endpoint.iam_user()
    _warm_up(endpoint, user)
    sessions, fds = backend_sessions(endpoint), _fds()
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as bystander:
        tls = _tls(endpoint.port, endpoint)
        tls.sendall(codec.startup_message({"user": user, "database": "app"}))
        _read_until(tls, b"R")
        tls.sendall(codec.password_message(endpoint.token(user)))
        _read_until(tls, b"Z")
        raw = socket.socket(fileno=os.dup(tls.fileno()))
        raw.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))  # application data, bad MAC
        assert _closed_by_endpoint(tls, timeout=10) < 10
        raw.close()
        tls.close()
        assert bystander.execute("select 1").fetchone() == (1,)
    _wait_clean(endpoint, sessions, fds)
