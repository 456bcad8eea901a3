"""Overhead of the pytest plugin: session start-up and per-test cost of ``rds_iam_db``.

Runs a generated suite of N tests in a subprocess (like a user's run) and reads each phase's
duration from pytest's own reports. Per-test cost = setup + teardown of ``rds_iam_db`` (fresh
database, moto start, instance registration, user reset); the first test's setup includes starting
the server and the endpoint.

    uv run --frozen python bench/bench_plugin.py [--tests 30] [--engine postgres|mysql]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST_FILE = '''
import pytest

@pytest.mark.parametrize("n", range({n}))
@pytest.mark.parametrize("rds_iam_db", ["{engine}"], indirect=True)
def test_noop(rds_iam_db, n):
    assert rds_iam_db.dbname
'''

CONFTEST = '''
import json, os

def pytest_runtest_logreport(report):
    with open(os.environ["BENCH_OUT"], "a") as fh:
        fh.write(json.dumps({"id": report.nodeid, "when": report.when,
                             "duration": report.duration}) + "\\n")
'''


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=30)
    parser.add_argument("--engine", default="postgres", choices=["postgres", "mysql"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "test_bench.py").write_text(TEST_FILE.format(n=args.tests, engine=args.engine))
        (root / "conftest.py").write_text(CONFTEST)
        out = root / "durations.jsonl"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
             "--rdsiam-emulator", "--rdsiam-backend", "local", str(root)],
            cwd=root, env={**__import__("os").environ, "BENCH_OUT": str(out)},
            capture_output=True, text=True, check=False,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return 1
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    setups = [r["duration"] for r in rows if r["when"] == "setup"]
    teardowns = [r["duration"] for r in rows if r["when"] == "teardown"]
    per_test = [s + t for s, t in zip(setups[1:], teardowns[1:], strict=True)]
    print(f"command: uv run --frozen python bench/bench_plugin.py --tests {args.tests} "
          f"--engine {args.engine}")
    print(f"tests: {len(setups)}  wall (incl. interpreter start): {wall:.2f} s")
    print(f"first test setup (server + endpoint start): {setups[0] * 1000:.0f} ms")
    print(f"per-test overhead (setup + teardown), median: {statistics.median(per_test) * 1000:.1f}"
          f" ms, p90: {sorted(per_test)[int(len(per_test) * 0.9)] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
