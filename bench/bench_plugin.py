"""Overhead of the pytest plugin: session start-up and per-test cost of ``rds_iam_db``, and the
same figures for pytest-postgresql's ``postgresql`` fixture as the baseline people know.

Runs a generated suite of N tests in a subprocess from a temporary project (like a user's run)
and reads each phase's duration from pytest's own reports. Per-test cost = setup + teardown of
the fixture (rds_iam_db: fresh database, moto start, instance registration, user reset;
pytest-postgresql: a fresh database from its template); the first test's setup includes starting
the server (and for rds_iam_db the endpoint). Only the plugin being measured is loaded (the other
is disabled with ``-p no:…``). PostgreSQL refuses to run as root, and pytest-postgresql starts it
as the calling user, so as root its run goes through the backends package's unprivileged account
(``setpriv``, as our own servers run).

    uv run --frozen python bench/bench_plugin.py [--tests 30] [--engine postgres|mysql]
        [--plugin rdsiam|pytest-postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"

TEST_FILE = '''
import pytest

@pytest.mark.parametrize("n", range({n}))
@pytest.mark.parametrize("rds_iam_db", ["{engine}"], indirect=True)
def test_noop(rds_iam_db, n):
    assert rds_iam_db.dbname
'''

TEST_FILE_PYTEST_POSTGRESQL = '''
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_noop(postgresql, n):
    assert postgresql.info.dbname
'''

CONFTEST = '''
import json, os

def pytest_runtest_logreport(report):
    with open(os.environ["BENCH_OUT"], "a") as fh:
        fh.write(json.dumps({"id": report.nodeid, "when": report.when,
                             "duration": report.duration}) + "\\n")
'''

PLUGINS = ("rdsiam", "pytest-postgresql")


def run_suite(tests: int, engine: str = "postgres", plugin: str = "rdsiam",
              profile: Path | None = None) -> dict[str, float]:
    """One pytest run of ``tests`` tests in a fresh temporary project (under cProfile, stats
    written to ``profile``, when given).

    Returns ``first_test_s`` (setup of the first test: server start included), ``per_test_ms``
    (median setup + teardown of the others), ``per_test_p90_ms`` and ``wall_s`` (the whole
    subprocess, interpreter start included). Raises ``RuntimeError`` with pytest's output when
    the run fails.
    """
    if plugin not in PLUGINS:
        raise ValueError(f"plugin must be one of {PLUGINS}")
    if tests < 2:
        raise ValueError("need at least 2 tests (the first is start-up)")
    with tempfile.TemporaryDirectory(prefix="rdsiam-bench-plugin-") as tmp:
        root = Path(tmp)
        out = root / "durations.jsonl"
        env = {**os.environ, "BENCH_OUT": str(out)}
        python = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else [])]
        base = [*python, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                "-p", "no:benchmark"]
        if plugin == "rdsiam":
            (root / "test_bench.py").write_text(TEST_FILE.format(n=tests, engine=engine))
            cmd = [*base, "-p", "no:pytest_postgresql", "--rdsiam-emulator",
                   "--rdsiam-backend", "local", str(root)]
        else:
            if engine != "postgres":
                raise ValueError("pytest-postgresql is PostgreSQL only")
            from rdsiam_emulator.backends.procs import run_as

            who = run_as()
            (root / "test_bench.py").write_text(TEST_FILE_PYTEST_POSTGRESQL.format(n=tests))
            os.chmod(root, 0o755)
            if who.prefix:
                os.chown(root, who.uid, who.gid)
            env |= {"HOME": str(root), "TMPDIR": str(root)}
            cmd = [*who.prefix, *base, "-p", "no:rdsiam", f"--postgresql-exec={PG_CTL}",
                   f"--basetemp={root / 'basetemp'}", str(root)]
        (root / "conftest.py").write_text(CONFTEST)
        # empty ini: the temporary project is the rootdir, whatever the caller's config says
        (root / "pytest.ini").write_text("[pytest]\n")
        if plugin != "rdsiam" and who.prefix:
            for name in ("conftest.py", "pytest.ini", "test_bench.py"):
                os.chown(root / name, who.uid, who.gid)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                              check=False, timeout=600)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{plugin} suite failed ({proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    setups = [r["duration"] for r in rows if r["when"] == "setup"]
    teardowns = [r["duration"] for r in rows if r["when"] == "teardown"]
    if len(setups) != tests:
        raise RuntimeError(f"{plugin}: expected {tests} test reports, got {len(setups)}")
    per_test = [s + t for s, t in zip(setups[1:], teardowns[1:], strict=True)]
    return {"first_test_s": setups[0], "per_test_ms": statistics.median(per_test) * 1000,
            "per_test_p90_ms": sorted(per_test)[int(len(per_test) * 0.9)] * 1000,
            "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=30)
    parser.add_argument("--engine", default="postgres", choices=["postgres", "mysql"])
    parser.add_argument("--plugin", default="rdsiam", choices=PLUGINS)
    parser.add_argument("--profile", type=Path,
                        help="run pytest under cProfile, write the stats here and print the "
                             "top entries by cumulative time")
    args = parser.parse_args()
    try:
        got = run_suite(args.tests, args.engine, args.plugin, args.profile)
    except RuntimeError as exc:
        print(exc)
        return 1
    print(f"command: uv run --frozen python bench/bench_plugin.py --tests {args.tests} "
          f"--engine {args.engine} --plugin {args.plugin}")
    print(f"tests: {args.tests}  wall (incl. interpreter start): {got['wall_s']:.2f} s")
    print(f"first test setup (server start included): {got['first_test_s'] * 1000:.0f} ms")
    print(f"per-test overhead (setup + teardown), median: {got['per_test_ms']:.1f} ms, "
          f"p90: {got['per_test_p90_ms']:.1f} ms")
    if args.profile:
        import pstats

        pstats.Stats(str(args.profile)).strip_dirs().sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
