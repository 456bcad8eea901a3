"""Where the PostgreSQL endpoint's CPU goes: cProfile of the endpoint process during one kind of
load, printed as the top functions by own time and by cumulative time.

    uv run --frozen python -m bench.profile_endpoint conn   [--seconds 20] [--top 25]
    uv run --frozen python -m bench.profile_endpoint select [--seconds 20] [--top 25]

``conn``: ``pgbench -S -C -c4 -j2`` (a new IAM connection per transaction: TLS handshake, token
verification, backend login); ``select``: ``pgbench -S -c4 -j2`` (relaying small queries). Same
set-up as bench_postgres.py (the endpoint in a child process; its profile is written when it
stops). cProfile slows Python code down, so read shares, not absolute times; the figures per
connection / per 1,000 transactions divide the profiled CPU by what pgbench completed.
"""

from __future__ import annotations

import argparse
import io
import pstats
import shutil
import tempfile
from pathlib import Path

import boto3

from bench import bench_postgres as bp


def main() -> int:
    """Profile one load kind; prints the pstats tables."""
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("conn", "select"))
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--save", type=Path, help="also keep the raw cProfile stats here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rdsiam-bench-prof-"))
    work.chmod(0o711)
    prof = work / "endpoint.prof"
    handle, root = bp.start_tls_postgres(work / "ca")
    child = None
    try:
        handle.admin_execute(f"CREATE ROLE {bp.IAM_USER} LOGIN")
        handle.admin_execute(f"GRANT rds_iam TO {bp.IAM_USER}")
        direct = bp.pg_env(handle.master_user, handle.master_password, handle.port,
                           bp.DIRECT_HOST, "verify-full", root)
        bp.prepare_database(direct)
        child, port = bp.start_endpoint(work / "ca", handle, "auto", profile=str(prof))
        token = boto3.client("rds", region_name=bp.REGION, aws_access_key_id=bp.AKID,
                             aws_secret_access_key=bp.SECRET).generate_db_auth_token(
            DBHostname=bp.RDS_HOST, Port=port, DBUsername=bp.IAM_USER)
        env = bp.pg_env(bp.IAM_USER, str(token), port, bp.RDS_HOST, "verify-full", root)
        flags = ["-C", "-S"] if args.kind == "conn" else ["-S"]
        cpu_before = bp.cpu_seconds(child.pid)
        tps, done = bp.pgbench_run(env, *flags, "-c4", "-j2", "-T", str(args.seconds))
        cpu = bp.cpu_seconds(child.pid) - cpu_before
        bp.stop_endpoint(child)
        child = None
        unit, per = (("connection", done) if args.kind == "conn"
                     else ("1,000 transactions", done / 1000))
        print(f"pgbench {' '.join(flags)} -c4 -j2 -T {args.seconds}: {tps:.0f}/s, {done} done; "
              f"endpoint CPU under cProfile {cpu * 1000 / per:.2f} ms per {unit}")
        if args.save:
            shutil.copy(prof, args.save)
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            stats = pstats.Stats(str(prof), stream=out)
            stats.strip_dirs().sort_stats(order).print_stats(args.top)
            print(f"\n--- by {order} ---")
            print(out.getvalue().split("\n\n", 1)[-1])
    finally:
        if child is not None:
            bp.stop_endpoint(child)
        handle.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
