"""No orphans: servers started by a process are gone after it exits normally, on Ctrl-C (SIGINT)
or on SIGTERM, even when the code never called stop()."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = r"""
import json, signal, sys, time
from pathlib import Path
# Ctrl-C in a terminal: a test run started in the background of a non-interactive shell (nohup,
# `cmd &`) hands its children SIGINT ignored, and Python keeps it ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
from rdsiam_emulator.backends import BackendSpec, start_backend
pg = start_backend(BackendSpec("postgres", provider="local"))
my = start_backend(BackendSpec("mysql", provider="local"))
pg_work = Path(pg.unix_socket).parent
my_work = Path(my.unix_socket).parent
print(json.dumps({
    "pids": [int((pg_work / "data" / "postmaster.pid").read_text().split()[0]),
             int((my_work / "mysqld.pid").read_text())],
    "dirs": [str(pg_work), str(my_work)],
}), flush=True)
if sys.argv[1] == "exit":
    sys.stdin.readline()  # the parent checks the servers are up before letting us exit
    sys.exit(0)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "zombie" not in status


@pytest.mark.parametrize("how", ["exit", "sigint", "sigterm"])
def test_servers_are_stopped_when_the_process_ends(how: str, tmp_path: Path) -> None:
    errors = tmp_path / "stderr.txt"
    # the with-blocks close the pipes and reap the child on every way out
    with open(errors, "w") as err, subprocess.Popen(
        [sys.executable, "-c", CHILD, how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, errors.read_text()
            info = json.loads(line)
            assert all(alive(pid) for pid in info["pids"])
            if how == "sigint":
                os.kill(proc.pid, signal.SIGINT)
            elif how == "sigterm":
                os.kill(proc.pid, signal.SIGTERM)
            else:
                assert proc.stdin is not None
                proc.stdin.write("exit now\n")
                proc.stdin.flush()
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    # Python re-raises an unhandled KeyboardInterrupt as death by SIGINT
    expected = {"exit": 0, "sigint": -signal.SIGINT, "sigterm": -signal.SIGTERM}[how]
    assert code == expected, errors.read_text()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in info["pids"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in info["pids"])
    assert not any(Path(d).exists() for d in info["dirs"])
