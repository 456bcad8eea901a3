"""Running server binaries as an unprivileged account, in their own session.

PostgreSQL refuses to run as root and MariaDB needs ``--user``; when this process is root the
servers run as an EXISTING unprivileged account (``nobody`` unless ``$RDSIAM_BACKEND_USER`` names
another) through ``setpriv`` — nothing system-wide is created. As a normal user they run as that
user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BackendError, BackendUnavailable

BACKEND_USER_ENV = "RDSIAM_BACKEND_USER"


@dataclass(frozen=True)
class RunAs:
    """The OS account servers run as; ``prefix`` is prepended to every command (empty:
    ourselves).
    """

    uid: int
    gid: int
    name: str
    prefix: tuple[str, ...]


def run_as() -> RunAs:
    """The account servers run as: ourselves when not root; as root, ``$RDSIAM_BACKEND_USER``
    (default ``nobody``) through ``setpriv``.

    Raises ``BackendUnavailable`` when that account does not exist, is root, or setpriv is
    missing.
    """
    if os.geteuid() != 0:
        return RunAs(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name, ())
    name = os.environ.get(BACKEND_USER_ENV, "nobody")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise BackendUnavailable(
            f"running as root, servers must run as an unprivileged account, but {name!r} does not "
            f"exist; set ${BACKEND_USER_ENV} to an existing non-root user"
        ) from None
    if entry.pw_uid == 0:
        raise BackendUnavailable(
            f"${BACKEND_USER_ENV}={name} is root; name an unprivileged account"
        )
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise BackendUnavailable("running as root needs setpriv (util-linux) to drop privileges")
    prefix = (setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups")
    return RunAs(entry.pw_uid, entry.pw_gid, name, prefix)


def chown_tree(path: Path, who: RunAs) -> None:
    """Hand a private directory to the server account (no-op when we are that account)."""
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, who.uid, who.gid)
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), who.uid, who.gid)


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small, predictable environment (no PG*/MYSQL* variables leaking in from the caller)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "HOME": "/nonexistent",
    }
    if extra:
        env.update(extra)
    return env


def run_checked(
    cmd: Sequence[str],
    who: RunAs,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> str:
    """Run a one-shot tool (initdb, install-db) as ``who``; raise with its output on failure."""
    proc = subprocess.run(
        [*who.prefix, *cmd],
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
    if proc.returncode != 0:
        raise BackendError(
            f"{Path(cmd[0]).name} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    return proc.stdout


def spawn(
    cmd: Sequence[str], who: RunAs, log_path: Path, *, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-running server in its own session, output to ``log_path``; it is reaped as
    soon as it exits, however it dies (see :func:`reap_on_exit`)."""
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [*who.prefix, *cmd],
            env=server_env(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(log_path.parent),
        )
    reap_on_exit(proc)
    return proc


def reap_on_exit(proc: subprocess.Popen[bytes]) -> None:
    """Wait for ``proc`` in a daemon thread, so a server that dies (``kill -9``, crash) does not
    stay a zombie child: a zombie's PID still looks alive, and PostgreSQL then refuses to start
    again on the same data directory ("lock file postmaster.pid already exists").

    ``poll``/``wait`` elsewhere stay correct: Popen serialises waitpid with its own lock.
    """
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


def kill_session(pgid: int, timeout: float = 5.0) -> None:
    """SIGKILL whatever is left in a server's session (orphaned children of a killed
    postmaster hold its shared memory) and wait up to ``timeout`` s for them to go."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


class ServerProcess:
    """A local server process that can be stopped and started again on the same port and data.

    ``start`` launches the server and waits until it accepts connections (raises BackendError);
    ``stop_signal`` asks it to stop (PostgreSQL: SIGINT, fast shutdown).
    """

    def __init__(self, proc: subprocess.Popen[bytes],
                 start: Callable[[], subprocess.Popen[bytes]], stop_signal: int) -> None:
        self._proc = proc
        self._start = start
        self._stop_signal = stop_signal
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        """The server's main process id (it leads its own session and process group)."""
        return self._proc.pid

    @property
    def alive(self) -> bool:
        """Whether the main server process is still running (not reaped)."""
        return self._proc.poll() is None

    def stop(self) -> None:
        """Send ``stop_signal``; SIGKILL the server's session if it has not exited within 10 s, and
        any processes left in it.
        """
        with self._lock:
            terminate(self._proc, sig=self._stop_signal)
            kill_session(self._proc.pid)

    def restart(self) -> None:
        """Stop the server if it still runs (leftovers of a killed one included), start it again.

        Raises BackendError if it does not come back.
        """
        with self._lock:
            terminate(self._proc, sig=self._stop_signal)
            kill_session(self._proc.pid)
            self._proc = self._start()


