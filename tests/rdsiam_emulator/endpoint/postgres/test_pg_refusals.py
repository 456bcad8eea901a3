"""Every refused PostgreSQL login records exactly one event with a reason and a hint, and leaves
nothing behind (tracked connections, tasks, this process's fds, server sessions back to the
baseline). Real PostgreSQL 15, real TLS, psycopg, loopback only."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import psycopg
import pytest
from pg_env import RunningEndpoint, close_and_check, make_endpoint
from test_pg_robustness import _fds, _limited_user, _wait_clean, _warm_up, backend_sessions

from rdsiam_emulator.endpoint.postgres import PostgresEndpointSettings
from rdsiam_emulator.events import AuthEvent
from rdsiam_emulator.reasons import Reason


def _refused(ep: RunningEndpoint, conninfo: str) -> tuple[str, AuthEvent]:
    """Connect, expect a refusal; returns the client's error text and the one event."""
    cursor = ep.events.mark()
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(conninfo, connect_timeout=10)
    deadline = time.monotonic() + 5
    while not [e for e in ep.events.since(cursor) if not e.ok]:
        assert time.monotonic() < deadline, f"no refusal recorded for: {err.value}"
        time.sleep(0.02)
    time.sleep(0.05)  # a second event would be recorded by now
    denied = [e for e in ep.events.since(cursor) if not e.ok]
    assert len(denied) == 1, [e.summary() for e in denied]
    event = denied[0]
    assert event.hint, event.summary()
    return str(err.value), event


def _bad_token(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    user = ep.iam_user()
    message, event = _refused(ep, ep.conninfo(user, ep.token(user, port=ep.port + 1)))
    assert f'PAM authentication failed for user "{user}"' in message
    assert event.reason is Reason.HOST_MISMATCH
    return message, event


def _tls_required(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    user = ep.iam_user()
    message, event = _refused(ep, ep.conninfo(user, ep.token(user), sslmode="disable"))
    assert "pg_hba.conf rejects connection" in message and "SSL off" in message
    assert event.reason is Reason.TLS_REQUIRED
    return message, event


def _capacity(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    user, _ = _limited_user(ep, iam=True)
    with psycopg.connect(ep.conninfo(user, ep.token(user))):
        message, event = _refused(ep, ep.conninfo(user, ep.token(user)))
    assert "too many connections for role" in message
    assert event.reason is Reason.TOO_MANY_CONNECTIONS
    return message, event


def _replication(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    user = ep.iam_user()
    message, event = _refused(ep, ep.conninfo(user, ep.token(user), replication="database"))
    assert "pg_hba.conf rejects connection" in message
    assert event.reason is Reason.REPLICATION_NOT_ALLOWED
    return message, event


def _not_iam_user(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    user = f"nogrant_{time.monotonic_ns()}"
    ep.server.sql(f"CREATE USER {user}", f"GRANT ALL ON DATABASE app TO {user}")
    message, event = _refused(ep, ep.conninfo(user, ep.token(user)))
    assert f'password authentication failed for user "{user}"' in message
    assert event.reason is Reason.NOT_IAM_USER and event.method == "password"
    assert event.hint is not None and f'GRANT rds_iam TO "{user}"' in event.hint
    return message, event


def _admin(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    admin = ep.endpoint.backend.admin_user
    message, event = _refused(ep, ep.conninfo(admin, ep.server.admin_password))
    assert f'pg_hba.conf rejects connection for host "127.0.0.1", user "{admin}"' in message
    assert event.reason is Reason.RESERVED_USER and event.db_user == admin
    return message, event


def _unknown_user(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    user = f"ghost_{time.monotonic_ns()}"
    message, event = _refused(ep, ep.conninfo(user, ep.token(user)))
    assert f'password authentication failed for user "{user}"' in message  # as RDS: 28P01
    assert event.reason is Reason.UNKNOWN_USER and event.method == "password"
    assert event.hint is not None and f'CREATE USER "{user}"' in event.hint
    assert f'GRANT rds_iam TO "{user}"' in event.hint
    return message, event


def _password_mismatch(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    user, _ = ep.password_user()
    message, event = _refused(ep, ep.conninfo(user, ep.token(user), dbname="postgres"))
    assert f'password authentication failed for user "{user}"' in message
    assert event.reason is Reason.PASSWORD_MISMATCH and event.method == "password"
    assert event.hint is not None and f'GRANT rds_iam TO "{user}"' in event.hint
    assert "28P01" in event.detail
    return message, event


def _no_such_database(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    user = ep.iam_user()  # allowed by its token, then refused by the server itself
    message, event = _refused(ep, ep.conninfo(user, ep.token(user), dbname="no_such_db"))
    assert 'database "no_such_db" does not exist' in message
    assert event.reason is Reason.BACKEND_REFUSED and event.method == "iam"
    assert "3D000" in event.detail
    return message, event


def _password_no_such_database(ep: RunningEndpoint) -> tuple[str, AuthEvent]:
    user, password = ep.password_user()
    message, event = _refused(ep, ep.conninfo(user, password, dbname="no_such_db"))
    assert 'database "no_such_db" does not exist' in message
    assert event.reason is Reason.BACKEND_REFUSED and event.method == "password"
    return message, event


PATHS: dict[str, Callable[[RunningEndpoint], tuple[str, AuthEvent]]] = {
    "bad_token": _bad_token, "tls_required": _tls_required, "capacity": _capacity,
    "replication": _replication, "not_iam_user": _not_iam_user, "admin": _admin,
    "unknown_user": _unknown_user, "password_mismatch": _password_mismatch,
    "iam_no_such_database": _no_such_database,
    "password_no_such_database": _password_no_such_database,
}


def test_every_failure_path_records_one_reason_and_releases_everything(endpoint) -> None:
    """Issue #11/#12 follow-up: each refusal has one event with a reason and a hint, and after
    each one the endpoint tracks nothing and holds no more fds or server sessions than before."""
    _warm_up(endpoint, endpoint.iam_user())
    sessions, fds = backend_sessions(endpoint), _fds()
    for name, path in PATHS.items():
        _, event = path(endpoint)
        assert event.reason is not None, name
        try:
            _wait_clean(endpoint, sessions, fds)
        except AssertionError as exc:
            raise AssertionError(f"after {name}: {exc}") from None
    user = endpoint.iam_user()  # and the endpoint still serves
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)


def test_force_ssl_refusal_of_a_password_user_has_a_hint(pg_server, ca, loop_thread) -> None:
    running = make_endpoint(pg_server, ca, loop_thread, PostgresEndpointSettings(force_ssl=True))
    try:
        user, password = running.password_user()
        message, event = _refused(running, running.conninfo(user, password, sslmode="disable"))
        assert "pg_hba.conf rejects connection" in message
        assert (event.reason, event.method) == (Reason.TLS_REQUIRED, "password")
        assert event.hint is not None and "sslmode=require" in event.hint
    finally:
        close_and_check(running)


def test_backend_down_is_recorded_as_backend_unavailable(pg_server, ca, loop_thread) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    running = make_endpoint(pg_server, ca, loop_thread, backend_port=dead_port)
    try:
        message, event = _refused(running, running.conninfo("someone", "x"))
        assert "the database system is not accepting connections" in message
        assert event.reason is Reason.BACKEND_UNAVAILABLE and event.db_user == "someone"
        assert "57P03" in event.detail and "cannot reach" in event.detail
    finally:
        close_and_check(running)
