"""Clients that leave at every step of the handshake must take their backend session with them
(issue #12 §2/§4), capacity refusals and replication refusals are recorded with their reason (§5,
#11), the test helpers fail when their check fails, and valid logins keep working while hostile
clients run (the canary). Raw sockets and TLS over loopback against the real PostgreSQL 15.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from pg_env import RDS_HOST, RunningEndpoint, close_and_check, make_endpoint

from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.reasons import Reason

AUX_TITLES = ("checkpointer", "background writer", "walwriter", "autovacuum launcher",
              "logical replication launcher", "archiver", "stats collector")


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _tls(port: int, ep: RunningEndpoint) -> ssl.SSLSocket:
    sock = _connect(port)
    sock.sendall(codec.ssl_request())
    assert sock.recv(1) == b"S"
    return ep.ca.client_context().wrap_socket(sock, server_hostname=RDS_HOST)


def _read_until(sock: socket.socket, types: bytes) -> codec.Message:
    reader = codec.MessageReader(1_000_000)
    while True:
        msg = reader.next_message()
        if msg is None:
            data = sock.recv(65536)
            assert data, "the endpoint closed the connection"
            reader.feed(data)
            continue
        if msg.type in types:
            return msg


def backend_sessions(ep: RunningEndpoint) -> int:
    """Client backends the postmaster has forked (authenticating ones included, which
    pg_stat_activity of PostgreSQL 15 does not show yet)."""
    assert ep.server.handle.unix_socket is not None
    pidfile = Path(ep.server.handle.unix_socket).parent / "data" / "postmaster.pid"
    postmaster = int(pidfile.read_text().split()[0])
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == postmaster and not any(t in title for t in AUX_TITLES):
            count += 1
    return count


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _wait_clean(ep: RunningEndpoint, sessions: int, fds: int, timeout: float = 10.0) -> None:
    """Until the endpoint tracks no connection or task, holds no more fds than before and the
    server has no more sessions than before; fails with what is left on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        state = (ep.endpoint.active_connections, ep.endpoint.active_tasks,
                 max(0, _fds() - fds), max(0, backend_sessions(ep) - sessions))
        if state == (0, 0, 0, 0):
            return
        if time.monotonic() > deadline:
            raise AssertionError("left behind (connections, tasks, extra fds, extra backend "
                                 f"sessions): {state}")
        time.sleep(0.05)


