"""What an idle authenticated connection costs the PostgreSQL endpoint in memory: RSS and
Python's own allocations (tracemalloc) before and after opening N connections, the top
allocation sites of the difference.

    uv run --frozen python -m bench.profile_idle [--conns 300] [--top 15]

The gap between the RSS difference and the traced difference is memory outside Python's
allocator view: OpenSSL's per-connection state, uvloop's C structures, allocator slack.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import time
import tracemalloc
from pathlib import Path

import boto3
import psycopg

from bench import bench_postgres as bp
from bench.run_all import hold_open, rss_kib


def main() -> int:
    """Open ``--conns`` idle IAM connections through the endpoint; print RSS and traced deltas."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rdsiam-bench-idle-"))
    work.chmod(0o711)
    handle, root = bp.start_tls_postgres(work / "ca", max_connections=args.conns + 50)
    child = None
    os.environ["RDSIAM_BENCH_TRACEMALLOC"] = str(work / "snap")
    try:
        handle.admin_execute(f"CREATE ROLE {bp.IAM_USER} LOGIN")
        handle.admin_execute(f"GRANT rds_iam TO {bp.IAM_USER}")
        child, port = bp.start_endpoint(work / "ca", handle, "auto")
        token = boto3.client("rds", region_name=bp.REGION, aws_access_key_id=bp.AKID,
                             aws_secret_access_key=bp.SECRET).generate_db_auth_token(
            DBHostname=bp.RDS_HOST, Port=port, DBUsername=bp.IAM_USER)
        info = psycopg.conninfo.make_conninfo(
            host=bp.RDS_HOST, hostaddr="127.0.0.1", port=port, user=bp.IAM_USER,
            password=str(token), dbname="app", sslmode="verify-full", sslrootcert=str(root))
        with hold_open(lambda: psycopg.connect(info), 20):  # warm up: first-use allocations
            pass

        def snap(index: int) -> tracemalloc.Snapshot:
            assert child is not None
            child.send_signal(signal.SIGUSR1)
            path = Path(f"{work / 'snap'}.{index}")
            for _ in range(300):
                if path.exists() and path.stat().st_size:
                    time.sleep(0.5)
                    return tracemalloc.Snapshot.load(str(path))
                time.sleep(0.1)
            raise TimeoutError("no snapshot from the endpoint")

        before_rss, before = rss_kib(child.pid), snap(0)
        with hold_open(lambda: psycopg.connect(info), args.conns):
            after_rss, after = rss_kib(child.pid), snap(1)
        diff = after.compare_to(before, "traceback")
        traced = sum(d.size_diff for d in diff)
        n = args.conns
        print(f"{n} idle IAM connections: RSS +{(after_rss - before_rss) / n:.1f} KiB each, "
              f"Python-traced +{traced / 1024 / n:.1f} KiB each")
        for d in diff[: args.top]:
            frames = list(d.traceback)[::-1]  # most recent first
            frame = frames[0]
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[:4])
            print(f"{d.size_diff / 1024 / n:7.2f} KiB/conn {d.count_diff / n:6.1f} blocks/conn"
                  f"  {Path(frame.filename).name}:{frame.lineno}  ({where})")
    finally:
        if child is not None:
            bp.stop_endpoint(child)
        handle.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
