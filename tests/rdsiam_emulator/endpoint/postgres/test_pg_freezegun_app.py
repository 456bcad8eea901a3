"""The in-process endpoint when the app uses freezegun's *default* freeze_time (no
``real_asyncio=True``): token checks and the handshake timeout keep real time on both loops
(found by a break-it review: asyncio's loop read the app's frozen time.monotonic)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from freezegun import freeze_time

from rdsiam_emulator.reasons import Reason


def test_expired_token_refused_under_default_freeze_time(endpoint) -> None:
    user = endpoint.iam_user()
    signed = datetime.now(UTC) - timedelta(minutes=16)
    with freeze_time(signed):
        token = endpoint.token(user)
        with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
            psycopg.connect(endpoint.conninfo(user, token), connect_timeout=20)
    event = endpoint.events.all()[-1]
    assert (event.db_user, event.reason) == (user, Reason.EXPIRED)


def test_fresh_token_login_works_under_default_freeze_time(endpoint) -> None:
    user = endpoint.iam_user()
    with freeze_time(datetime.now(UTC)):
        token = endpoint.token(user)
        with psycopg.connect(endpoint.conninfo(user, token), connect_timeout=20) as conn:
            assert conn.execute("select session_user").fetchone() == (user,)


@pytest.mark.parametrize("frozen", [False, True], ids=["real-clock", "freeze_time"])
def test_handshake_timeout_fires_under_default_freeze_time(pg_server, ca, loop_thread,
                                                          frozen: bool) -> None:
    """A client that sends nothing after connecting is dropped after handshake_timeout (2 s
    here). Under the app's freeze_time the endpoint's asyncio loop reads freezegun's frozen
    time.monotonic, so the timeout never fires: the connection (and its task) stay forever."""
    import contextlib

    from freezegun.api import real_monotonic
    from pg_env import close_and_check, make_endpoint

    from rdsiam_emulator.endpoint.postgres import PostgresEndpointSettings

    running = make_endpoint(pg_server, ca, loop_thread,
                            settings=PostgresEndpointSettings(handshake_timeout=2.0))
    try:
        with freeze_time(datetime.now(UTC)) if frozen else contextlib.nullcontext():
            s = socket.create_connection(("127.0.0.1", running.port))
            s.settimeout(15)
            t0 = real_monotonic()
            try:
                data: bytes | None = s.recv(10)
            except TimeoutError:
                data = None
            waited = real_monotonic() - t0
            s.close()
        assert data == b"", f"not dropped after {waited:.1f} s (handshake_timeout 2 s)"
    finally:
        close_and_check(running)


@pytest.mark.parametrize("frozen", [True], ids=["freeze_time"])
def test_handshake_timeout_under_freeze_time_on_uvloop(pg_server, ca, frozen: bool) -> None:
    """Control: the same on uvloop (the product's default when installed)."""
    uvloop = pytest.importorskip("uvloop")
    from pg_env import LoopThread

    loop_thread = LoopThread(uvloop.new_event_loop())
    try:
        test_handshake_timeout_fires_under_default_freeze_time(pg_server, ca, loop_thread, frozen)
    finally:
        loop_thread.stop()