def client_hello(ep: RunningEndpoint) -> bytes:
    """The first flight of a real TLS client (its ClientHello records), without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ep.ca.client_context().wrap_bio(incoming, outgoing, server_hostname=RDS_HOST)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _scram_first(sock: socket.socket) -> None:
    sock.sendall(codec.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abcdefghijklmnopqrstuvwx"))
    _read_until(sock, b"R")  # AuthenticationSASLContinue


def _leave(step: str, ep: RunningEndpoint, iam_user: str) -> None:
    """One hostile client that goes away at ``step``."""
    if step == "tcp":
        _connect(ep.port).close()
        return
    if step == "ssl_request":
        sock = _connect(ep.port)
        sock.sendall(codec.ssl_request())
        assert sock.recv(1) == b"S"
        sock.close()
        return
    if step == "mid_tls":  # half a ClientHello
        sock = _connect(ep.port)
        sock.sendall(codec.ssl_request())
        assert sock.recv(1) == b"S"
        hello = client_hello(ep)
        sock.sendall(hello[:len(hello) // 2])
        sock.close()
        return
    tls = _tls(ep.port, ep)
    if step == "tls":
        tls.close()
        return
    if step in ("startup", "scram"):  # a user that does not even exist
        tls.sendall(codec.startup_message({"user": "no_such_user", "database": "app"}))
        _read_until(tls, b"R")  # AuthenticationSASL, relayed from the server
        if step == "scram":
            _scram_first(tls)
        tls.close()
        return
    tls.sendall(codec.startup_message({"user": iam_user, "database": "app"}))
    _read_until(tls, b"R")  # AuthenticationCleartextPassword
    if step == "token_sent":  # gone while the endpoint logs in to the server for it
        tls.sendall(codec.password_message(ep.token(iam_user)))
    if step == "mid_relay":
        tls.sendall(codec.password_message(ep.token(iam_user)))
        _read_until(tls, b"Z")
        tls.sendall(codec.typed(b"Q", codec.cstr("select pg_sleep(0.2)")))
    tls.close()


def _warm_up(ep: RunningEndpoint, iam_user: str) -> None:
    """One login, so the endpoint's admin session (one fd, one server session) exists before
    the baseline is taken."""
    with psycopg.connect(ep.conninfo(iam_user, ep.token(iam_user))):
        pass
    deadline = time.monotonic() + 10
    while ep.endpoint.active_connections or ep.endpoint.active_tasks:
        assert time.monotonic() < deadline, "the warm-up login did not end"
        time.sleep(0.02)


STEPS = ("tcp", "ssl_request", "mid_tls", "tls", "startup", "scram", "cleartext", "token_sent",
         "mid_relay")


@pytest.mark.parametrize("step", STEPS)
def test_client_leaving_takes_its_backend_session_along(endpoint, step: str) -> None:
    iam_user = endpoint.iam_user()
    _warm_up(endpoint, iam_user)
    sessions, fds = backend_sessions(endpoint), _fds()
    for _ in range(5):
        _leave(step, endpoint, iam_user)
    _wait_clean(endpoint, sessions, fds)


def test_abandoned_scram_handshakes_cannot_exhaust_the_server(endpoint) -> None:
    """More abandoned SCRAM handshakes than max_connections (100); before the fix each one held
    a server slot for authentication_timeout (60 s) and the next real login got 53300."""
    iam_user = endpoint.iam_user()
    for _ in range(110):
        _leave("startup", endpoint, iam_user)
    with psycopg.connect(endpoint.conninfo(iam_user, endpoint.token(iam_user)),
                         connect_timeout=10) as conn:
        assert conn.execute("select current_user").fetchone() == (iam_user,)


def test_canary_logins_never_fail_while_hostile_clients_run(endpoint) -> None:
    """Valid IAM logins every 200 ms while hostile clients leave at every handshake step."""
    iam_user = endpoint.iam_user()
    _warm_up(endpoint, iam_user)
    sessions, fds = backend_sessions(endpoint), _fds()
    stop = threading.Event()
    failures: list[str] = []
    done = [0]

    def canary() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(endpoint.conninfo(iam_user, endpoint.token(iam_user)),
                                     connect_timeout=10) as conn:
                    conn.execute("select 1")
                done[0] += 1
            except psycopg.Error as exc:
                failures.append(str(exc))
            stop.wait(0.2)

    def hostile(steps: tuple[str, ...]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(25):
                for step in steps:
                    _leave(step, endpoint, iam_user)
        return run

    threads = [threading.Thread(target=canary)]
    threads += [threading.Thread(target=hostile(s)) for s in
                (("startup", "scram"), ("scram", "cleartext"), ("startup", "tls", "mid_relay"))]
    for t in threads[1:]:
        t.start()
    threads[0].start()
    for t in threads[1:]:
        t.join(120)
    stop.set()
    threads[0].join(30)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert done[0] >= 3
    _wait_clean(endpoint, sessions, fds)


def _limited_user(ep: RunningEndpoint, iam: bool) -> tuple[str, str]:
    if iam:
        user = ep.iam_user("cap")
        password = ""
    else:
        user, password = ep.password_user("cap")
        ep.server.sql(f"GRANT ALL ON DATABASE app TO {user}")
    ep.server.sql(f"ALTER ROLE {user} CONNECTION LIMIT 1")
    return user, password


@pytest.mark.parametrize("iam", [True, False], ids=["iam", "password"])
def test_capacity_refusal_is_recorded_as_too_many_connections(endpoint, iam: bool) -> None:
    user, password = _limited_user(endpoint, iam)

    def conninfo() -> str:
        return endpoint.conninfo(user, endpoint.token(user) if iam else password)

    with psycopg.connect(conninfo()):
        cursor = endpoint.events.mark()
        with pytest.raises(psycopg.OperationalError) as err:
            psycopg.connect(conninfo())
    assert "too many connections for role" in str(err.value)
    denied = [e for e in endpoint.events.since(cursor) if not e.ok]
    assert len(denied) == 1
    event = denied[0]
    assert event.reason is Reason.TOO_MANY_CONNECTIONS
    assert event.method == ("iam" if iam else "password")
    assert "53300" in event.detail and event.hint


def test_replication_by_iam_user_is_refused_with_an_event(endpoint) -> None:
    user = endpoint.iam_user()
    cursor = endpoint.events.mark()
    tls = _tls(endpoint.port, endpoint)
    tls.sendall(codec.startup_message({"user": user, "database": "app",
                                       "replication": "database"}))
    msg = _read_until(tls, b"E")
    tls.close()
    fields = codec.parse_fields(msg.body)
    assert fields["C"] == "28000"
    assert fields["M"].startswith("pg_hba.conf rejects connection")
    events = endpoint.events.since(cursor)
    assert [(e.reason, e.db_user, e.ok) for e in events] == [
        (Reason.REPLICATION_NOT_ALLOWED, user, False)]
    assert events[0].hint


def test_close_and_check_fails_on_a_leftover_connection(pg_server, ca, loop_thread) -> None:
    running = make_endpoint(pg_server, ca, loop_thread)
    user = running.iam_user()
    conn = psycopg.connect(running.conninfo(user, running.token(user)))
    try:
        with pytest.raises(AssertionError, match="connections still open"):
            close_and_check(running)
    finally:
        conn.close()


def test_wait_until_sleeping_fails_on_timeout(endpoint) -> None:
    with pytest.raises(AssertionError, match="did not start running"):
        endpoint.wait_until_sleeping("nobody_sleeps_here", timeout=0.3)


def test_huge_user_and_database_names_are_capped_in_events(endpoint) -> None:
    """Issue #12 §7: client-supplied names go into events capped and visibly truncated."""
    cursor = endpoint.events.mark()
    tls = _tls(endpoint.port, endpoint)
    tls.sendall(codec.startup_message({"user": "u" * 4000, "database": "d" * 4000,
                                       "options": "-c x=" + "o" * 1000}))
    _read_until(tls, b"R")
    _scram_first(tls)
    tls.sendall(codec.sasl_response(b"c=biws,r=abcdefghijklmnopqrstuvwx,p=AAAA"))
    assert codec.parse_fields(_read_until(tls, b"E").body)["C"] in ("28P01", "08P01")
    tls.close()
    deadline = time.monotonic() + 10
    while not endpoint.events.since(cursor):
        assert time.monotonic() < deadline, "no event recorded"
        time.sleep(0.05)
    [event] = endpoint.events.since(cursor)
    assert event.db_user.startswith("uuu") and event.db_user.endswith("truncated]")
    assert event.database is not None and event.database.endswith("truncated]")
    assert len(event.to_json()) < 3000


