"""Work directories of servers whose owner died (SIGKILL, a crashed test worker) are swept by the
next ``private_workdir`` of the same prefix: in /dev/shm each held ~50 MB of RAM until reboot
(520 of them, 18 GB, were found on a shared machine)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdsiam_emulator.backends.procs import (
    OWNER_FILE,
    TMPDIR_ENV,
    UNOWNED_GRACE_S,
    private_workdir,
    sweep_orphans,
)

PREFIX = "rdsiam-sweeptest-"

# A child makes a work directory, starts a "server" in its own session whose command line names
# the directory (as postgres -D / mariadbd --datadir do), then dies without stopping it.
_ORPHAN = f"""
import os, subprocess, sys
from rdsiam_emulator.backends.procs import private_workdir
work = private_workdir({PREFIX!r})
(work / "data").mkdir()
server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                           str(work / "data")],
                          start_new_session=True, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
print(work, server.pid, flush=True)
os._exit(0)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def workbase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TMPDIR_ENV, str(tmp_path))
    return tmp_path


def test_a_dead_owners_directory_and_orphaned_server_are_swept(workbase: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _ORPHAN], capture_output=True, text=True,
                         env={**os.environ, TMPDIR_ENV: str(workbase)}, timeout=60, check=True)
    work_s, pid_s = out.stdout.split()
    orphan_dir, server = Path(work_s), int(pid_s)
    try:
        assert orphan_dir.is_dir() and _alive(server)
        mine = private_workdir(PREFIX)  # the next start sweeps
        assert not orphan_dir.exists()
        deadline = time.monotonic() + 10
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(server)
        assert mine.is_dir()
        assert (mine / OWNER_FILE).read_text().split()[0] == str(os.getpid())
    finally:
        if _alive(server):
            os.kill(server, 9)


def test_live_owners_and_young_unowned_directories_are_kept(workbase: Path) -> None:
    mine = private_workdir(PREFIX)
    unowned_young = workbase / f"{PREFIX}young"
    unowned_young.mkdir()
    unowned_old = workbase / f"{PREFIX}old"
    unowned_old.mkdir()
    old = time.time() - UNOWNED_GRACE_S - 60
    os.utime(unowned_old, (old, old))
    other_prefix = workbase / "something-else"
    other_prefix.mkdir()
    os.utime(other_prefix, (old, old))

    removed = sweep_orphans(workbase, PREFIX)

    assert removed == [unowned_old]
    assert mine.is_dir() and unowned_young.is_dir() and other_prefix.is_dir()


def test_a_reused_pid_does_not_keep_a_directory(workbase: Path) -> None:
    work = workbase / f"{PREFIX}reused"
    work.mkdir()
    # our own pid, but a start time that is not ours: the recorded process is gone
    (work / OWNER_FILE).write_text(f"{os.getpid()} 1")
    assert sweep_orphans(workbase, PREFIX) == [work]
