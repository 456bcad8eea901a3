"""Endpoint memory under connection churn, and RSS per idle authenticated connection (issue #16).

    uv run --frozen python bench/bench_churn.py [--engine postgres|mysql|both]
        [--loop uvloop|asyncio|both] [--rounds 10] [--conns 1000] [--concurrency 32]
        [--idle 1000] [--json out.json]

Starts a local PostgreSQL 15 and/or MariaDB (the backends package, private unix socket) and the
endpoint in a child process, run as the product runs it: on ``endpoint.loop_thread.LoopThread``
(the loop in a background thread, as ``instances.Emulator`` does) with the product's default
``EventLog``. Per round, ``--conns`` IAM logins over verified TLS with real drivers (psycopg,
PyMySQL; ``--concurrency`` at a time), each running ``select 1`` and closing. After each round,
once the endpoint tracks no connection, the child reports its VmRSS, open fds, asyncio tasks,
the endpoint's tracked tasks/connections, events held, gc object count and (``--tracemalloc``)
traced Python memory. Then ``--idle`` connections are opened and held: (RSS with them open - RSS
before) / N is the RSS per idle connection; they are closed and the state is read again.
Every figure carries the load average at the time. ``--trim`` also reports RSS after
``malloc_trim(0)`` (diagnosis: memory freed but kept by the allocator).

Output: a table on stdout and, with ``--json``, every figure as JSON.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ctypes
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3

REGION = "us-east-1"
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PG_HOST = "churn.c9akciq32example.us-east-1.rds.amazonaws.com"
MY_HOST = "localhost"
IAM_USER = "churn_iam"
TOKEN_REUSE = 300.0


# ------------------------------------------------------------------------------ endpoint process


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def serve(args: argparse.Namespace) -> None:
    """Child process: the endpoint on a LoopThread; answers one-line commands on stdin
    (``stats``, ``trim``) with one JSON line each; exits when stdin closes."""
    import asyncio
    import tracemalloc

    from rdsiam_emulator.auth.authenticator import Authenticator
    from rdsiam_emulator.auth.credentials import StaticCredentials
    from rdsiam_emulator.auth.endpoint_spec import Endpoint
    from rdsiam_emulator.endpoint.backend import BackendAddress
    from rdsiam_emulator.endpoint.event_loops import loop_name
    from rdsiam_emulator.endpoint.loop_thread import LoopThread
    from rdsiam_emulator.endpoint.tracking import TrackedEndpoint
    from rdsiam_emulator.events import EventLog
    from rdsiam_emulator.tls import EmulatorCA, endpoint_names

    if args.tracemalloc:
        tracemalloc.start()
    thread = LoopThread(loop=args.loop)
    events = EventLog()
    ca = EmulatorCA(Path(args.ca_dir))
    target = BackendAddress("127.0.0.1", args.backend_port, args.admin_user, args.admin_password,
                            unix_socket=args.backend_socket)
    host = PG_HOST if args.engine == "postgres" else MY_HOST

    async def start() -> TrackedEndpoint:
        cert = ca.server_certificate(endpoint_names([host]))
        placeholder: Any = None
        ep: TrackedEndpoint
        if args.engine == "postgres":
            from rdsiam_emulator.endpoint.postgres import PostgresEndpoint

            ep = PostgresEndpoint(backend=target, authenticator=placeholder,
                                  instance_secret=b"churn-secret" * 3,
                                  tls_context=cert.server_context())
        else:
            from rdsiam_emulator.endpoint.mysql import MysqlEndpoint

            ep = MysqlEndpoint(backend=target, authenticator=placeholder,
                               instance_secret=b"churn-secret" * 3,
                               tls_context=cert.server_context())
        await ep.start()
        ep.authenticator = Authenticator(  # type: ignore[attr-defined]
            instance_id="churn", engine=args.engine,
            endpoint=Endpoint(host, ep.port, REGION, aliases=("localhost", "127.0.0.1")),
            credentials=StaticCredentials({AKID: (SECRET, None)}), events=events)
        return ep

    async def loop_tasks() -> int:
        return len(asyncio.all_tasks())

    async def task_names() -> list[str]:
        return sorted(repr(t.get_coro()) for t in asyncio.all_tasks())

    endpoint = thread.run(start())
    libc = ctypes.CDLL("libc.so.6")
    print(json.dumps({"port": endpoint.port, "loop": loop_name(thread.loop)}), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "trim":
                libc.malloc_trim(0)
            if command == "tasks":  # diagnosis: what is still running
                print(json.dumps(thread.run(task_names())), flush=True)
                continue
            gc.collect()
            stats: dict[str, Any] = {
                "rss_kb": _proc_status("VmRSS"),
                "fds": len(os.listdir("/proc/self/fd")),
                "threads": _proc_status("Threads"),
                "loop_tasks": thread.run(loop_tasks()),
                "endpoint_tasks": endpoint.active_tasks,
                "endpoint_connections": endpoint.active_connections,
                "events_held": len(events.all()),
                "gc_objects": len(gc.get_objects()),
            }
            if args.tracemalloc:
                stats["traced_kb"] = tracemalloc.get_traced_memory()[0] // 1024
            print(json.dumps(stats), flush=True)
    finally:
        thread.run(endpoint.close())
        thread.stop()


# ------------------------------------------------------------------------------ set-up


class Child:
    """The endpoint process and its one-line command channel."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", *argv],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = json.loads(self._line())
        self.port: int = hello["port"]
        self.loop: str = hello["loop"]

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the endpoint process ended")
        return line

    def ask(self, command: str = "stats") -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        stats: dict[str, Any] = json.loads(self._line())
        stats["load1"] = os.getloadavg()[0]
        return stats

    def tasks(self) -> list[str]:
        """The endpoint process's running asyncio tasks (diagnosis)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("tasks\n")
        self.proc.stdin.flush()
        names: list[str] = json.loads(self._line())
        return names

    def settled(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stats once the endpoint tracks no connection and no task (or after ``timeout``).

        Read once more after that: the fds and loop tasks of a reading are taken before its
        endpoint counters, so under load they can still show connections closing meanwhile.
        """
        deadline = time.monotonic() + timeout
        while True:
            stats = self.ask()
            idle = stats["endpoint_connections"] == 0 and stats["endpoint_tasks"] == 0
            if idle:
                time.sleep(0.5)
                return self.ask()
            if time.monotonic() > deadline:
                stats["left_tasks"] = self.tasks()
                return stats
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def backend(engine: str, idle: int) -> Iterator[Any]:
    """A local server of ``engine`` with room for ``idle`` sessions (a bench-only setting)."""
    from rdsiam_emulator.backends import BackendSpec, local_mysql, local_postgres, start_local

    room = str(idle + 50)
    if engine == "postgres":
        local_postgres.FAST_SETTINGS["max_connections"] = room
    else:
        local_mysql.MARIADB_FAST[:] = [a for a in local_mysql.MARIADB_FAST
                                       if not a.startswith("--max-connections=")]
        local_mysql.MARIADB_FAST.append(f"--max-connections={room}")
    handle = start_local(BackendSpec(engine=engine, provider="local", dbname="app",  # type: ignore[arg-type]
                                     version="15" if engine == "postgres" else None))
    try:
        yield handle
    finally:
        handle.stop()