def test_token_for_a_user_without_rds_iam_records_not_iam_user(endpoint) -> None:
    """Issue #11: the RDS recipe with ``GRANT rds_iam`` forgotten. The client sees the server's
    own 28P01; the event says not_iam_user with the GRANT as hint."""
    user = f"nogrant_{os.getpid()}_{time.monotonic_ns()}"
    endpoint.server.sql(f"CREATE USER {user}", f"GRANT ALL ON DATABASE app TO {user}")
    cursor = endpoint.events.mark()
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(endpoint.conninfo(user, endpoint.token(user)))
    assert f'password authentication failed for user "{user}"' in str(err.value)
    [event] = endpoint.events.since(cursor)
    assert (event.reason, event.method, event.ok) == (Reason.NOT_IAM_USER, "password", False)
    assert event.hint is not None and f'GRANT rds_iam TO "{user}"' in event.hint


def test_wrong_password_of_a_password_user_is_password_mismatch(endpoint) -> None:
    """A user with a password who typed it wrong (or sent a token): SCRAM hides the password, so
    the event says password_mismatch, and its hint names the GRANT in case it was a token."""
    user, _ = endpoint.password_user()
    cursor = endpoint.events.mark()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(endpoint.conninfo(user, endpoint.token(user), dbname="postgres"))
    [event] = endpoint.events.since(cursor)
    assert (event.reason, event.method, event.ok) == (Reason.PASSWORD_MISMATCH, "password", False)
    assert "28P01" in event.detail
    assert event.hint is not None and f'GRANT rds_iam TO "{user}"' in event.hint
