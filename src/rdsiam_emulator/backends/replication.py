"""Real replicas for emulated Aurora clusters (docs/aurora.md): local PostgreSQL streaming
replication and MariaDB GTID replication, replay waits and switch-over.

A PostgreSQL reader is ``pg_basebackup -R`` of the writer (started with
``start_local_postgres(spec, replication=True)``), run as the same unprivileged account, streaming
as the hidden admin through the writer's private socket (peer authentication; no TCP). It is a hot
standby: a write fails with the engine's own read-only error (SQLSTATE 25006). Its roles, passwords
and databases are the writer's, so its handle is never bootstrapped.

A MariaDB reader starts from the same prepared data directory as its writer, unbootstrapped, and
replays the writer's whole binary log (``MASTER_USE_GTID=slave_pos`` from an empty position), the
writer's bootstrap included: its accounts, passwords and catalog are the writer's. Replication
needs TCP, so every member of a MariaDB cluster also listens on 127.0.0.1 (password logins only;
docs/aurora.md). Readers run ``read_only``: a client's write fails with error 1290.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import BackendError, BackendUnavailable
from .handle import BackendHandle
from .local_mysql import start_local_mysql
from .local_postgres import (
    REPLICATION_SETTINGS,
    _binary_version,
    _start,
    _write_hba,
    find_bindir,
    start_local_postgres,
)
from .mysql_handle import MysqlHandle
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
    """Whether ``handle``'s server is a replica (PostgreSQL: in recovery; MariaDB: read_only)."""
    if isinstance(handle, MysqlHandle):
        rows = handle.admin_execute("SELECT @@global.read_only")
    else:
        rows = handle.admin_execute("SELECT pg_is_in_recovery()")
    return bool(rows and rows[0][0])