def prepare_user(engine: str, handle: Any, port: int, cafile: str) -> None:
    if engine == "postgres":
        handle.admin_execute(f"CREATE ROLE {IAM_USER} LOGIN")
        handle.admin_execute(f"GRANT rds_iam TO {IAM_USER}")
        return
    import pymysql

    # through the endpoint, as an application does: it rewrites the RDS DDL
    with pymysql.connect(host=MY_HOST, port=port, user=handle.master_user,
                         password=handle.master_password, ssl={"ca": cafile}) as conn, \
            conn.cursor() as cur:
        cur.execute(f"CREATE USER '{IAM_USER}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin "
                    "AS 'RDS'")
        cur.execute(f"GRANT ALL ON app.* TO '{IAM_USER}'@'%'")


def opener(engine: str, port: int, cafile: str) -> Callable[[], Any]:
    """A function opening one IAM connection over verified TLS. A token is minted every
    ``TOKEN_REUSE`` seconds (tokens live 15 minutes; reused tokens are not throttled)."""
    host = PG_HOST if engine == "postgres" else MY_HOST
    rds = boto3.client("rds", region_name=REGION, aws_access_key_id=AKID,
                       aws_secret_access_key=SECRET)
    minted: list[tuple[float, str]] = []
    lock = threading.Lock()

    def token() -> str:
        with lock:
            if not minted or time.monotonic() - minted[0][0] > TOKEN_REUSE:
                minted[:] = [(time.monotonic(), str(rds.generate_db_auth_token(
                    DBHostname=host, Port=port, DBUsername=IAM_USER, Region=REGION)))]
            return minted[0][1]

    if engine == "postgres":
        import psycopg

        def pg() -> Any:
            return psycopg.connect(psycopg.conninfo.make_conninfo(
                host=PG_HOST, hostaddr="127.0.0.1", port=port, user=IAM_USER, password=token(),
                dbname="app", sslmode="verify-full", sslrootcert=cafile), autocommit=True)

        return pg
    import pymysql

    return lambda: pymysql.connect(host=MY_HOST, port=port, user=IAM_USER, password=token(),
                                   database="app", ssl={"ca": cafile})


