# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""Connection churn leaves nothing behind, and an idle TLS connection holds no large buffer
(issue #16), on both event loops the endpoint supports. Real MariaDB, PyMySQL over verified TLS
with IAM tokens (``mysql_clear_password``), loopback only.

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

import pymysql
import pytest
from mysql_env import MyEnv, _make_env, emulator_ca, mariadb, unique  # noqa: F401

from rdsiam_emulator.endpoint import relay

ROUNDS, PER_ROUND, AT_ONCE = 3, 100, 10
IDLE = 20


@pytest.fixture(params=["asyncio", "uvloop"])
def churn_env(request: pytest.FixtureRequest, mariadb: Any,
              emulator_ca: Any) -> Iterator[MyEnv]:
    yield from _make_env(mariadb, emulator_ca, uvloop=request.param == "uvloop")


def _iam_user(env: MyEnv) -> tuple[str, str]:
    user = unique("churn")
    with pymysql.connect(host="localhost", port=env.port, user=env.master[0],
                         password=env.master[1], ssl={"ca": env.ca_file}) as conn, \
            conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    return user, env.token(user)


def _connect(env: MyEnv, user: str, token: str) -> pymysql.Connection[Any]:
    return pymysql.connect(host="localhost", port=env.port, user=user, password=token,
                           ssl={"ca": env.ca_file}, connect_timeout=10)


def _login(env: MyEnv, user: str, token: str) -> None:
    with _connect(env, user, token) as conn, conn.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchone() == (1,)


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


def _state(env: MyEnv) -> dict[str, Any]:
    async def loop_tasks() -> int:
        return len(asyncio.all_tasks()) - 1  # this coroutine's own task

    return {"fds": len(os.listdir("/proc/self/fd")),
            "endpoint_tasks": env.endpoint.active_tasks,
            "endpoint_connections": env.endpoint.active_connections,
            "loop_tasks": env.loop.run(loop_tasks()) - 1,  # the endpoint's accept loop
            **_live_objects()}


def _settled(env: MyEnv, want: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """The state once it equals ``want``, or the last one seen after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        state = _state(env)
        if state == want or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def test_churn_returns_fds_tasks_and_objects(churn_env: MyEnv) -> None:
    env = churn_env
    user, token = _iam_user(env)
    _login(env, user, token)  # first login: the admin session and caches the endpoint keeps
    baseline = _settled(env, {})
    assert baseline["endpoint_connections"] == 0 and baseline["loop_tasks"] == 0
    mark = env.events.mark()
    for n in range(1, ROUNDS + 1):
        with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
            list(pool.map(lambda _: _login(env, user, token), range(PER_ROUND)))
        assert _settled(env, baseline) == baseline, f"after round {n}"
    events = env.events.since(mark)
    assert len(events) == ROUNDS * PER_ROUND
    assert all(e.outcome == "allow" and e.method == "iam" and e.tls for e in events)


def test_idle_tls_connection_holds_no_large_buffer(churn_env: MyEnv) -> None:
    env = churn_env
    user, token = _iam_user(env)
    _login(env, user, token)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        conns = [_connect(env, user, token) for _ in range(IDLE)]
        try:
            for conn in conns:
                with conn.cursor() as cur:
                    cur.execute("select 1")
                    assert cur.fetchone() == (1,)
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