def wait_for_replay(writer: BackendHandle, reader: BackendHandle,
                    timeout: float = REPLAY_TIMEOUT) -> float:
    """Block until ``reader`` has replayed everything ``writer`` had written when called; returns
    the seconds waited. Raises ``BackendError`` after ``timeout`` seconds."""
    start = time.monotonic()
    if isinstance(writer, MysqlHandle):
        [(pos,)] = writer.admin_execute("SELECT @@global.gtid_binlog_pos")
        wanted = _gtids(str(pos))
        while True:
            # not MASTER_GTID_WAIT: it compares with the reader's slave position, which lacks
            # what the reader wrote itself while it was the writer (every member logs what it
            # replays, so its binlog state has both)
            [(state,)] = reader.admin_execute("SELECT @@global.gtid_binlog_state")
            have = _gtids(str(state))
            if all(have.get(key, -1) >= seq for key, seq in wanted.items()):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise BackendError(f"{reader!r} did not replay GTID {pos} within {timeout} s")
            time.sleep(0.01)
    [(lsn,)] = writer.admin_execute("SELECT pg_current_wal_insert_lsn()::text")
    while True:
        [(done,)] = reader.admin_execute(
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
        if done:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise BackendError(f"{reader!r} did not replay {lsn} within {timeout} s")
        time.sleep(0.01)


def _gtids(position: str) -> dict[tuple[int, int], int]:
    """A MariaDB GTID list (``0-1-5,1-2-7``) → {(domain, server id): sequence number}."""
    found: dict[tuple[int, int], int] = {}
    for gtid in filter(None, (p.strip() for p in position.split(","))):
        domain, server, seq = (int(x) for x in gtid.split("-"))
        found[(domain, server)] = max(seq, found.get((domain, server), -1))
    return found


def answers(handle: BackendHandle) -> bool:
    """Whether ``handle``'s server runs (local process, when known) and answers its admin."""
    if not handle.server_running:
        return False
    try:
        handle.admin_execute("SELECT 1")
    except BackendError:
        return False
    return True


def promote(reader: BackendHandle, timeout: float = 30.0) -> None:
    """Make PostgreSQL ``reader`` a writer (``pg_promote``), waiting up to ``timeout`` seconds.

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


def cut_sessions(handle: BackendHandle) -> int:
    """End every client session on ``handle``'s server (not the emulator's admin sessions nor
    replication): Aurora drops the connections of the members that change roles at failover.
    Returns how many were ended; raises ``BackendError`` when the server does not answer."""
    if isinstance(handle, MysqlHandle):
        rows = handle.admin_execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND USER NOT IN (%s, %s, 'system user', 'event_scheduler', 'unauthenticated user')",
            [handle.admin_user, REPLICATION_USER])
        for (session,) in rows:
            with contextlib.suppress(BackendError):  # it may have ended on its own meanwhile
                handle.admin_execute(f"KILL CONNECTION {int(session)}")
        return len(rows)
    rows = handle.admin_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = "
        "'client backend' AND pid <> pg_backend_pid() AND usename IS DISTINCT FROM %s",
        [handle.admin_user])
    return len(rows)


def switch_over(old_writer: BackendHandle, new_writer: BackendHandle,
                others: tuple[BackendHandle, ...] = (),
                on_promoted: Callable[[], None] | None = None) -> None:
    """Aurora's failover for local members of one cluster started here: ``new_writer`` (a
    reader) becomes the writer, ``old_writer`` a replica of it, and the ``others`` (the remaining
    readers) replicate from it.

    PostgreSQL: fast shutdown of ``old_writer`` (which streams its last WAL to the standbys),
    ``pg_promote`` of ``new_writer``, ``old_writer`` restarted as a hot standby of it. MariaDB:
    ``old_writer`` goes read-only, ``new_writer`` catches up, stops replicating and goes
    read-write, the others follow it by GTID.

    A dead ``old_writer`` (the case failover exists for) is not waited for: ``new_writer`` is
    promoted with what it has replayed; a dead MariaDB old writer is left stopped (a PostgreSQL
    one is restarted as a standby).

    ``on_promoted`` runs as soon as ``new_writer`` takes writes (before the old writer is
    restarted or repointed: the caller switches its routing there); then the sessions opened on
    the two servers before it are cut (``cut_sessions``).

    Raises ``BackendError`` when a step fails; when ``new_writer`` does not answer, before
    anything is changed (the old writer keeps writing)."""
    if not answers(new_writer):
        raise BackendError(f"{new_writer!r} does not answer: it cannot be promoted (the writer "
                           f"is left as it was)")
    if isinstance(old_writer, MysqlHandle):
        _switch_over_mariadb(old_writer, new_writer, others, on_promoted)
        return
    process = old_writer._process
    if process is None or old_writer.unix_socket is None or new_writer.unix_socket is None:
        raise BackendError("switch-over needs local servers of one cluster")
    old_writer._close_admin()
    process.stop()  # its sessions end with it
    promote(new_writer)
    if on_promoted is not None:
        on_promoted()
    cut_sessions(new_writer)  # its read sessions must not turn into write sessions
    conninfo = (f"host={new_writer.unix_socket} port={new_writer.port} "
                f"user={new_writer.admin_user} application_name=rdsiam")
    data = Path(old_writer.unix_socket).parent / "data"
    signal_file = data / "standby.signal"
    signal_file.touch()
    with open(data / "postgresql.auto.conf", "a") as conf:  # a later line wins
        conf.write(f"primary_conninfo = '{conninfo}'\n")
    stat = data.stat()
    if os.geteuid() == 0:
        os.chown(signal_file, stat.st_uid, stat.st_gid)
    process.restart()
    for other in others:  # they followed the old writer: point them at the new one
        if not answers(other):
            continue  # a dead reader keeps its old source; it cannot be told now
        other.admin_execute(f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
        other.admin_execute("SELECT pg_reload_conf()")


# ------------------------------------------------------------------------------------- MariaDB

REPLICATION_USER = "rdsrepl"
_links: weakref.WeakKeyDictionary[BackendHandle, str] = weakref.WeakKeyDictionary()
"""A MariaDB cluster member → the replication account's password (the same on every member)."""


def _mariadb_args(server_id: int, read_only: bool) -> tuple[str, ...]:
    return ("--log-bin=rdsiam-bin", "--log-slave-updates=ON", "--binlog-format=ROW",
            f"--server-id={server_id}", *(("--read-only=ON",) if read_only else ()))


