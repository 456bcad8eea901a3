"""Wire-level behaviour of the endpoint checked with raw sockets: exact errors, SQLSTATEs, and
robustness against malformed, oversized, slow or vanished clients and a dead backend."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time

import psycopg
import pytest
from pg_env import RDS_HOST, close_and_check, make_endpoint

from rdsiam_emulator.endpoint.postgres import PostgresEndpointSettings
from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.reasons import Reason


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _tls(sock: socket.socket, ca) -> ssl.SSLSocket:
    sock.sendall(codec.ssl_request())
    assert sock.recv(1) == b"S"
    return ca.client_context().wrap_socket(sock, server_hostname=RDS_HOST)


def _read_messages(sock: socket.socket, until: bytes = b"EZ") -> list[codec.Message]:
    reader = codec.MessageReader(10_000_000)
    out: list[codec.Message] = []
    while True:
        msg = reader.next_message()
        if msg is None:
            data = sock.recv(65536)
            if not data:
                return out
            reader.feed(data)
            continue
        out.append(msg)
        if msg.type in until:
            return out


def _closed_by_peer(sock: socket.socket, timeout: float = 5) -> bool:
    """The endpoint closes within ``timeout`` s, after at most a TLS alert (a few bytes)."""
    sock.settimeout(timeout)
    received = 0
    try:
        while received < 64:
            data = sock.recv(64)
            if not data:
                return True
            received += len(data)
    except ConnectionResetError:
        return True
    return False


def test_pam_failure_fields_and_sqlstate(endpoint) -> None:
    user = endpoint.iam_user()
    with _connect(endpoint.port) as raw, _tls(raw, endpoint.ca) as sock:
        sock.sendall(codec.startup_message({"user": user, "database": "app"}))
        msgs = _read_messages(sock, until=b"R")
        assert msgs[-1] == codec.Message(b"R", struct.pack("!i", 3))  # cleartext password
        sock.sendall(codec.password_message("not-a-token"))
        error = _read_messages(sock)[-1]
        fields = codec.parse_fields(error.body)
        assert error.type == b"E"
        assert fields["S"] == fields["V"] == "FATAL"
        assert fields["C"] == "28000"
        assert fields["M"] == f'PAM authentication failed for user "{user}"'
        assert _closed_by_peer(sock)
    assert endpoint.events.all()[-1].reason == Reason.MALFORMED_TOKEN


def test_iam_without_tls_gets_pg_hba_error(endpoint) -> None:
    user = endpoint.iam_user()
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(endpoint.conninfo(user, endpoint.token(user), sslmode="disable"))
    assert (f'FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "{user}", '
            'database "app", SSL off') in str(err.value)
    assert endpoint.events.all()[-1].reason == Reason.TLS_REQUIRED


def test_iam_with_sslmode_prefer_shows_pam_error(endpoint) -> None:
    user = endpoint.iam_user()
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(endpoint.conninfo(user, "bad", sslmode="prefer"))
    message = str(err.value)
    assert f'PAM authentication failed for user "{user}"' in message
    assert "SSL off" in message  # libpq retried without TLS and shows both errors


def test_iam_user_cannot_use_its_password(endpoint) -> None:
    user = endpoint.iam_user()
    endpoint.server.sql(f"ALTER ROLE {user} PASSWORD 'knownpw'")
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(endpoint.conninfo(user, "knownpw"))
    assert f'PAM authentication failed for user "{user}"' in str(err.value)


def test_master_user_becomes_iam_only_when_granted(endpoint) -> None:
    user, password = endpoint.password_user("master")
    endpoint.server.sql(f"GRANT ALL ON DATABASE app TO {user}")
    with psycopg.connect(endpoint.conninfo(user, password)) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    endpoint.server.sql(f"GRANT rds_iam TO {user}")
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        psycopg.connect(endpoint.conninfo(user, password))
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        assert conn.execute("select session_user").fetchone() == (user,)


def test_gssenc_request_is_refused(endpoint) -> None:
    with _connect(endpoint.port) as sock:
        sock.sendall(codec.gssenc_request())
        assert sock.recv(1) == b"N"
        # the connection continues: TLS is still possible
        with _tls(sock, endpoint.ca) as tls:
            tls.sendall(codec.startup_message({"user": "nosuchuser", "database": "app"}))
            assert _read_messages(tls, until=b"RE")[-1].type in (b"R", b"E")


def test_gssencmode_prefer_client_falls_back(endpoint) -> None:
    user = endpoint.iam_user()
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user),
                                           gssencmode="prefer")) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)


def test_plaintext_after_ssl_request_is_refused(endpoint) -> None:
    with _connect(endpoint.port) as sock:
        sock.sendall(codec.ssl_request() + codec.startup_message({"user": "x"}))
        # The S/N answer may or may not be written; the connection must end without a session.
        sock.settimeout(5)
        data = b""
        try:
            while chunk := sock.recv(100):
                data += chunk
        except ConnectionResetError:
            pass
    assert b"R" not in data[1:2]


def test_unsupported_protocol_version_error(endpoint) -> None:
    with _connect(endpoint.port) as sock:
        sock.sendall(codec.startup_message({"user": "x"}, protocol=4 << 16))
        fields = codec.parse_fields(_read_messages(sock)[-1].body)
    assert fields["C"] == "0A000"
    assert fields["M"] == "unsupported frontend protocol 4.0: server supports 3.0 to 3.0"


@pytest.mark.parametrize("payload", [
    struct.pack("!i", 0x7FFFFFFF) + b"x" * 100,  # oversized start-up length
    struct.pack("!i", 4),  # too short
    os.urandom(2000),  # garbage
    b"\x16\x03\x01\x02\x00" + os.urandom(200),  # a TLS ClientHello without SSLRequest
])
def test_garbage_start_up_closes_and_endpoint_keeps_serving(endpoint, payload: bytes) -> None:
    with _connect(endpoint.port) as sock:
        sock.sendall(payload)
        assert _closed_by_peer(sock)
    user = endpoint.iam_user()
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_tls_garbage_after_s(endpoint) -> None:
    with _connect(endpoint.port) as sock:
        sock.sendall(codec.ssl_request())
        assert sock.recv(1) == b"S"
        sock.sendall(b"\x16\x03\x01\x00\x05hello" + os.urandom(500))
        assert _closed_by_peer(sock)


def test_oversized_password_message(endpoint) -> None:
    user = endpoint.iam_user()
    with _connect(endpoint.port) as raw, _tls(raw, endpoint.ca) as sock:
        sock.sendall(codec.startup_message({"user": user, "database": "app"}))
        _read_messages(sock, until=b"R")
        sock.sendall(b"p" + struct.pack("!i", 50_000_000) + b"x" * 1000)
        msgs = _read_messages(sock)
    assert msgs and msgs[-1].type == b"E"
    assert codec.parse_fields(msgs[-1].body)["C"] == "08P01"


def test_client_vanishing_mid_handshake_leaks_nothing(endpoint) -> None:
    user = endpoint.iam_user()
    for _ in range(20):
        with _connect(endpoint.port) as raw, _tls(raw, endpoint.ca) as sock:
            sock.sendall(codec.startup_message({"user": user, "database": "app"})[:10])
        with _connect(endpoint.port) as sock:
            sock.sendall(codec.ssl_request())
    deadline = time.monotonic() + 5
    while endpoint.endpoint.active_tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert endpoint.endpoint.active_tasks == 0
    assert endpoint.endpoint.active_connections == 0


def test_handshake_timeout(pg_server, ca, loop_thread) -> None:
    running = make_endpoint(pg_server, ca, loop_thread,
                            PostgresEndpointSettings(handshake_timeout=0.5))
    try:
        with _connect(running.port) as sock:
            sock.sendall(codec.ssl_request())
            assert sock.recv(1) == b"S"
            started = time.monotonic()
            assert _closed_by_peer(sock, timeout=5)  # never sends a ClientHello
        assert time.monotonic() - started < 3
        assert running.endpoint.active_tasks == 0 or _wait_tasks(running) == 0
    finally:
        close_and_check(running)


def _wait_tasks(running) -> int:
    deadline = time.monotonic() + 3
    while running.endpoint.active_tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(running.endpoint.active_tasks)


def test_backend_down_gives_clean_error(pg_server, ca, loop_thread) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    running = make_endpoint(pg_server, ca, loop_thread, backend_port=dead_port)
    try:
        with pytest.raises(psycopg.OperationalError) as err:
            psycopg.connect(running.conninfo("someone", "x"))
        assert "the database system is not accepting connections" in str(err.value)
        assert _wait_tasks(running) == 0
    finally:
        close_and_check(running)


def test_cancel_request_reaches_the_backend_session(endpoint) -> None:
    user = endpoint.iam_user()
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        import threading

        # cancel_safe (libpq 17's cancel API, over TLS like the session). The legacy conn.cancel()
        # blocks in PQcancel while holding the GIL, which would freeze the endpoint's loop thread
        # in this same process; psql's Ctrl-C covers the legacy plain-TCP CancelRequest.
        def cancel_once_running() -> None:
            endpoint.wait_until_sleeping(user)
            conn.cancel_safe()

        timer = threading.Thread(target=cancel_once_running)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(20)")
        timer.join()
        assert time.monotonic() - started < 10
        conn.rollback()
        assert conn.execute("select 1").fetchone() == (1,)


def test_password_user_without_tls_is_allowed_unless_force_ssl(pg_server, ca,
                                                               loop_thread) -> None:
    running = make_endpoint(pg_server, ca, loop_thread, PostgresEndpointSettings(force_ssl=True))
    try:
        user, password = running.password_user()
        with pytest.raises(psycopg.OperationalError) as err:
            psycopg.connect(running.conninfo(user, password, dbname="postgres", sslmode="disable"))
        assert f'user "{user}", database "postgres", SSL off' in str(err.value)
        with psycopg.connect(running.conninfo(user, password, dbname="postgres")) as conn:
            assert conn.execute("select current_user").fetchone() == (user,)
    finally:
        close_and_check(running)


def test_slow_reader_is_flow_controlled(endpoint) -> None:
    """A client that stops reading a 200 MB result must not make the endpoint buffer it."""
    user = endpoint.iam_user()
    sock = _tls(_connect(endpoint.port), endpoint.ca)
    sock.sendall(codec.startup_message({"user": user, "database": "app"}))
    _read_messages(sock, until=b"R")
    sock.sendall(codec.password_message(endpoint.token(user)))
    assert _read_messages(sock)[-1].type == b"Z"
    sock.sendall(codec.typed(b"Q", b"select repeat('z', 10000) from generate_series(1, 20000)\0"))
    time.sleep(1.5)  # the server produces far faster than this; nobody reads
    peak = endpoint.loop.run(_buffered(endpoint))
    assert peak < 8 * 1024 * 1024, peak
    received = 0
    sock.settimeout(30)
    reader = codec.MessageReader(10_000_000)
    rows = 0
    done = False
    while not done:
        data = sock.recv(1 << 20)
        assert data
        received += len(data)
        reader.feed(data)
        while (msg := reader.next_message()) is not None:
            rows += msg.type == b"D"
            done = done or msg.type == b"Z"
    assert rows == 20_000
    assert received > 200_000_000
    sock.close()


async def _buffered(endpoint) -> int:
    return int(endpoint.endpoint.buffered_bytes())


def test_admin_connection_recovers_after_backend_kills_it(endpoint) -> None:
    user = endpoint.iam_user()
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    killed = endpoint.server.sql(
        "select pg_terminate_backend(pid) from pg_stat_activity "
        "where application_name = 'rdsiam-emulator'")
    assert killed[0] and all(row[0] for row in killed[0])
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_file_descriptor_leaks(endpoint) -> None:
    user = endpoint.iam_user()
    pw_user, password = endpoint.password_user()

    def batch() -> None:
        for _ in range(5):
            with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
                conn.execute("select 1")
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(endpoint.conninfo(user, "bad"))
            with psycopg.connect(endpoint.conninfo(pw_user, password, dbname="postgres")):
                pass
            with _connect(endpoint.port) as sock:
                sock.sendall(os.urandom(64))
        _wait_tasks(endpoint)

    batch()  # warm up: admin connection, certificate, caches
    before = _open_fds()
    batch()
    assert _open_fds() <= before
    assert endpoint.endpoint.active_connections == 0


def test_psycopg_legacy_cancel_from_another_process(endpoint) -> None:
    """psycopg's classic conn.cancel() (PQcancel: a plain-TCP CancelRequest), in a child process
    so its blocking call cannot stall the endpoint's event loop in this one."""
    import subprocess
    import sys
    import textwrap

    user = endpoint.iam_user()
    script = textwrap.dedent("""
        import sys, threading, time, psycopg
        conn = psycopg.connect(sys.argv[1])
        pid = conn.info.backend_pid

        def cancel_once_running():  # a cancel that arrives before the query is a no-op
            with psycopg.connect(sys.argv[1], autocommit=True) as watch:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not watch.execute(
                        "select count(*) from pg_stat_activity where pid = %s "
                        "and state = 'active'", (pid,)).fetchone()[0]:
                    time.sleep(0.05)
            conn.cancel()

        threading.Thread(target=cancel_once_running).start()
        started = time.monotonic()
        try:
            conn.execute("select pg_sleep(20)")
        except psycopg.errors.QueryCanceled as exc:
            print("canceled", round(time.monotonic() - started), str(exc).strip())
    """)
    out = subprocess.run([sys.executable, "-c", script,
                          endpoint.conninfo(user, endpoint.token(user))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split(maxsplit=2)
    assert words[0] == "canceled" and int(words[1]) < 10
    assert "canceling statement due to user request" in words[2]


def test_protocol_3_2_request_is_negotiated_down(endpoint) -> None:
    user = endpoint.iam_user()
    sock = _tls(_connect(endpoint.port), endpoint.ca)
    sock.sendall(codec.startup_message({"user": user, "database": "app", "_pq_.x": "y"},
                                       protocol=(3 << 16) | 2))
    msgs = _read_messages(sock, until=b"R")
    assert [m.type for m in msgs] == [b"v", b"R"]
    assert struct.unpack("!ii", msgs[0].body[:8]) == (3 << 16, 1)
    sock.sendall(codec.password_message(endpoint.token(user)))
    msgs = _read_messages(sock)
    assert msgs[0] == codec.Message(b"R", struct.pack("!i", 0))
    assert msgs[-1].type == b"Z"
    sock.close()


def test_hidden_admin_cannot_log_in_and_backend_has_no_tcp(endpoint) -> None:
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(endpoint.conninfo("rdsadmin", endpoint.server.admin_password,
                                          dbname="postgres"))
    assert ('pg_hba.conf rejects connection for host "127.0.0.1", user "rdsadmin", '
            'database "postgres", SSL on') in str(err.value)
    assert endpoint.server.sql("show listen_addresses")[0] == [("",)]


@pytest.mark.parametrize("mode", ["database", "true"])
def test_iam_replication_connection_is_refused(endpoint, mode: str) -> None:
    user = endpoint.iam_user()
    sock = _tls(_connect(endpoint.port), endpoint.ca)
    sock.sendall(codec.startup_message({"user": user, "database": "app", "replication": mode}))
    fields = codec.parse_fields(_read_messages(sock)[-1].body)
    assert fields["C"] == "28000"
    if mode == "database":
        assert fields["M"] == (f'pg_hba.conf rejects connection for host "127.0.0.1", '
                               f'user "{user}", database "app", SSL on')
    else:
        assert fields["M"] == (f'pg_hba.conf rejects replication connection for host '
                               f'"127.0.0.1", user "{user}", SSL on')
    sock.close()