def query(conn: Any) -> None:
    if hasattr(conn, "execute"):  # psycopg
        conn.execute("select 1").fetchall()
    else:
        with conn.cursor() as cur:
            cur.execute("select 1")
            cur.fetchall()


def churn_round(connect: Callable[[], Any], n: int, concurrency: int) -> tuple[float, int]:
    """Open, query and close ``n`` connections, ``concurrency`` at a time: (seconds, failures)."""
    failures = 0
    lock = threading.Lock()

    def one(_: int) -> None:
        nonlocal failures
        try:
            conn = connect()
            try:
                query(conn)
            finally:
                conn.close()
        except Exception:
            with lock:
                failures += 1

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - started, failures


def idle_phase(connect: Callable[[], Any], child: Child, n: int,
               concurrency: int) -> dict[str, Any]:
    before = child.settled()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        conns = list(pool.map(lambda _: connect(), range(n)))
    for conn in conns[:5]:
        query(conn)
    time.sleep(1.0)
    held = child.ask()
    for conn in conns:
        conn.close()
    conns.clear()
    after = child.settled()
    return {"n": n, "before": before, "open": held, "after_close": after,
            "rss_per_idle_kb": (held["rss_kb"] - before["rss_kb"]) / n}


def run_one(engine: str, loop: str, args: argparse.Namespace, handle: Any, ca_dir: Path,
            cafile: str, *, prepare: bool) -> dict[str, Any]:
    argv = ["--engine", engine, "--loop", loop, "--ca-dir", str(ca_dir),
            "--backend-port", str(handle.port), "--admin-user", handle.admin_user,
            f"--admin-password={handle.admin_password}",
            *(["--backend-socket", handle.unix_socket] if handle.unix_socket else []),
            *(["--tracemalloc"] if args.tracemalloc else [])]
    child = Child(argv)
    try:
        if prepare:
            prepare_user(engine, handle, child.port, cafile)
        connect = opener(engine, child.port, cafile)
        result: dict[str, Any] = {"engine": engine, "loop": child.loop,
                                  "start": child.settled(), "rounds": []}
        churn(child, connect, args, result)
    finally:
        child.close()
    if args.idle:
        # a fresh process: after churn, new connections reuse memory the old ones freed
        child = Child(argv)
        try:
            connect = opener(engine, child.port, cafile)
            connect().close()  # the first login opens the admin session; not per connection
            idle = idle_phase(connect, child, args.idle, args.concurrency)
        finally:
            child.close()
        result["idle"] = idle
        print(f"idle, fresh endpoint process: {args.idle} open connections: RSS "
              f"{idle['before']['rss_kb'] / 1024:.1f} -> {idle['open']['rss_kb'] / 1024:.1f} MB = "
              f"{idle['rss_per_idle_kb']:.1f} KB per connection (load "
              f"{idle['open']['load1']:.2f}); after closing: "
              f"{idle['after_close']['rss_kb'] / 1024:.1f} MB, fds {idle['before']['fds']} -> "
              f"{idle['after_close']['fds']}, loop tasks {idle['after_close']['loop_tasks']}",
              flush=True)
    return result