def start_local_mariadb_cluster(spec: BackendSpec,
                                readers: int = 1) -> tuple[MysqlHandle, list[MysqlHandle]]:
    """A MariaDB writer and ``readers`` GTID replicas of it (local binaries); the caller stops
    them all. Raises ``BackendUnavailable`` (no MariaDB: MySQL's replication syntax differs and
    is not done) or ``BackendError`` (what started is stopped again)."""
    if readers < 0:
        raise ValueError(f"readers must be 0 or more, not {readers}")
    tcp = replace(spec, listen_tcp=True)
    writer = start_local_mysql(tcp, extra_args=_mariadb_args(1, False))
    assert isinstance(writer, MysqlHandle)
    started: list[MysqlHandle] = []
    try:
        if writer.flavour != "mariadb":
            raise BackendUnavailable("MySQL-engine clusters need MariaDB (MySQL's replication "
                                     "statements are not done)")
        password = secrets.token_urlsafe(24)
        writer.admin_execute(f"CREATE USER '{REPLICATION_USER}'@'127.0.0.1' IDENTIFIED BY %s",
                             [password])
        writer.admin_execute(f"GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'127.0.0.1'")
        _links[writer] = password
        for i in range(readers):
            started.append(_start_mariadb_replica(tcp, writer, password, server_id=i + 2))
    except BaseException:
        for handle in (*started, writer):
            handle.stop()
        raise
    return writer, started


def _start_mariadb_replica(spec: BackendSpec, writer: MysqlHandle, password: str, *,
                           server_id: int) -> MysqlHandle:
    import pymysql

    reader = start_local_mysql(spec, extra_args=_mariadb_args(server_id, True), bootstrap=False)
    assert isinstance(reader, MysqlHandle)
    try:
        # the prepared data directory's root has no password yet; the replayed bootstrap gives
        # it the writer's admin password (this session stays logged in)
        conn = pymysql.connect(unix_socket=reader.unix_socket, user="root", password="")
        try:
            with conn.cursor() as cur:
                _follow(cur, writer, password, "slave_pos")
                [pos] = writer.admin_execute("SELECT @@global.gtid_binlog_pos")[0]
                cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", [pos, REPLAY_TIMEOUT * 3])
                [res] = cur.fetchone() or [-1]
                if res != 0:
                    raise BackendError(f"the replica did not replay its writer's bootstrap: {res}")
        finally:
            conn.close()
    except BaseException:
        reader.stop()
        raise
    for name in ("admin_password", "master_user", "master_password", "dbname", "version",
                 "flavour"):
        setattr(reader, name, getattr(writer, name))
    reader.catalog_version = writer.catalog_version  # one catalog: endpoints reload together
    _links[reader] = password
    return reader


def _follow(cur: Any, writer: BackendHandle, password: str, gtid: str) -> None:
    cur.execute("STOP SLAVE")
    cur.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={int(writer.port)}, "
                f"MASTER_USER='{REPLICATION_USER}', MASTER_PASSWORD=%s, "
                f"MASTER_USE_GTID={gtid}, MASTER_CONNECT_RETRY=1", [password])
    cur.execute("START SLAVE")


def _switch_over_mariadb(old: MysqlHandle, new: BackendHandle,
                         others: tuple[BackendHandle, ...],
                         on_promoted: Callable[[], None] | None) -> None:
    password = _links.get(old)
    if password is None or not isinstance(new, MysqlHandle):
        raise BackendError("switch-over needs MariaDB members of one cluster started here")
    old_alive = answers(old)
    if old_alive:
        old.admin_execute("SET GLOBAL read_only = ON")
        wait_for_replay(old, new)
    new.admin_execute("STOP SLAVE")
    new.admin_execute("RESET SLAVE ALL")
    new.admin_execute("SET GLOBAL read_only = OFF")
    if on_promoted is not None:
        on_promoted()
    cut_sessions(new)
    if old_alive:
        cut_sessions(old)
    # the old writer never replicated: its own binary log is its position (current_pos)
    followers = ((old, "current_pos"),) if old_alive else ()
    for handle, gtid in (*followers, *((o, "slave_pos") for o in others if answers(o))):
        if not isinstance(handle, MysqlHandle):
            raise BackendError(f"{handle!r} is not a member of this MariaDB cluster")
        with handle.admin_connection().cursor() as cur:
            _follow(cur, new, password, gtid)


def start_local_mariadb_replica(spec: BackendSpec, writer: MysqlHandle, server_id: int
                                ) -> MysqlHandle:
    """A further GTID replica of ``writer`` (made by ``start_local_mariadb_cluster``) with the
    unique ``server_id``: a reader added to a running cluster. Raises ``BackendError``."""
    password = _links.get(writer)
    if password is None:
        raise BackendError(f"{writer!r} is not the writer of a MariaDB cluster started here")
    return _start_mariadb_replica(replace(spec, listen_tcp=True), writer, password,
                                  server_id=server_id)
