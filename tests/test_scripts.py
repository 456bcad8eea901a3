"""scripts/bootstrap installs what each job needs: the demo no test tooling, tests every oracle."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _plan(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RDSIAM_SKIP_PODMAN"}
    proc = subprocess.run([str(ROOT / "scripts" / "bootstrap"), *args, "--dry-run"],
                          capture_output=True, text=True, timeout=60, check=True, env=env)
    return proc.stdout


def test_demo_bootstrap_skips_images_node_and_the_dev_group() -> None:
    plan = _plan("--demo")
    assert "uv sync --frozen --no-dev" in plan and "--all-extras" not in plan
    assert "podman" not in plan and "npm" not in plan
    assert "mariadb-server" in plan and "libdbd-mysql-perl" not in plan
    assert "golang-go" not in plan and "default-jdk-headless" not in plan
    assert "chromium" not in plan


def test_test_bootstrap_installs_every_oracle() -> None:
    plan = _plan()
    assert "uv sync --frozen --all-extras" in plan and "--no-dev" not in plan
    for pkg in ("mariadb-client", "libdbd-mysql-perl", "libmariadb-dev", "golang-go",
                "golang-github-aws-aws-sdk-go-dev", "golang-github-aws-aws-sdk-go-v2-dev",
                "golang-github-go-sql-driver-mysql-dev", "golang-github-lib-pq-dev",
                "default-jdk-headless", "libpostgresql-jdbc-java", "libmariadb-java", "chromium",
                "pgbouncer"):
        assert pkg in plan
    assert "npm ci in tests/node" in plan
    assert ("podman-engine images" in plan) == (os.geteuid() == 0)


def test_the_aws_cli_comes_with_the_dev_group() -> None:
    assert (Path(sys.prefix) / "bin" / "aws").is_file()