def churn(child: Child, connect: Callable[[], Any], args: argparse.Namespace,
          result: dict[str, Any]) -> None:
    """``args.rounds`` rounds of ``args.conns`` logins; a row per round into ``result``."""
    if not args.rounds:
        return
    print(f"\n{result['engine']} endpoint on {child.loop}: {args.rounds} rounds x {args.conns} "
          f"connections, {args.concurrency} at a time", flush=True)
    print(f"{'round':>5} {'s':>6} {'fail':>4} {'RSS MB':>7} {'fds':>4} {'tasks':>5} "
          f"{'events':>6} {'objects':>8} {'traced MB':>9} {'load':>5}"
          + (f" {'trimmed MB':>10}" if args.trim else ""), flush=True)
    for i in range(1, args.rounds + 1):
        seconds, failures = churn_round(connect, args.conns, args.concurrency)
        stats = child.settled()
        row = {"round": i, "seconds": seconds, "failures": failures, **stats}
        if args.trim:
            row["trimmed_rss_kb"] = child.ask("trim")["rss_kb"]
        result["rounds"].append(row)
        traced = f"{stats['traced_kb'] / 1024:9.1f}" if "traced_kb" in stats else " " * 9
        print(f"{i:5d} {seconds:6.1f} {failures:4d} {stats['rss_kb'] / 1024:7.1f} "
              f"{stats['fds']:4d} {stats['loop_tasks']:5d} {stats['events_held']:6d} "
              f"{stats['gc_objects']:8d} {traced} {stats['load1']:5.2f}"
              + (f" {row['trimmed_rss_kb'] / 1024:10.1f}" if args.trim else ""), flush=True)
    first, last = result["rounds"][0], result["rounds"][-1]
    result["rss_growth_first_to_last"] = last["rss_kb"] / first["rss_kb"] - 1
    print(f"RSS after round {last['round']} vs round 1: "
          f"{result['rss_growth_first_to_last']:+.1%}; fds {result['start']['fds']} at start, "
          f"{last['fds']} after the last round", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--engine", choices=("postgres", "mysql", "both"), default="both")
    parser.add_argument("--loop", choices=("uvloop", "asyncio", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--conns", type=int, default=1000, help="connections per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--idle", type=int, default=1000,
                        help="idle connections held at the end (0: skip)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace Python allocations in the endpoint (slower)")
    parser.add_argument("--trim", action="store_true",
                        help="also report RSS after malloc_trim(0) each round (diagnosis)")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ca-dir", help=argparse.SUPPRESS)
    parser.add_argument("--backend-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--backend-socket", help=argparse.SUPPRESS)
    parser.add_argument("--admin-user", help=argparse.SUPPRESS)
    parser.add_argument("--admin-password", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    from rdsiam_emulator.tls import EmulatorCA

    machine = {"cores": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform(), "glibc": platform.libc_ver()[1]}
    engines = ("postgres", "mysql") if args.engine == "both" else (args.engine,)
    loops = ("uvloop", "asyncio") if args.loop == "both" else (args.loop,)
    work = Path(tempfile.mkdtemp(prefix="rdsiam-bench-churn-"))
    results: list[dict[str, Any]] = []
    try:
        ca_dir = work / "ca"
        cafile = str(EmulatorCA(ca_dir).bundle_path)
        for engine in engines:
            with backend(engine, args.idle) as handle:
                for n, loop in enumerate(loops):
                    results.append(run_one(engine, loop, args, handle, ca_dir, cafile,
                                           prepare=n == 0))
                    if args.json:  # after every run: a long run that fails keeps the rest
                        Path(args.json).write_text(json.dumps(
                            {"machine": machine, "args": vars(args), "results": results},
                            indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
