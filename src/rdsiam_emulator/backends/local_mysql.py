"""Local MariaDB (``mariadb-install-db`` + ``mariadbd``) or MySQL (``mysqld --initialize-insecure``)
in a private temp directory: a private unix socket only (``--skip-networking``) unless the spec
asks for ``listen_tcp`` (then also TCP on 127.0.0.1), test-speed settings.

As root the server runs as the same unprivileged account as PostgreSQL (procs.run_as: ``nobody`` by
default) instead of ``--user=mysql``/``--user=root``: one rule for both engines, and the private
directory belongs to nobody else. ``--no-defaults`` keeps /etc/mysql out of the picture. The
prepared data directory has root@localhost with an empty password; it is reachable only through the
private socket, and bootstrap gives root the admin's random password at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .datadir_cache import cache_key, copy_tree, golden_dir
from .errors import BackendError, BackendUnavailable
from .handle import BackendHandle
from .mysql_handle import MysqlHandle
from .ports import free_port
from .procs import (
    RunAs,
    ServerProcess,
    chown_tree,
    private_workdir,
    run_as,
    run_checked,
    spawn,
    terminate,
)
from .spec import ADMIN_USER, BackendSpec

MYSQLD_ENV = "RDSIAM_MYSQLD"
START_TIMEOUT = 60.0
BIND_ATTEMPTS = 5

#: Settings both at preparation and at every start (InnoDB files must agree).
MARIADB_INNODB = [
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--innodb-use-native-aio=0",
]
#: Test speed, not durability. Documented in docs/backends.md.
MARIADB_FAST = [
    "--skip-log-bin",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--sync-binlog=0",
    "--performance-schema=OFF",
    "--skip-name-resolve",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    "--max-connections=200",
]
MYSQL_FAST = [
    "--skip-log-bin",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=OFF",
    "--performance-schema=OFF",
    "--skip-name-resolve",
    "--mysqlx=OFF",
    "--innodb-buffer-pool-size=32M",
]


def find_server() -> tuple[Path, str]:
    """The server binary and its flavour ("mariadb" or "mysql")."""
    names = [os.environ[MYSQLD_ENV]] if os.environ.get(MYSQLD_ENV) else ["mariadbd", "mysqld"]
    for name in names:
        path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin")
        if path:
            out = subprocess.run(
                [path, "--version"], capture_output=True, text=True, check=False
            ).stdout
            return Path(path), ("mariadb" if "mariadb" in out.lower() else "mysql")
    given = os.environ.get(MYSQLD_ENV)
    if given:  # the user named a binary: say that one is missing, not "set the variable"
        raise BackendUnavailable(
            f"${MYSQLD_ENV} is set to {given!r}, which is not an executable file: point it at "
            "the mariadbd/mysqld binary, or unset it to look for mariadbd/mysqld on PATH"
        )
    raise BackendUnavailable(
        "no MariaDB/MySQL server binary (mariadbd, mysqld) found: "
        f"apt-get install mariadb-server, or set ${MYSQLD_ENV} to the server binary"
    )


@functools.cache
def _server_version(server: Path) -> str:
    out = subprocess.run(
        [str(server), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Ver\s+(\S+)", out)
    return match.group(1) if match else out.strip()


def start_local_mysql(spec: BackendSpec, *, extra_args: Sequence[str] = (),
                      bootstrap: bool = True) -> BackendHandle:
    """Start a private MariaDB/MySQL server from this machine's binaries and return its handle.

    Runs as an unprivileged account (see ``run_as``) on a copy of a cached prepared data
    directory; without ``spec.listen_tcp`` it listens on a unix socket only. Only
    ``root@localhost`` (the socket) remains as a root account. ``extra_args``: further server
    options (an Aurora cluster's binary log, server id); without ``bootstrap`` the prepared data
    directory is left as it is (a replica that replays its writer's bootstrap). Raises
    ``BackendUnavailable`` when no server binary is found, ``BackendError`` when it does not start
    or bootstrap.
    """
    server, flavour = find_server()
    who = run_as()
    golden = _golden(server, flavour, who)
    work = private_workdir("rdsiam-my-")
    try:
        copy_tree(golden, work / "data")
        (work / "tmp").mkdir()
        chown_tree(work, who)
        os.chmod(work, 0o700)
        proc, port = _start(server, flavour, who, work, tcp=spec.listen_tcp, extra=extra_args)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    # SIGKILL: throw-away data, no need for a clean InnoDB shutdown (a restart recovers it);
    # a restart reuses the port and data
    process = ServerProcess(
        proc, lambda: _start(server, flavour, who, work, port, tcp=spec.listen_tcp,
                             extra=extra_args)[0],
        stop_signal=9)

    def stopper() -> None:
        try:
            process.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    sock = str(work / "mysqld.sock")
    admin_password = secrets.token_urlsafe(24)
    handle = MysqlHandle(
        flavour=flavour,
        version=_server_version(server),
        # no TCP: "localhost" as MySQL clients spell "the socket"; the port only names the server
        host="127.0.0.1" if spec.listen_tcp else "localhost",
        port=port,
        admin_user=ADMIN_USER,
        admin_password=admin_password,
        master_user=spec.master_user,
        master_password=spec.master_password or secrets.token_urlsafe(18),
        dbname=spec.dbname,
        provider="local",
        stopper=stopper,
        process=process,
        unix_socket=sock,
        tcp=spec.listen_tcp,
        bootstrap_connect={"unix_socket": sock, "user": "root", "password": ""},
    )
    if not bootstrap:
        return handle
    try:
        handle.bootstrap()
        # install-db leaves password-less root accounts for 127.0.0.1, ::1 and the host name:
        # keep only root@localhost (private socket) and give it the admin's password
        for (host,) in handle.admin_execute("SELECT host FROM mysql.user WHERE user = 'root'"):
            if host != "localhost":
                handle.admin_execute("DROP USER 'root'@%s", [host])
        handle.admin_execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", [admin_password])
    except BaseException:
        handle.stop()
        raise
    return handle


def _golden(server: Path, flavour: str, who: RunAs) -> Path:
    key = cache_key(str(server), _server_version(server), flavour, "my-golden-v1")

    def build(target: Path) -> None:
        target.mkdir(mode=0o700)
        # A private tmpdir: a starting server deletes every "#sql*" file in its tmpdir, so two
        # builds (parallel xdist workers) sharing /tmp break each other's temporary tables.
        tmp = target.parent / "tmp"
        tmp.mkdir(mode=0o700)
        chown_tree(target.parent, who)
        if flavour == "mariadb":
            install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
            if install is None:
                raise BackendUnavailable(
                    "mariadb-install-db not found: apt-get install mariadb-server"
                )
            run_checked(
                [
                    install,
                    "--no-defaults",
                    f"--datadir={target}",
                    f"--tmpdir={tmp}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--skip-name-resolve",
                    "--skip-log-bin",
                    *MARIADB_INNODB,
                ],
                who,
                cwd=target.parent,
            )
        else:
            run_checked(
                [
                    str(server),
                    "--no-defaults",
                    "--initialize-insecure",
                    f"--datadir={target}",
                    f"--tmpdir={tmp}",
                    "--skip-log-bin",
                    "--innodb-buffer-pool-size=32M",
                ],
                who,
                cwd=target.parent,
            )

    return golden_dir("my", key, build, "mysql")


def _start(
    server: Path, flavour: str, who: RunAs, work: Path, fixed_port: int | None = None, *,
    tcp: bool = False, extra: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server on ``fixed_port`` (a restart) or a free port; wait until it is ready.

    Without ``tcp`` the server opens no TCP socket at all (``--skip-networking``); the port is
    still allocated so that it names this server uniquely (catalog generations, repr).
    """
    last = ""
    log_path = work / "error.log"
    for attempt in range(BIND_ATTEMPTS):
        port = fixed_port or free_port()
        cmd = [
            str(server),
            "--no-defaults",
            f"--datadir={work / 'data'}",
            f"--port={port}",
            *(["--bind-address=127.0.0.1"] if tcp else ["--skip-networking"]),
            f"--socket={work / 'mysqld.sock'}",
            f"--pid-file={work / 'mysqld.pid'}",
            f"--log-error={log_path}",
            f"--tmpdir={work / 'tmp'}",
        ]
        cmd += [*MARIADB_INNODB, *MARIADB_FAST] if flavour == "mariadb" else MYSQL_FAST
        cmd += extra  # after the defaults: a later option wins (--log-bin over --skip-log-bin)
        offset = log_path.stat().st_size if log_path.exists() else 0
        proc = spawn(cmd, who, work / "stdout.log")
        if _wait_ready(proc, log_path, offset):
            return proc, port
        terminate(proc, sig=9)
        last = _tail(log_path, offset)
        if "already in use" not in last and "Bind on TCP/IP port" not in last:
            break
        if fixed_port is not None:
            time.sleep(0.2 * (attempt + 1))  # the old server's sockets may still be closing
    raise BackendError(f"{flavour} did not start: {last.strip()[-2000:]}")


def _tail(path: Path, offset: int) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode(errors="replace")
    return ""


def _wait_ready(proc: subprocess.Popen[bytes], log_path: Path, offset: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if "ready for connections" in _tail(log_path, offset):
            return True
        time.sleep(0.005)
    return False
