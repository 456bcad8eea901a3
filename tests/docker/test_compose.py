"""docker/compose.yaml run for real: Debian's docker-compose (v1, Python) against Podman's Docker
API, the emulator image and the example apps. Each app creates its IAM user through the emulator's
API, signs tokens and connects by RDS-style name (network aliases); the denied app's reason is on
/_rdsiam/events; the emulator's HEALTHCHECK passes and it stops cleanly (exit 0) on SIGTERM.
Both backend modes: embedded (servers in the emulator container) and external (compose services).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from image_engine import image_engine  # noqa: F401 - session fixture

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
APPS = ("app-python", "app-node", "app-denied")
INSTANCES = {"orders": "orders.c1rdsiamdemo1.eu-west-1.rds.amazonaws.com",
             "inventory": "inventory.c1rdsiamdemo1.eu-west-1.rds.amazonaws.com"}

# a cold machine builds the images inside the first test's set-up (scripts/bootstrap prebuilds them)
pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1200)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    def __init__(self, env: dict[str, str], files: list[str], name: str) -> None:
        self.env = env
        self.base = ["docker-compose", "--no-ansi", "-p", name,
                     *(a for f in files for a in ("-f", str(DOCKER / f)))]

    def run(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run([*self.base, *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, check=False)
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}:\n{proc.stderr[-3000:]}"
        return proc.stdout

    def container(self, service: str) -> str:
        (cid,) = self.run("ps", "-q", service).split()
        return cid


@pytest.fixture(params=["embedded", "external"])
def stack(request: pytest.FixtureRequest,
          image_engine: dict[str, str]) -> Iterator[tuple[Stack, str]]:  # noqa: F811
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: scripts/bootstrap installs it (Debian package)")
    files = ["compose.yaml"] + (["compose.external.yaml"] if request.param == "external" else [])
    api = free_port()
    env = {**os.environ, **image_engine, "RDSIAM_HOST_PORT": str(api),
           "RDSIAM_HOST_PG_PORT": str(free_port()), "RDSIAM_HOST_MY_PORT": str(free_port())}
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    stack = Stack(env, files, f"rdsiamtest{os.getpid()}{request.param}")
    try:
        yield stack, f"http://127.0.0.1:{api}"
    finally:
        stack.run("down", "-v", "--timeout", "15")


def wait_exit(env: dict[str, str], cid: str, timeout: float) -> int:
    out = subprocess.run(["podman", "wait", cid], capture_output=True, text=True, env=env,
                         timeout=timeout, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def app_lines(logs: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logs.splitlines() if line.startswith("{")]


def diagnose(compose: Stack, api: str, logs: dict[str, str]) -> str:
    """Everything needed to tell a failed app run apart: the apps' lines, the emulator's log and
    the events it recorded (with reasons and hints)."""
    parts = [f"--- {app} ---\n{text}" for app, text in logs.items()]
    emulator = subprocess.run(["podman", "logs", compose.container("emulator")],
                              capture_output=True, text=True, env=compose.env, check=False)
    parts.append(f"--- emulator ---\n{(emulator.stdout + emulator.stderr)[-6000:]}")
    try:
        with urllib.request.urlopen(f"{api}/_rdsiam/events", timeout=10) as resp:
            parts.append(f"--- events ---\n{resp.read().decode()[-6000:]}")
    except OSError as exc:
        parts.append(f"--- events unreadable: {exc}")
    return "\n".join(parts)


def test_compose_stack_apps_log_in_with_iam_tokens(stack: tuple[Stack, str]) -> None:
    compose, api = stack
    started = time.monotonic()
    compose.run("up", "-d", timeout=600)
    codes = {app: wait_exit(compose.env, compose.container(app), 300) for app in APPS}
    elapsed = time.monotonic() - started
    logs = {app: subprocess.run(["podman", "logs", compose.container(app)], capture_output=True,
                                text=True, env=compose.env, check=True).stdout for app in APPS}
    assert codes == dict.fromkeys(APPS, 0), diagnose(compose, api, logs)

    for app in ("app-python", "app-node"):
        connected = {e["instance"]: e for e in app_lines(logs[app]) if e["event"] == "connected"}
        assert set(connected) == set(INSTANCES), logs[app]
        for instance, address in INSTANCES.items():
            assert connected[instance]["host"] == address  # the RDS-style name, via the alias
            assert connected[instance]["who"].startswith("app_user")
    denied = app_lines(logs["app-denied"])
    assert {e["instance"] for e in denied if e["event"] == "refused"} == set(INSTANCES)
    assert {e["reason"] for e in denied if e["event"] == "emulator-event"} == {"not_authorized"}

    # the same refusals, read from the host through the published API port
    with urllib.request.urlopen(f"{api}/_rdsiam/events?outcome=deny", timeout=10) as resp:
        events = json.load(resp)["events"]
    assert sorted(e["instance_id"] for e in events) == sorted(INSTANCES)
    assert all(e["reason"] == "not_authorized" and e["principal_arn"].endswith(
        ":user/example-denied") and e["hint"] for e in events)
    with urllib.request.urlopen(f"{api}/_rdsiam/events?outcome=allow&db_user=app_user",
                                timeout=10) as resp:
        allowed = json.load(resp)["events"]
    assert {e["principal_arn"].rsplit("/", 1)[1] for e in allowed} == {
        "example-python", "example-node"}

    emulator = compose.container("emulator")
    # the image's HEALTHCHECK command (podman runs it on demand; no systemd timers here)
    check = subprocess.run(["podman", "healthcheck", "run", emulator], capture_output=True,
                           text=True, env=compose.env, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    user = subprocess.run(["podman", "exec", emulator, "id", "-u"], capture_output=True,
                          text=True, env=compose.env, timeout=60, check=True).stdout.strip()
    assert user == "10001"

    stop_started = time.monotonic()
    compose.run("stop", "--timeout", "15", "emulator")
    stop_s = time.monotonic() - stop_started
    state = subprocess.run(["podman", "inspect", "--format", "{{.State.ExitCode}}", emulator],
                           capture_output=True, text=True, env=compose.env, check=True)
    assert state.stdout.strip() == "0"  # not 137: SIGTERM ended it, no SIGKILL after the grace
    print(f"compose: up → every app done {elapsed:.1f} s; SIGTERM stop {stop_s:.1f} s")


_PACKAGE_DIGEST = """
import hashlib, pathlib, rdsiam_emulator
root = pathlib.Path(rdsiam_emulator.__file__).parent
digest = hashlib.sha256()
for path in sorted(root.rglob("*.py")):
    digest.update(str(path.relative_to(root)).encode() + b"\\0" + path.read_bytes())
print(digest.hexdigest())
"""


def test_the_image_carries_this_trees_package(image_engine: dict[str, str]) -> None:  # noqa: F811
    """The image's installed package is this tree's, file for file (a RUN whose input is a bind
    mount is reused from the layer cache when only the mounted wheel changed: the image then
    shipped an older emulator than the tree it was built from)."""
    env = {**os.environ, **image_engine}
    inside = subprocess.run(
        ["podman", "run", "--rm", "--entrypoint", "python3", image_engine["RDSIAM_EMULATOR_IMAGE"],
         "-c", _PACKAGE_DIGEST], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert inside.returncode == 0, inside.stderr[-2000:]
    here = subprocess.run(  # this tree's package (the venv's editable install of src/)
        [sys.executable, "-c", _PACKAGE_DIGEST.replace(
            "rdsiam_emulator.__file__", repr(str(ROOT / "src/rdsiam_emulator/__init__.py")))],
        capture_output=True, text=True, timeout=60, check=True)
    assert inside.stdout.split()[-1] == here.stdout.strip()
