"""PostgreSQL endpoint benchmark: direct TLS to PostgreSQL 15 vs through the endpoint (TLS on both).

    uv run --frozen python bench/bench_postgres.py [--seconds 10] [--rounds 3] [--copy-mb 100]

Starts a local PostgreSQL 15 (backends package) with TLS switched on (certificate from the emulator
CA), and the endpoint in a child process (so the client's CPU use does not share the endpoint's
Python thread). Clients:

* new-connection rate: ``pgbench -C -S -c4 -j2`` (a new TLS connection per transaction; libpq in C,
  so the client is not the bottleneck). Direct: the master user's password; endpoint: an IAM user
  with one token (tokens stay valid for 15 minutes; the emulator does not throttle here);
* ``pgbench -S -c4 -j2`` and the default TPC-B-like script, same client settings both ways;
* bulk COPY: ``psql \\copy`` of --copy-mb megabytes in and out;
* p50 added latency: ``select 1`` round trips with psycopg (one connection, 2000 queries).

Every figure is the median of --rounds runs, direct and endpoint alternating, because other
processes on the machine skew single runs: compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import psycopg

from rdsiam_emulator.backends import BackendSpec, PostgresHandle, start_local
from rdsiam_emulator.endpoint.event_loops import resolve_loop_name

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RDS_HOST = "bench.c9akciq32example.us-east-1.rds.amazonaws.com"
REGION = "us-east-1"
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
IAM_USER = "bench_iam"


# ------------------------------------------------------------------------------ endpoint process


def serve(args: argparse.Namespace) -> None:
    """Child process: run the endpoint until stdin closes; prints the port first."""
    from rdsiam_emulator.auth.authenticator import Authenticator
    from rdsiam_emulator.auth.credentials import StaticCredentials
    from rdsiam_emulator.auth.endpoint_spec import Endpoint
    from rdsiam_emulator.endpoint.backend import BackendAddress
    from rdsiam_emulator.endpoint.postgres import PostgresEndpoint
    from rdsiam_emulator.events import EventLog
    from rdsiam_emulator.tls import EmulatorCA, endpoint_names

    snapshot_to = os.environ.get("RDSIAM_BENCH_TRACEMALLOC")
    if snapshot_to:  # bench/profile_idle.py: a tracemalloc snapshot on every SIGUSR1
        import signal
        import tracemalloc

        tracemalloc.start(8)
        taken = iter(range(1_000_000))

        def snapshot(*_: object) -> None:
            tracemalloc.take_snapshot().dump(f"{snapshot_to}.{next(taken)}")

        signal.signal(signal.SIGUSR1, snapshot)

    if resolve_loop_name(args.loop) == "uvloop":
        import uvloop

        uvloop.install()

    async def main() -> None:
        ca = EmulatorCA(Path(args.ca_dir))
        cert = ca.server_certificate(endpoint_names([RDS_HOST]))
        target = BackendAddress("127.0.0.1", args.backend_port, "rdsadmin", args.admin_password,
                               unix_socket=args.backend_socket_dir)
        placeholder: object = None
        ep = PostgresEndpoint(backend=target, authenticator=placeholder,  # type: ignore[arg-type]
                              instance_secret=b"bench-secret" * 3,
                              tls_context=cert.server_context())
        await ep.start()
        ep.authenticator = Authenticator(
            instance_id="bench", engine="postgres",
            endpoint=Endpoint(RDS_HOST, ep.port, REGION, aliases=("localhost", "127.0.0.1")),
            credentials=StaticCredentials({AKID: (SECRET, None)}), events=EventLog(maxlen=1000))
        print(ep.port, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await ep.close()

    if args.profile:
        import cProfile

        # CPU time, not wall time: on a shared machine a descheduled process would otherwise
        # charge its waiting to whatever call it was in
        prof = cProfile.Profile(time.process_time)
        prof.runctx("asyncio.run(main())", globals(), {"main": main, "asyncio": asyncio})
        prof.dump_stats(args.profile)
    else:
        asyncio.run(main())


# ------------------------------------------------------------------------------ set-up


DIRECT_HOST = "direct.example"
"""The direct server's certificate name (reached via PGHOSTADDR=127.0.0.1, verify-full)."""