def terminate(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Ask the server to stop with ``sig``; kill its whole session if it does not within
    ``timeout``.
    """
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return
        time.sleep(0.01)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(timeout=5)


def cache_dir() -> Path:
    """Where prepared data directories are cached (``$RDSIAM_CACHE_DIR`` or
    ~/.cache/rdsiam-emulator).
    """
    base = os.environ.get("RDSIAM_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "rdsiam-emulator"


TMPDIR_ENV = "RDSIAM_BACKEND_TMPDIR"
SHM = "/dev/shm"  # noqa: S108 - a private mkdtemp inside it, mode 0700


OWNER_FILE = "rdsiam-owner"
"""In each work directory: ``"<pid> <start time in clock ticks>"`` of the process that made it."""
UNOWNED_GRACE_S = 3600.0
"""A work directory without an owner file (made before owners were recorded) is swept only when
no server runs in it and it is older than this (seconds)."""


def private_workdir(prefix: str) -> Path:
    """A fresh 0700 directory for one server's data, socket and log.

    Why /dev/shm by default: the data is thrown away at stop, and copying the prepared data
    directory to memory takes milliseconds where a busy disk can take a second. Set
    ``$RDSIAM_BACKEND_TMPDIR`` to put it elsewhere.

    First sweeps directories of the same prefix left by processes that died without stopping
    their servers (SIGKILL, an OOM kill, a crashed test worker): in /dev/shm each holds ~50 MB
    of RAM until reboot (see :func:`sweep_orphans`).
    """
    base = os.environ.get(TMPDIR_ENV)
    if not base and os.path.isdir(SHM) and os.access(SHM, os.W_OK | os.X_OK):
        base = SHM
    parent = Path(base) if base else Path(tempfile.gettempdir())
    sweep_orphans(parent, prefix)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=str(parent)))
    (work / OWNER_FILE).write_text(_process_identity(os.getpid()) or "")
    return work


def _process_identity(pid: int) -> str | None:
    """``"<pid> <start time>"`` of a live process, or None: the start time tells a reused pid
    apart from the process that wrote it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 22 (starttime), counted after the ")" that ends the command name
    return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"


def _owner_alive(work: Path, now: float) -> bool:
    try:
        recorded = (work / OWNER_FILE).read_text().strip()
    except FileNotFoundError:
        try:
            return now - work.stat().st_mtime < UNOWNED_GRACE_S
        except OSError:
            return True
    except OSError:
        return True  # unreadable: not ours to judge
    if not recorded:
        return True
    return _process_identity(int(recorded.split()[0])) == recorded


def _servers_in(work: Path) -> list[int]:
    """Pids of processes whose command line names ``work`` (its server, orphaned)."""
    needle = os.fsencode(str(work) + "/")
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline.replace(b"\0", b" ") + b"/":
            found.append(int(entry.name))
    return found


def sweep_orphans(parent: Path, prefix: str) -> list[Path]:
    """Remove ``parent/prefix*`` work directories whose owner process is gone, after SIGKILLing
    any server still running in one (it is orphaned: nothing will stop it, and its data is
    throw-away). Directories of live owners, and unowned ones younger than
    ``UNOWNED_GRACE_S``, are left alone; unowned ones with a live server too. Returns the
    directories removed. Never raises for a directory it cannot inspect or remove.
    """
    removed: list[Path] = []
    now = time.time()  # file ages only (st_mtime is wall-clock); no logic clock involved
    try:
        candidates = [Path(e.path) for e in os.scandir(parent)
                      if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    for work in candidates:
        if _owner_alive(work, now):
            continue
        servers = _servers_in(work)
        if servers and not (work / OWNER_FILE).exists():
            continue  # unowned and running: maybe another tool's; leave it
        for pid in servers:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except OSError:
                continue
        for pid in servers:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _process_identity(pid) is not None:
                time.sleep(0.02)
        shutil.rmtree(work, ignore_errors=True)
        if not work.exists():
            removed.append(work)
    return removed
