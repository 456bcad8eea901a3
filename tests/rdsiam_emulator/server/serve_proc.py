"""Running ``rdsiam-emulator serve`` as a subprocess and talking to it only from outside: HTTP,
boto3 against its port, database clients over TLS. Imported by the server tests."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import requests

REGION = "eu-west-1"
ACCOUNT = "123456789012"
APP_KEY = "AKIAEXAMPLESEED00001"
APP_SECRET = "seeded-secret-access-key-0001"
DNS_LABEL = "c0serve0test"
STARTUP_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_loopback(port: int) -> str:
    """A random 127.x.y.z where ``port`` is free (parallel runs must not collide on 5432)."""
    for _ in range(50):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(2, 254)}"
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                continue
            return address
    raise RuntimeError(f"no free loopback address for port {port}")


class Serve:
    """One ``serve`` process; ``lines`` collects its stdout as it comes."""

    def __init__(self, config: str, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.config_path = tmp / "rdsiam.toml"
        self.config_path.write_text(config)
        self.lines: list[str] = []
        self.stderr_path = tmp / "serve.stderr"
        self._stderr = self.stderr_path.open("w")
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "RDSIAM_", "MOTO_"))}
        full_env.update(env or {})
        full_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rdsiam_emulator.cli", "serve", "--config",
             str(self.config_path)], stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env=full_env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""
        self.ca = tmp / "ca.pem"
        """Where tests keep the CA bundle fetched from /_rdsiam/ca.pem."""
        self.health_seen: list[int] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, needle: str, timeout: float = STARTUP_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {needle!r}; exit {self.proc.poll()}; stdout:\n"
                             f"{self.output()}\nstderr:\n{self.stderr_path.read_text()}")

    def wait_ready(self, port: int) -> list[int]:
        """Poll /_rdsiam/health until 200; returns the statuses seen (0: not listening yet)."""
        self.url = f"http://127.0.0.1:{port}"
        seen: list[int] = []
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                status = requests.get(f"{self.url}/_rdsiam/health", timeout=5).status_code
            except requests.ConnectionError:
                status = 0
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == 200:
                self.health_seen = seen
                return seen
            assert self.proc.poll() is None, (self.output(), self.stderr_path.read_text())
            time.sleep(0.05)
        raise AssertionError(f"not ready: {seen}\n{self.output()}")

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", params=params, timeout=10)

    def json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def instance(self, ident: str) -> dict[str, Any]:
        [found] = [i for i in self.json("/_rdsiam/instances")["instances"] if i["id"] == ident]
        return dict(found)

    def client(self, service: str, key: str = "test", secret: str = "test") -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id=key, aws_secret_access_key=secret)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig``; returns the exit code (fails if it takes longer than ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(timeout=5)
            self._stderr.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return code

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (or is a zombie nobody can use)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def events(serve: Serve, **filters: str) -> list[dict[str, Any]]:
    return list(serve.json("/_rdsiam/events", **filters)["events"])


def dumps(obj: Any) -> str:
    return json.dumps(obj)


def hosts_lines(serve: Serve) -> list[str]:
    """The ``/etc/hosts`` lines the server printed at startup."""
    out = serve.lines
    start = out.index("/etc/hosts lines for the RDS-style names:") + 1
    lines = []
    for line in out[start:]:
        if not line.startswith("127."):
            break
        lines.append(line)
    return lines


def run_with_hosts(hosts: list[str], argv: list[str], tmp: Path, env: dict[str, str],
                   cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a private mount namespace whose ``/etc/hosts`` holds ``hosts`` (and
    localhost): C resolvers and node see the RDS-style names as the docs tell users to set up,
    while the machine's real /etc/hosts is untouched. Needs root (unshare), as CI has."""
    hosts_file = tmp / "hosts"
    hosts_file.write_text("127.0.0.1 localhost\n" + "\n".join(hosts) + "\n")
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return subprocess.run(["unshare", "--mount", "sh", "-c", script, str(hosts_file), *argv],
                          capture_output=True, text=True, timeout=60, env=env, cwd=cwd)
