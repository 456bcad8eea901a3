# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""Canary (issue #12 items 3-4): a valid IAM login every 200 ms for a bounded time while hostile
clients run against the same endpoint — more silent sockets than the server has connections,
clients silent after TLS, failed logins in a loop and bursts of refused logins. Zero canary
failures, and afterwards nothing is left tracked or open. Real MariaDB, loopback only."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pymysql
import pytest
from mysql_env import _make_env, emulator_ca, mariadb, unique  # noqa: F401
from test_mysql_lifecycle import (
    connect,
    fd_count,
    make_user,
    read_packet,
    settle,
    tls_client,
)

from rdsiam_emulator.endpoint.mysql import MysqlEndpointSettings

DURATION = 8.0
PERIOD = 0.2
SILENT = 200
HALF_OPEN_TLS = 30
BURST = 20


@pytest.fixture
def canary_env(mariadb, emulator_ca):
    yield from _make_env(mariadb, emulator_ca, settings=MysqlEndpointSettings())


def test_canary_logins_survive_hostile_clients(canary_env, mariadb):
    env = canary_env
    user = make_user(env)
    with connect(env, user, env.token(user)):  # warm up (admin connection, catalog)
        pass
    baseline = fd_count()
    with pymysql.connect(**mariadb.address_kwargs(), user=mariadb.admin_user,
                         password=mariadb.admin_password) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@max_connections")
        (max_connections,) = cur.fetchone()
    assert max_connections < SILENT + HALF_OPEN_TLS  # more than the server could hold

    stop = threading.Event()
    refused = {"failed_logins": 0, "burst": 0}
    canary_failures: list[str] = []
    attempts = 0

    def canary() -> None:
        nonlocal attempts
        deadline = time.monotonic() + DURATION
        while time.monotonic() < deadline:
            started = time.monotonic()
            attempts += 1
            try:
                with connect(env, user, env.token(user)) as conn:
                    assert conn.cursor().execute("SELECT 1") == 1
            except Exception as exc:  # every failure counts, whatever its kind
                canary_failures.append(f"{time.monotonic() - started:.2f}s: {exc!r}")
            time.sleep(max(0.0, PERIOD - (time.monotonic() - started)))

    def bad_login(password: str) -> bool:
        try:
            connect(env, user, password).close()
        except pymysql.err.OperationalError:
            return True
        return False

    def failed_logins() -> None:
        while not stop.is_set():
            refused["failed_logins"] += bad_login("not-a-token")

    def bursts() -> None:
        with ThreadPoolExecutor(BURST) as pool:
            while not stop.wait(1.0):
                refused["burst"] += sum(pool.map(bad_login, ["x"] * BURST))

    silent = [socket.create_connection(("127.0.0.1", env.port), timeout=10)
              for _ in range(SILENT)]
    half_open = []
    try:
        for s in silent:
            assert read_packet(s) is not None  # each was greeted and is now pending
        half_open = [tls_client(env) for _ in range(HALF_OPEN_TLS)]
        hostile = [threading.Thread(target=failed_logins), threading.Thread(target=bursts)]
        for t in hostile:
            t.start()
        canary()
        stop.set()
        for t in hostile:
            t.join(30)
    finally:
        stop.set()
        for s in [*silent, *half_open]:
            s.close()
    assert canary_failures == [], canary_failures
    assert attempts >= 20
    assert refused["failed_logins"] > 0 and refused["burst"] >= BURST
    settle(env, baseline, "the hostile clients left", timeout=20)