def tls_files(ca_dir: Path, host: str = DIRECT_HOST,
              dirname: str = "server-tls") -> tuple[Path, Path, Path]:
    """A server certificate for ``host`` from the emulator CA, in files the server account can
    read (in ``ca_dir``'s sibling ``dirname``); returns (CA bundle, certificate, key)."""
    from rdsiam_emulator.tls import EmulatorCA, endpoint_names

    ca = EmulatorCA(ca_dir)
    cert = ca.server_certificate(endpoint_names([host]))
    tls_dir = ca_dir.parent / dirname
    tls_dir.mkdir()
    crt, key = tls_dir / "server.crt", tls_dir / "server.key"
    crt.write_bytes(cert.cert_path.read_bytes())
    key.write_bytes(cert.key_path.read_bytes())
    key.chmod(0o600)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam(os.environ.get("RDSIAM_BACKEND_USER", "nobody"))
        for p in (tls_dir, crt, key):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
    return ca.bundle_path, crt, key


def start_tls_postgres(ca_dir: Path, max_connections: int = 100) -> tuple[PostgresHandle, Path]:
    """The backends package's local PostgreSQL 15, with ssl=on and TCP on 127.0.0.1 for the
    direct-TLS baseline.

    The provider passes its settings as ``-c`` options (which ALTER SYSTEM cannot override), so
    the benchmark adjusts that table before starting: a benchmark-only tweak.
    """
    from rdsiam_emulator.backends import local_postgres

    root, crt, key = tls_files(ca_dir)
    local_postgres.FAST_SETTINGS.update({
        "ssl": "on", "ssl_cert_file": str(crt), "ssl_key_file": str(key),
        "shared_buffers": "128MB", "max_connections": str(max_connections)})
    # TCP is opt-in (a local server normally has only its private socket): the direct-TLS
    # baseline needs it
    handle = start_local(BackendSpec(engine="postgres", provider="local", version="15",
                                     dbname="app", listen_tcp=True))
    assert isinstance(handle, PostgresHandle)
    return handle, root


def pg_env(user: str, password: str, port: int, host: str, sslmode: str, root: Path,
           dbname: str = "app") -> dict[str, str]:
    return {**os.environ, "PGHOST": host, "PGHOSTADDR": "127.0.0.1", "PGPORT": str(port),
            "PGUSER": user, "PGPASSWORD": password, "PGDATABASE": dbname, "PGSSLMODE": sslmode,
            "PGSSLROOTCERT": str(root)}


def pgbench_run(env: dict[str, str], *extra: str) -> tuple[float, int]:
    """Run pgbench; returns (tps, transactions processed). With ``-C`` every transaction is a
    new connection. Raises ``RuntimeError`` with pgbench's output when it fails or reports
    failed transactions."""
    out = subprocess.run([str(PG_BIN / "pgbench"), "-n", *extra], env=env, capture_output=True,
                         text=True, check=False)
    match = re.search(r"tps = ([0-9.]+) \((?:without initial|including reconnection)", out.stdout)
    done = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if out.returncode or match is None or done is None or (failed and int(failed.group(1))):
        raise RuntimeError(out.stdout + out.stderr)
    return float(match.group(1)), int(done.group(1))


def pgbench(env: dict[str, str], *extra: str) -> float:
    return pgbench_run(env, *extra)[0]


