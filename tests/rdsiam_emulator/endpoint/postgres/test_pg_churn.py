"""Connection churn leaves nothing behind, and an idle TLS connection holds no large buffer
(issue #16), on both event loops the endpoint supports. Real PostgreSQL 15, psycopg over
verified TLS with IAM tokens, loopback only.

RSS itself is measured by bench/bench_churn.py (it is too noisy for a timed test); here the
endpoint's own state is checked: open fds, tracked connections and tasks, loop tasks and live
connection/TLS objects return to their baseline after every round, and Python-level memory per
idle connection (tracemalloc) stays far below the 256 KiB read buffer every connection had while
the loop's SSL protocol did TLS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import ssl
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pg_env import LoopThread, PgServer, RunningEndpoint, close_and_check, make_endpoint

from rdsiam_emulator.endpoint import relay
from rdsiam_emulator.endpoint.event_loops import new_event_loop
from rdsiam_emulator.tls import EmulatorCA

ROUNDS, PER_ROUND, AT_ONCE = 3, 100, 10
IDLE = 20


@pytest.fixture(params=["asyncio", "uvloop"])
def churn_endpoint(request: pytest.FixtureRequest, pg_server: PgServer,
                   ca: EmulatorCA) -> Iterator[RunningEndpoint]:
    lt = LoopThread(new_event_loop(request.param))
    running = make_endpoint(pg_server, ca, lt)
    try:
        yield running
    finally:
        try:
            close_and_check(running)
        finally:
            lt.stop()


def _live_objects() -> dict[str, int]:
    """Connection and TLS objects still alive anywhere in the process (after a collection)."""
    gc.collect()
    kinds = {"RelayConnection": relay.RelayConnection, "TlsTransport": relay.TlsTransport,
             "SSLObject": ssl.SSLObject}
    counts = dict.fromkeys(kinds, 0)
    for obj in gc.get_objects():
        for name, kind in kinds.items():
            if isinstance(obj, kind):
                counts[name] += 1
    return counts


def _state(ep: RunningEndpoint) -> dict[str, Any]:
    async def loop_tasks() -> int:
        return len(asyncio.all_tasks()) - 1  # this coroutine's own task

    return {"fds": len(os.listdir("/proc/self/fd")),
            "endpoint_tasks": ep.endpoint.active_tasks,
            "endpoint_connections": ep.endpoint.active_connections,
            "loop_tasks": ep.loop.run(loop_tasks()), **_live_objects()}


def _settled(ep: RunningEndpoint, want: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """The state once it equals ``want``, or the last one seen after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        state = _state(ep)
        if state == want or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def _login(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_churn_returns_fds_tasks_and_objects(churn_endpoint: RunningEndpoint) -> None:
    ep = churn_endpoint
    user = ep.iam_user("churn")
    conninfo = ep.conninfo(user, ep.token(user))
    _login(conninfo)  # first login: the admin session and caches the endpoint keeps
    baseline = _settled(ep, {})
    assert baseline["endpoint_connections"] == 0 and baseline["RelayConnection"] <= 1
    mark = ep.events.mark()
    for n in range(1, ROUNDS + 1):
        with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
            list(pool.map(lambda _: _login(conninfo), range(PER_ROUND)))
        assert _settled(ep, baseline) == baseline, f"after round {n}"
    events = ep.events.since(mark)
    assert len(events) == ROUNDS * PER_ROUND
    assert all(e.outcome == "allow" and e.method == "iam" and e.tls for e in events)


def test_idle_tls_connection_holds_no_large_buffer(churn_endpoint: RunningEndpoint) -> None:
    ep = churn_endpoint
    user = ep.iam_user("idle")
    conninfo = ep.conninfo(user, ep.token(user))
    _login(conninfo)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        conns = [psycopg.connect(conninfo, autocommit=True) for _ in range(IDLE)]
        try:
            for conn in conns:
                assert conn.execute("select 1").fetchone() == (1,)
            gc.collect()
            per_connection = (tracemalloc.get_traced_memory()[0] - before) / IDLE
        finally:
            for conn in conns:
                conn.close()
    finally:
        tracemalloc.stop()
    # client and endpoint sides together, both in this process; the loop's SSL protocol alone
    # held 256 KiB per connection
    assert per_connection < 64 * 1024, f"{per_connection / 1024:.0f} KiB per idle connection"
