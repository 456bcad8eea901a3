"""Issue #12 §6: a local server killed with ``kill -9`` is reaped (no zombie child), can be
restarted on the same port with its data, and new logins through the running endpoint work again
without restarting the emulator. Real processes, real kills, real drivers over loopback."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest

from rdsiam_emulator.backends import BackendError, BackendHandle, BackendSpec, start_local
from rdsiam_emulator.instances import EmulatedInstance, Emulator, InstanceConfig


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = Emulator(tmp_path_factory.mktemp("emulator"))
    yield emu
    emu.close()


@pytest.fixture(params=["postgres", "mysql"])
def killable(request: pytest.FixtureRequest,
             emulator: Emulator) -> Iterator[tuple[BackendHandle, EmulatedInstance]]:
    """A server of its own (the test kills it) behind an emulated instance."""
    engine = request.param
    handle = start_local(BackendSpec(engine=engine, provider="local", dbname="app"))
    instance = emulator.start_instance(
        InstanceConfig(instance_id=f"crash-{engine}", engine=engine), handle)
    try:
        yield handle, instance
    finally:
        instance.close()
        handle.stop()


def _master_login(handle: BackendHandle, instance: EmulatedInstance) -> object:
    """A password login of the master user through the endpoint; returns ``select 1``'s row."""
    if handle.engine == "postgres":
        with psycopg.connect(host="127.0.0.1", port=instance.port, user=handle.master_user,
                             password=handle.master_password, dbname="app",
                             sslmode="disable", connect_timeout=10) as conn:
            return conn.execute("select 1").fetchone()
    conn = pymysql.connect(host="127.0.0.1", port=instance.port, user=handle.master_user,
                           password=handle.master_password, database="app",
                           connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("select 1")
            return cur.fetchone()
    finally:
        conn.close()


def _state(pid: int) -> str | None:
    """The process state letter (Z: zombie), None once it is gone (reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while we read
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _wait_reaped(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (state := _state(pid)) is not None:
        assert time.monotonic() < deadline, f"pid {pid} was not reaped (state {state})"
        time.sleep(0.02)


def test_killed_server_is_reaped_and_restarts_with_its_data(killable) -> None:
    handle, instance = killable
    assert _master_login(handle, instance) == (1,)
    handle.admin_execute("CREATE TABLE kept (x int)", dbname="app")
    handle.admin_execute("INSERT INTO kept VALUES (42)", dbname="app")

    instance.restart_backend()  # a healthy server restarts too
    assert _master_login(handle, instance) == (1,)

    pid = handle.server_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _wait_reaped(pid)
    with pytest.raises((psycopg.OperationalError, pymysql.err.OperationalError)):
        _master_login(handle, instance)

    instance.restart_backend()
    assert handle.server_pid != pid
    assert _master_login(handle, instance) == (1,)
    assert handle.admin_execute("SELECT x FROM kept", dbname="app") == [(42,)]


def test_restart_is_refused_for_a_stopped_server(emulator) -> None:
    handle = start_local(BackendSpec(engine="postgres", provider="local", dbname="app"))
    handle.stop()
    with pytest.raises(BackendError, match="only a running local server"):
        handle.restart()