def copy_round(env: dict[str, str], data_file: Path) -> tuple[float, float]:
    psql = str(PG_BIN / "psql")
    subprocess.run([psql, "-Xqc", "truncate bench_copy"], env=env, check=True)
    started = time.perf_counter()
    subprocess.run([psql, "-Xqc", f"\\copy bench_copy from '{data_file}'"], env=env, check=True)
    copy_in = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([psql, "-Xqc", "\\copy bench_copy to '/dev/null'"], env=env, check=True)
    copy_out = time.perf_counter() - started
    return copy_in, copy_out


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of a process (Linux /proc), with ``children`` also those of its
    reaped children (the postmaster's: every finished backend session)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / os.sysconf("SC_CLK_TCK")


def client_cpu_seconds() -> float:
    """CPU seconds of this process's finished children (pgbench, psql)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def latency_samples(conninfo: str, n: int = 2000) -> list[float]:
    """Round-trip times in microseconds of ``n`` ``select 1`` on one psycopg connection (after
    100 unmeasured warm-up queries), sorted."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for _ in range(100):
            conn.execute("select 1")
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            conn.execute("select 1")
            samples.append((time.perf_counter() - started) * 1e6)
    return sorted(samples)


def latency_p50(conninfo: str, n: int = 2000) -> float:
    return statistics.median(latency_samples(conninfo, n))


def prepare_database(direct: dict[str, str]) -> None:
    """pgbench's tables (scale 1) and the COPY table, all granted to the IAM user."""
    init = subprocess.run([str(PG_BIN / "pgbench"), "-i", "-q", "-s", "1"], env=direct,
                          capture_output=True, text=True, check=False)
    if init.returncode:
        raise RuntimeError(init.stderr)
    subprocess.run([str(PG_BIN / "psql"), "-Xqc",
                    "create table bench_copy (id int, a text, b text); "
                    f"grant all on all tables in schema public to {IAM_USER}"],
                   env=direct, check=True, capture_output=True)


def write_copy_file(path: Path, mb: int) -> float:
    """A tab-separated file of about ``mb`` MiB for COPY; returns its size in MB (10^6)."""
    row = "x" * 200
    with path.open("w") as fh:
        for i in range(mb * 1024 * 1024 // 410):
            fh.write(f"{i}\t{row}\t{row}\n")
    return path.stat().st_size / 1e6


def start_endpoint(ca_dir: Path, handle: PostgresHandle, loop: str = "auto", *,
                   backend_tcp: bool = False,
                   profile: str | None = None) -> tuple[subprocess.Popen[str], int]:
    """The endpoint in a child process (this file with ``--serve``) in front of ``handle``;
    returns (process, port). It stops when its stdin is closed (see :func:`stop_endpoint`)."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--ca-dir", str(ca_dir), "--backend-port",
         str(handle.port), f"--admin-password={handle.admin_password}",
         *([] if backend_tcp or handle.unix_socket is None
           else ["--backend-socket-dir", handle.unix_socket]),
         "--loop", loop, *(["--profile", profile] if profile else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.strip().isdigit():
        child.kill()
        child.wait()
        raise RuntimeError("the endpoint child did not start")
    return child, int(line)


def stop_endpoint(child: subprocess.Popen[str]) -> None:
    """Close the child's stdin (it then stops and writes its profile) and reap it."""
    if child.stdin is not None:
        child.stdin.close()
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copy-mb", type=int, default=100)
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                        help="the endpoint's event loop (auto: the product's choice, uvloop "
                             "when installed)")
    parser.add_argument("--profile", help="write the endpoint's cProfile stats to this file")
    parser.add_argument("--conn-only", action="store_true", help="only the connection-rate test")
    parser.add_argument("--backend-tcp", action="store_true",
                        help="endpoint -> server over loopback TCP instead of the server's socket")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend-socket-dir", help=argparse.SUPPRESS)
    parser.add_argument("--ca-dir", help=argparse.SUPPRESS)
    parser.add_argument("--backend-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--admin-password", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    work = Path(tempfile.mkdtemp(prefix="rdsiam-bench-pg-"))
    work.chmod(0o711)  # the server account must reach server-tls/ inside
    ca_dir = work / "ca"
    handle, root = start_tls_postgres(ca_dir)
    child: subprocess.Popen[str] | None = None
    try:
        handle.admin_execute(f"CREATE ROLE {IAM_USER} LOGIN")
        handle.admin_execute(f"GRANT rds_iam TO {IAM_USER}")
        direct = pg_env(handle.master_user, handle.master_password, handle.port, DIRECT_HOST,
                        "verify-full", root)
        prepare_database(direct)

        child, port = start_endpoint(ca_dir, handle, args.loop, backend_tcp=args.backend_tcp,
                                     profile=args.profile)
        token = str(boto3.client("rds", region_name=REGION, aws_access_key_id=AKID,
                                 aws_secret_access_key=SECRET).generate_db_auth_token(
            DBHostname=RDS_HOST, Port=port, DBUsername=IAM_USER))
        via = pg_env(IAM_USER, token, port, RDS_HOST, "verify-full", root)

        data_file = work / "copy.tsv"
        size_mb = write_copy_file(data_file, args.copy_mb)

        t = str(args.seconds)
        results: dict[str, dict[str, list[float]]] = {"direct": {}, "endpoint": {}}
        endpoint_cpu_ms: list[float] = []
        assert handle.unix_socket is not None  # a local server
        postmaster = int((Path(handle.unix_socket).parent / "data" / "postmaster.pid")
                         .read_text().split()[0])
        breakdown: dict[str, dict[str, list[float]]] = {"direct": {}, "endpoint": {}}
        for _ in range(args.rounds):
            for name, env in (("direct", direct), ("endpoint", via)):
                r = results[name]
                before = (cpu_seconds(child.pid), cpu_seconds(postmaster, children=True),
                          client_cpu_seconds())
                started = time.perf_counter()
                rate = pgbench(env, "-C", "-S", "-c4", "-j2", "-T", t)
                elapsed = time.perf_counter() - started
                after = (cpu_seconds(child.pid), cpu_seconds(postmaster, children=True),
                         client_cpu_seconds())
                r.setdefault("conn/s (pgbench -C -S -c4 -j2)", []).append(rate)
                conns = rate * elapsed
                for part, b, a in zip(("endpoint", "server", "client"), before, after,
                                      strict=True):
                    breakdown[name].setdefault(part, []).append((a - b) / conns * 1000)
                if name == "endpoint":
                    endpoint_cpu_ms.append((after[0] - before[0]) / conns * 1000)
                if args.conn_only:
                    continue
                r.setdefault("TPS pgbench -S -c4 -j2", []).append(
                    pgbench(env, "-S", "-c4", "-j2", "-T", t))
                r.setdefault("TPS pgbench default -c4 -j2", []).append(
                    pgbench(env, "-c4", "-j2", "-T", t))
                cin, cout = copy_round(env, data_file)
                r.setdefault("COPY in MB/s", []).append(size_mb / cin)
                r.setdefault("COPY out MB/s", []).append(size_mb / cout)
                info = (f"host={env['PGHOST']} hostaddr=127.0.0.1 port={env['PGPORT']} "
                        f"user={env['PGUSER']} password={env['PGPASSWORD']} dbname=app "
                        f"sslmode=verify-full sslrootcert={root}")
                r.setdefault("p50 select 1 (us)", []).append(latency_p50(info))

        print(f"\nPostgreSQL {handle.version}, {args.rounds} rounds x {args.seconds}s, "
              f"COPY {size_mb:.0f} MB, loop={resolve_loop_name(args.loop)}")
        print(f"{'metric':34} {'direct TLS':>12} {'endpoint':>12} {'ratio':>7}")
        for metric in results["direct"]:
            d = statistics.median(results["direct"][metric])
            e = statistics.median(results["endpoint"][metric])
            if metric.startswith("p50"):
                print(f"{metric:34} {d:12.1f} {e:12.1f}  +{e - d:.1f} us added")
            else:
                print(f"{metric:34} {d:12.1f} {e:12.1f} {e / d:7.2f}x")
        for name in ("direct", "endpoint"):
            parts = ", ".join(f"{part} {statistics.median(v):.2f}"
                              for part, v in breakdown[name].items() if part != "endpoint"
                              or name == "endpoint")
            print(f"CPU ms per new connection, {name}: {parts}")
        per_conn = statistics.median(endpoint_cpu_ms)
        print(f"endpoint CPU per IAM connection: {per_conn:.2f} ms "
              f"(= {1000 / per_conn:.0f} IAM connections/s per core of endpoint capacity)")
    finally:
        if child is not None:
            stop_endpoint(child)
        handle.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
