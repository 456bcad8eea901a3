"""Real replicas for emulated Aurora clusters (docs/aurora.md): local PostgreSQL streaming
replication, replay waits and promotion.

A PostgreSQL reader is ``pg_basebackup -R`` of the writer (started with
``start_local_postgres(spec, replication=True)``), run as the same unprivileged account, streaming
as the hidden admin through the writer's private socket (peer authentication; no TCP). It is a hot
standby: a write fails with the engine's own read-only error (SQLSTATE 25006). Its roles, passwords
and databases are the writer's, so its handle is never bootstrapped.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from .errors import BackendError
from .handle import BackendHandle
from .local_postgres import (
    REPLICATION_SETTINGS,
    _binary_version,
    _start,
    _write_hba,
    find_bindir,
    start_local_postgres,
)
from .postgres_handle import ADMIN_DB, PostgresHandle
from .procs import ServerProcess, chown_tree, private_workdir, run_as, run_checked
from .spec import BackendSpec

REPLAY_TIMEOUT = 10.0
"""Seconds ``wait_for_replay`` waits by default."""


def start_local_postgres_replica(writer: PostgresHandle) -> PostgresHandle:
    """A hot standby of ``writer`` (a local server started with ``replication=True``), streaming
    from it through its private socket. Blocks until the standby accepts connections.

    Raises ``BackendError`` when ``writer`` is not a local socket server or the copy or start
    fails.
    """
    if writer.unix_socket is None or writer.provider != "local":
        raise BackendError(f"{writer!r}: replicas are made of local servers only")
    bindir = find_bindir(writer.version.split(".")[0] or None)
    who = run_as()
    work = private_workdir("rdsiam-pgr-")
    try:
        (work / "sock").mkdir()
        _write_hba(work, who)
        chown_tree(work, who)
        os.chmod(work, 0o700)
        run_checked([str(bindir / "pg_basebackup"), "-D", str(work / "data"), "-h",
                     writer.unix_socket, "-p", str(writer.port), "-U", writer.admin_user, "-R",
                     "-X", "stream", "-c", "fast", "--no-sync", "-w"], who, timeout=120)
        proc, port = _start(bindir, who, work, settings=REPLICATION_SETTINGS)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    process = ServerProcess(
        proc, lambda: _start(bindir, who, work, port, settings=REPLICATION_SETTINGS)[0],
        stop_signal=2)

    def stopper() -> None:
        try:
            process.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    sock = str(work / "sock")
    return PostgresHandle(
        flavour="postgresql", version=_binary_version(bindir), host=sock, port=port,
        admin_user=writer.admin_user, admin_password=writer.admin_password,
        master_user=writer.master_user, master_password=writer.master_password,
        dbname=writer.dbname, provider="local", stopper=stopper, process=process,
        unix_socket=sock, tcp=False,
        bootstrap_connect={"host": sock, "port": port, "user": writer.admin_user,
                           "dbname": ADMIN_DB},
        admin_host=sock,
    )


def is_replica(handle: BackendHandle) -> bool:
    """Whether ``handle``'s server is replaying another (PostgreSQL: in recovery)."""
    rows = handle.admin_execute("SELECT pg_is_in_recovery()")
    return bool(rows and rows[0][0])


def wait_for_replay(writer: BackendHandle, reader: BackendHandle,
                    timeout: float = REPLAY_TIMEOUT) -> float:
    """Block until ``reader`` has replayed everything ``writer`` had written when called; returns
    the seconds waited. Raises ``BackendError`` after ``timeout`` seconds."""
    start = time.monotonic()
    [(lsn,)] = writer.admin_execute("SELECT pg_current_wal_insert_lsn()::text")
    while True:
        [(done,)] = reader.admin_execute(
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
        if done:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise BackendError(f"{reader!r} did not replay {lsn} within {timeout} s")
        time.sleep(0.01)


def promote(reader: BackendHandle, timeout: float = 30.0) -> None:
    """Make ``reader`` a writer (``pg_promote``), waiting up to ``timeout`` seconds.

    Raises ``BackendError`` when it does not finish."""
    [(ok,)] = reader.admin_execute("SELECT pg_promote(true, %s)", [int(timeout)])
    if not ok:
        raise BackendError(f"{reader!r} was not promoted within {timeout} s")


def start_local_postgres_cluster(spec: BackendSpec,
                                 readers: int = 1) -> tuple[PostgresHandle, list[PostgresHandle]]:
    """A writer (``start_local_postgres(spec, replication=True)``) and ``readers`` hot standbys of
    it; the caller stops them all. Raises ``BackendUnavailable``/``BackendError`` (what started
    is stopped again)."""
    if readers < 0:
        raise ValueError(f"readers must be 0 or more, not {readers}")
    writer = start_local_postgres(spec, replication=True)
    assert isinstance(writer, PostgresHandle)
    started: list[PostgresHandle] = []
    try:
        for _ in range(readers):
            started.append(start_local_postgres_replica(writer))
    except BaseException:
        for handle in (*started, writer):
            handle.stop()
        raise
    return writer, started


def switch_over(old_writer: BackendHandle, new_writer: BackendHandle) -> None:
    """Aurora's failover for local PostgreSQL members: stop ``old_writer`` (fast shutdown, which
    streams its last WAL to the standbys), promote ``new_writer``, then restart ``old_writer``
    as a hot standby of it. Both must be servers of one cluster started here.

    Raises ``BackendError`` when a step fails (the old writer may then stay stopped)."""
    process = old_writer._process
    if process is None or old_writer.unix_socket is None or new_writer.unix_socket is None:
        raise BackendError("switch-over needs local servers of one cluster")
    old_writer._close_admin()
    process.stop()
    promote(new_writer)
    data = Path(old_writer.unix_socket).parent / "data"
    signal_file = data / "standby.signal"
    signal_file.touch()
    with open(data / "postgresql.auto.conf", "a") as conf:  # a later line wins
        conf.write(f"primary_conninfo = 'host={new_writer.unix_socket} port={new_writer.port} "
                   f"user={new_writer.admin_user} application_name=rdsiam'\n")
    stat = data.stat()
    if os.geteuid() == 0:
        os.chown(signal_file, stat.st_uid, stat.st_gid)
    process.restart()
