"""Ready times of the backends and the cost of per-test isolation (medians over repeated runs).

    uv run --frozen python bench/bench_backends.py [--runs 7] [--fresh 30] [--containers]

Targets (issue): local PostgreSQL ready <= 1.0 s, local MariaDB ready <= 1.5 s, a fresh per-test
database <= 60 ms; container start is reported beside them. "Ready" = start_backend() returned a
bootstrapped handle (server up, rdsadmin/master/roles/database/template in place). The first start
of a server build prepares its cached data directory and is reported separately ("cold").
``--containers`` starts Podman's API with scripts/podman-engine for the run (and stops it after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rdsiam_emulator.backends import BackendSpec, start_backend
from rdsiam_emulator.backends.procs import cache_dir

ROOT = Path(__file__).resolve().parents[1]


def ready_times(spec: BackendSpec, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        handle = start_backend(spec)
        out.append(time.perf_counter() - start)
        handle.stop()
    return out


def fresh_times(spec: BackendSpec, runs: int) -> tuple[list[float], list[float]]:
    """Create a per-test database, add a user, reset users, drop the database; time the first and
    the reset."""
    handle = start_backend(spec)
    created, reset = [], []
    extra = "CREATE USER bench_u" if spec.engine == "postgres" else "CREATE USER 'bench_u'@'%'"
    try:
        for _ in range(runs):
            start = time.perf_counter()
            name = handle.fresh_database()
            created.append(time.perf_counter() - start)
            handle.admin_execute(extra)
            start = time.perf_counter()
            handle.reset_users()
            reset.append(time.perf_counter() - start)
            handle.drop_database(name)
    finally:
        handle.stop()
    return created, reset


def row(label: str, values: list[float], target: float | None = None) -> None:
    med = statistics.median(values)
    verdict = (
        "" if target is None else ("  ok" if med <= target else f"  MISSES {target * 1000:.0f} ms")
    )
    print(
        f"{label:<44} median {med * 1000:8.1f} ms   min {min(values) * 1000:8.1f}   "
        f"max {max(values) * 1000:8.1f}   n={len(values)}{verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--fresh", type=int, default=30)
    parser.add_argument("--containers", action="store_true")
    args = parser.parse_args()
    print("command: uv run --frozen python bench/bench_backends.py " + " ".join(sys.argv[1:]))
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} at start")

    with tempfile.TemporaryDirectory() as cold_cache:
        os.environ["RDSIAM_CACHE_DIR"] = cold_cache
        row(
            "local postgres ready, cold (prepares cache)",
            ready_times(BackendSpec("postgres", provider="local"), 1),
        )
        row(
            "local mariadb ready, cold (prepares cache)",
            ready_times(BackendSpec("mysql", provider="local"), 1),
        )
    os.environ["RDSIAM_CACHE_DIR"] = str(cache_dir())
    ready_times(BackendSpec("postgres", provider="local"), 1)  # warm the real cache once
    ready_times(BackendSpec("mysql", provider="local"), 1)
    row(
        "local postgres ready",
        ready_times(BackendSpec("postgres", provider="local"), args.runs),
        1.0,
    )
    row("local mariadb ready", ready_times(BackendSpec("mysql", provider="local"), args.runs), 1.5)
    created, reset = fresh_times(BackendSpec("postgres", provider="local"), args.fresh)
    row("postgres fresh database (FILE_COPY template)", created, 0.060)
    row("postgres reset_users (one extra role)", reset)
    created, reset = fresh_times(BackendSpec("mysql", provider="local"), args.fresh)
    row("mariadb fresh schema", created, 0.060)
    row("mariadb reset_users (one extra user)", reset)

    if args.containers:
        api = Path(tempfile.mkdtemp(prefix="bench-podman-"))
        up = subprocess.run(
            [str(ROOT / "scripts" / "podman-engine"), "up", str(api)],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in up.stdout.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            os.environ[key] = value
        try:
            for engine in ("postgres", "mysql"):
                spec = BackendSpec(engine, provider="docker")  # type: ignore[arg-type]
                label = f"container {spec.resolved_image()} ready"
                row(label, ready_times(spec, max(1, args.runs // 2)))
        finally:
            subprocess.run(
                [str(ROOT / "scripts" / "podman-engine"), "stop", str(api)],
                capture_output=True,
                check=False,
            )
    print(f"load average {os.getloadavg()[0]:.2f} at end (other jobs share these 2 cpus)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
