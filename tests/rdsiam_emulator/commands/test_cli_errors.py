"""Expected failures of CLI commands: one clear message and a documented exit status, no
traceback (docs/cli.md, "Exit status")."""

import os
import subprocess
import sys


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rdsiam_emulator.cli", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **(env or {})})


def test_demo_without_a_container_engine_is_one_message_and_exit_4(tmp_path):
    proc = _cli("demo", "--backend", "docker", "--engine", "postgres",
                env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        f"rdsiam-emulator demo: no Docker-API engine reachable (DOCKER_HOST=unix://{tmp_path}/")
    assert "podman system service" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_demo_with_an_unknown_region_is_a_usage_error():
    proc = _cli("demo", "--region", "mars-1", "--engine", "postgres")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: --region: unknown AWS region 'mars-1'" in proc.stderr
