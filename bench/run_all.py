"""Every benchmark comparison in one run: JSON results and one PNG per question.

    uv run --frozen python -m bench                      # 5 interleaved rounds, docs/benchmarks/
    uv run --frozen python -m bench --quick --out DIR    # a smoke run: seconds, tiny sizes

What runs (the table ``BENCHES`` below; ``--only`` picks some):

* ``postgres``: PostgreSQL 15 with TLS reached directly, through PgBouncer (Debian's, session
  mode, client TLS from the emulator CA, run as the backends' unprivileged account) and through
  the endpoint (a child process); every client ``sslmode=verify-full``;
* ``mariadb``: MariaDB with TLS directly and through the endpoint (no ProxySQL/MaxScale: Debian
  has no package for either);
* ``verify``: token verifications per second (bench_verify.py's genuine botocore tokens);
* ``plugin``: ``pytest --rdsiam-emulator`` vs pytest-postgresql, first test and per test.

Rounds are interleaved: each round runs every bench, and inside a bench every row runs for each
target in turn (the order rotates per round), so load from other processes hits all targets
alike; ratios are taken per round, then the median. Before the rounds, ``--churn-rounds`` rounds
of ``--churn-conns`` connections opened and closed measure each proxy's RSS after every round.

Adding a bench: a class with the ``Rig`` methods and an entry in ``BENCHES``; its rows go in
``METRICS`` and, for a plot, in ``figures()``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import boto3
import psycopg
from psycopg.conninfo import make_conninfo

from bench import bench_mysql as bm
from bench import bench_plugin as bpl
from bench import bench_postgres as bp
from bench import bench_verify as bv
from bench import plots
from rdsiam_emulator.endpoint.event_loops import resolve_loop_name

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "benchmarks"
PGBOUNCER_HOST = "pgbouncer.example"
SCHEMA_VERSION = 1


@dataclasses.dataclass
class Config:
    """Sizes of one run (``--quick`` swaps in ``QUICK``)."""

    rounds: int = 5
    seconds: int = 10
    copy_mb: int = 100
    idle_conns: int = 1000
    churn_rounds: int = 10
    churn_conns: int = 500
    latency_queries: int = 2000
    mysql_conns: int = 1000
    mysql_queries: int = 20000
    bulk_mb: int = 100
    verify_tokens: int = 5000
    plugin_tests: int = 20
    pgbouncer_auth: str = "scram-sha-256"
    only: tuple[str, ...] = ()
    quick: bool = False


QUICK = {"rounds": 2, "seconds": 1, "copy_mb": 1, "idle_conns": 10, "churn_rounds": 3,
         "churn_conns": 20, "latency_queries": 100, "mysql_conns": 40, "mysql_queries": 400,
         "bulk_mb": 2, "verify_tokens": 100, "plugin_tests": 2}


@dataclasses.dataclass(frozen=True)
class Metric:
    """One row: what it asks, its unit, which way is better, how it was measured."""

    question: str
    unit: str
    better: str  # "higher" | "lower"
    how: str


METRICS: dict[str, Metric] = {
    "pg.conn_rate": Metric("PostgreSQL new connections per second", "connections/s", "higher",
                           "pgbench -S -C -c4 -j2 -T seconds (a new TLS connection per "
                           "transaction)"),
    "pg.select_tps": Metric("PostgreSQL select-only TPS", "transactions/s", "higher",
                            "pgbench -S -c4 -j2 -T seconds"),
    "pg.latency_p50": Metric("PostgreSQL select 1 latency p50", "µs", "lower",
                             "psycopg, one connection, latency_queries round trips"),
    "pg.latency_p99": Metric("PostgreSQL select 1 latency p99", "µs", "lower",
                             "psycopg, one connection, latency_queries round trips"),
    "pg.copy_in": Metric("PostgreSQL COPY in", "MB/s", "higher", "psql \\copy from a file"),
    "pg.copy_out": Metric("PostgreSQL COPY out", "MB/s", "higher", "psql \\copy to /dev/null"),
    "pg.idle_rss": Metric("PostgreSQL proxy RSS per idle authenticated connection", "KiB",
                          "lower", "proxy VmRSS with idle_conns psycopg connections open minus "
                          "before, / idle_conns"),
    "pg.cpu_per_conn": Metric("PostgreSQL proxy CPU per new connection", "ms", "lower",
                              "utime+stime of the proxy process during the connection-rate run "
                              "/ connections"),
    "pg.cpu_per_1k_tx": Metric("PostgreSQL proxy CPU per 1,000 transactions", "ms", "lower",
                               "utime+stime of the proxy process during the select-only run "
                               "/ (transactions / 1000)"),
    "my.conn_rate": Metric("MariaDB new connections per second", "connections/s", "higher",
                           "mariadb-slap --detach=1 --concurrency=4 SELECT 1 (a new TLS "
                           "connection per query, server certificate verified)"),
    "my.select_tps": Metric("MariaDB SELECT 1 per second", "queries/s", "higher",
                            "mariadb-slap --concurrency=4 SELECT 1, mysql_queries queries"),
    "my.latency_p50": Metric("MariaDB SELECT 1 latency p50", "µs", "lower",
                             "PyMySQL, one connection, latency_queries round trips"),
    "my.latency_p99": Metric("MariaDB SELECT 1 latency p99", "µs", "lower",
                             "PyMySQL, one connection, latency_queries round trips"),
    "my.bulk_in": Metric("MariaDB bulk insert", "MB/s", "higher",
                         "mysqlclient executemany of 1 MiB LONGBLOB rows, bulk_mb MiB"),
    "my.bulk_out": Metric("MariaDB bulk select", "MB/s", "higher",
                          "mysqlclient SELECT of the bulk_mb MiB table"),
    "my.idle_rss": Metric("MariaDB proxy RSS per idle authenticated connection", "KiB", "lower",
                          "endpoint VmRSS with idle_conns PyMySQL connections open minus "
                          "before, / idle_conns"),
    "my.cpu_per_conn": Metric("MariaDB proxy CPU per new connection", "ms", "lower",
                              "utime+stime of the endpoint process during the connection run "
                              "/ connections"),
    "my.cpu_per_1k_tx": Metric("MariaDB proxy CPU per 1,000 queries", "ms", "lower",
                               "utime+stime of the endpoint process during the SELECT 1 run "
                               "/ (queries / 1000)"),
    "verify.rate": Metric("Token verifications per second (one core, CPU time)",
                          "verifications/s", "higher",
                          "verify_token over verify_tokens distinct botocore tokens "
                          "(bench_verify.py)"),
    "plugin.first_test": Metric("pytest: first test (server start included)", "s", "lower",
                                "setup of the first of plugin_tests tests, pytest subprocess in "
                                "a temporary project"),
    "plugin.per_test": Metric("pytest: per test (setup + teardown)", "ms", "lower",
                              "median setup + teardown of the other tests"),
}

RATIO_PAIRS = (("endpoint", "pgbouncer"), ("endpoint", "direct"),
               ("rdsiam", "pytest-postgresql"))

class Closable(Protocol):
    """A driver connection."""

    def close(self) -> None:
        """Close it."""
        ...


Sample = tuple[str, str, float]
"""(metric id, target, value) for one round."""


class Rig(Protocol):
    """A started bench: its servers stay up for the whole run."""

    def versions(self) -> dict[str, str]:
        """Versions of what it runs, for the machine record."""
        ...

    def churn_round(self) -> dict[str, float]:
        """Open and close the churn connections through each proxy: {proxy: RSS MiB after}."""
        ...

    def run_round(self, index: int) -> list[Sample]:
        """Every row for every target once (target order rotated by ``index``)."""
        ...

    def close(self) -> None:
        """Stop everything it started."""
        ...


def rotate(items: list[str], index: int) -> list[str]:
    """``items`` rotated left by ``index`` (so no target is always first)."""
    k = index % len(items)
    return items[k:] + items[:k]


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS`` of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


@contextlib.contextmanager
def cpu_of(pid: int | None) -> Iterator[list[float]]:
    """Yields a list that holds the CPU seconds ``pid`` used inside the block (0 when None)."""
    used: list[float] = []
    before = bp.cpu_seconds(pid) if pid else 0.0
    yield used
    used.append(bp.cpu_seconds(pid) - before if pid else 0.0)


@contextlib.contextmanager
def hold_open(connect: Callable[[], Closable], n: int, threads: int = 8) -> Iterator[None]:
    """``n`` connections from ``connect`` open at once (opened by ``threads`` threads: the
    drivers' TLS handshakes release the GIL), settled for half a second; all closed on exit."""
    conns: list[Closable] = []
    try:
        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(connect) for _ in range(n)]
            for future in futures:
                with contextlib.suppress(Exception):
                    conns.append(future.result())
        if len(conns) != n:  # every connection is closed below; then the first error
            for future in futures:
                future.result()
        time.sleep(0.5)
        yield
    finally:
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Until 127.0.0.1:``port`` accepts a TCP connection (``TimeoutError`` after timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


# ------------------------------------------------------------------------------ PostgreSQL


class PostgresRig:
    """PostgreSQL 15 + PgBouncer + the endpoint; targets direct, pgbouncer, endpoint."""

    TARGETS = ("direct", "pgbouncer", "endpoint")

    def __init__(self, config: Config, work: Path) -> None:
        self.config = config
        self.work = work / "pg"
        self.work.mkdir()
        self.work.chmod(0o711)  # the server account reaches the TLS files inside
        self.child: subprocess.Popen[str] | None = None
        self.pgbouncer: subprocess.Popen[bytes] | None = None
        ca_dir = self.work / "ca"
        self.handle, self.root = bp.start_tls_postgres(
            ca_dir, max_connections=config.idle_conns + 100)
        try:
            self._start(ca_dir)
        except BaseException:
            self.close()
            raise

    def _start(self, ca_dir: Path) -> None:
        h = self.handle
        h.admin_execute(f"CREATE ROLE {bp.IAM_USER} LOGIN")
        h.admin_execute(f"GRANT rds_iam TO {bp.IAM_USER}")
        self.direct = bp.pg_env(h.master_user, h.master_password, h.port, bp.DIRECT_HOST,
                                "verify-full", self.root)
        bp.prepare_database(self.direct)
        self.data_file = self.work / "copy.tsv"
        self.copy_mb = bp.write_copy_file(self.data_file, self.config.copy_mb)
        self._start_pgbouncer(ca_dir)
        self.child, self.ep_port = bp.start_endpoint(ca_dir, h, "auto")
        self.rds = boto3.client("rds", region_name=bp.REGION, aws_access_key_id=bp.AKID,
                                aws_secret_access_key=bp.SECRET)

    def _start_pgbouncer(self, ca_dir: Path) -> None:
        from rdsiam_emulator.backends.procs import chown_tree, run_as, spawn

        _, crt, key = bp.tls_files(ca_dir, PGBOUNCER_HOST, "pgbouncer")
        conf = crt.parent
        h = self.handle
        assert h.unix_socket is not None  # a local server
        self.pgb_port = bm.free_port()
        (conf / "userlist.txt").write_text(f'"{h.master_user}" "{h.master_password}"\n')
        (conf / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"app = host={h.unix_socket} port={h.port} dbname=app\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.pgb_port}\nunix_socket_dir =\n"
            f"auth_type = {self.config.pgbouncer_auth}\nauth_file = {conf / 'userlist.txt'}\n"
            "pool_mode = session\n"
            f"max_client_conn = {self.config.idle_conns + 200}\ndefault_pool_size = 20\n"
            f"client_tls_sslmode = require\nclient_tls_cert_file = {crt}\n"
            f"client_tls_key_file = {key}\n"
            f"logfile = {conf / 'pgbouncer.log'}\npidfile = {conf / 'pgbouncer.pid'}\n"
            "log_connections = 0\nlog_disconnections = 0\n")
        who = run_as()
        chown_tree(conf, who)
        self.pgbouncer = spawn(["pgbouncer", str(conf / "pgbouncer.ini")], who,
                               conf / "stdout.log")
        wait_port(self.pgb_port)
        comm = Path(f"/proc/{self.pgbouncer.pid}/comm").read_text().strip()
        if comm != "pgbouncer":  # setpriv execs, so the pid must be PgBouncer's own
            raise RuntimeError(f"pid {self.pgbouncer.pid} is {comm!r}, not pgbouncer")
        self.pgb_env = bp.pg_env(h.master_user, h.master_password, self.pgb_port,
                                 PGBOUNCER_HOST, "verify-full", self.root)

    def env(self, target: str) -> dict[str, str]:
        """libpq environment for ``target`` (the endpoint's with a freshly minted token)."""
        if target == "direct":
            return self.direct
        if target == "pgbouncer":
            return self.pgb_env
        token = self.rds.generate_db_auth_token(DBHostname=bp.RDS_HOST, Port=self.ep_port,
                                                DBUsername=bp.IAM_USER)
        return bp.pg_env(bp.IAM_USER, str(token), self.ep_port, bp.RDS_HOST, "verify-full",
                         self.root)

    def conninfo(self, target: str) -> str:
        """A psycopg connection string for ``target``."""
        e = self.env(target)
        return make_conninfo(host=e["PGHOST"], hostaddr="127.0.0.1", port=e["PGPORT"],
                             user=e["PGUSER"], password=e["PGPASSWORD"], dbname="app",
                             sslmode="verify-full", sslrootcert=e["PGSSLROOTCERT"])

    def proxy_pid(self, target: str) -> int | None:
        """The pid whose CPU/RSS counts as the proxy's (None: no proxy)."""
        if target == "pgbouncer" and self.pgbouncer is not None:
            return self.pgbouncer.pid
        if target == "endpoint" and self.child is not None:
            return self.child.pid
        return None

    def versions(self) -> dict[str, str]:
        """PostgreSQL and PgBouncer versions."""
        out = subprocess.run(["pgbouncer", "--version"], capture_output=True, text=True,
                             check=True).stdout
        return {"postgresql": str(self.handle.version), "pgbouncer": out.splitlines()[0],
                "pgbouncer_auth_type": self.config.pgbouncer_auth}

    def churn_round(self) -> dict[str, float]:
        """``churn_conns`` pgbench -C connections through each proxy, then its RSS."""
        out = {}
        for target in ("pgbouncer", "endpoint"):
            bp.pgbench_run(self.env(target), "-C", "-S", "-c4", "-j2", "-t",
                           str(max(1, self.config.churn_conns // 4)))
            pid = self.proxy_pid(target)
            assert pid is not None
            out[f"postgres/{target}"] = rss_kib(pid) / 1024
        return out

    def idle_rss(self, target: str) -> float:
        """KiB of proxy RSS per idle authenticated connection (``idle_conns`` open at once)."""
        pid = self.proxy_pid(target)
        assert pid is not None
        info = self.conninfo(target)
        before = rss_kib(pid)
        with hold_open(lambda: psycopg.connect(info, autocommit=True),
                       self.config.idle_conns):
            after = rss_kib(pid)
        return (after - before) / self.config.idle_conns

    def run_round(self, index: int) -> list[Sample]:
        """pgbench -C, pgbench -S, select 1 latency, COPY, idle RSS; proxy CPU alongside."""
        out: list[Sample] = []
        secs = str(self.config.seconds)
        order = rotate(list(self.TARGETS), index)
        for target in order:
            with cpu_of(self.proxy_pid(target)) as cpu:
                tps, done = bp.pgbench_run(self.env(target), "-C", "-S", "-c4", "-j2", "-T", secs)
            out.append(("pg.conn_rate", target, tps))
            if self.proxy_pid(target):
                out.append(("pg.cpu_per_conn", target, cpu[0] / done * 1000))
        for target in order:
            with cpu_of(self.proxy_pid(target)) as cpu:
                tps, done = bp.pgbench_run(self.env(target), "-S", "-c4", "-j2", "-T", secs)
            out.append(("pg.select_tps", target, tps))
            if self.proxy_pid(target):
                out.append(("pg.cpu_per_1k_tx", target, cpu[0] / (done / 1000) * 1000))
        for target in order:
            samples = bp.latency_samples(self.conninfo(target), self.config.latency_queries)
            out += [("pg.latency_p50", target, percentile(samples, 0.5)),
                    ("pg.latency_p99", target, percentile(samples, 0.99))]
        for target in order:
            cin, cout = bp.copy_round(self.env(target), self.data_file)
            out += [("pg.copy_in", target, self.copy_mb / cin),
                    ("pg.copy_out", target, self.copy_mb / cout)]
        for target in order:
            if self.proxy_pid(target):
                out.append(("pg.idle_rss", target, self.idle_rss(target)))
        return out

    def close(self) -> None:
        """Stop the endpoint, PgBouncer and PostgreSQL."""
        if self.child is not None:
            bp.stop_endpoint(self.child)
            self.child = None
        if self.pgbouncer is not None:
            from rdsiam_emulator.backends.procs import terminate

            terminate(self.pgbouncer)
            self.pgbouncer = None
        self.handle.stop()


# ------------------------------------------------------------------------------ MariaDB


class MariadbRig:
    """MariaDB with TLS + the endpoint; targets direct, endpoint."""

    TARGETS = ("direct", "endpoint")

    def __init__(self, config: Config, work: Path) -> None:
        from rdsiam_emulator.tls import EmulatorCA

        self.config = config
        self.work = work / "mariadb"
        self.work.mkdir()
        ca = EmulatorCA(self.work / "ca")
        cert = ca.server_certificate(["localhost", "127.0.0.1"])
        self.ca = str(ca.bundle_path)
        self.child: mp.process.BaseProcess | None = None
        self.server, self.bport = bm.start_mariadb(self.work, cert.cert_path, cert.key_path,
                                                   ca.bundle_path)
        try:
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            self.child = ctx.Process(
                target=bm.serve, daemon=True,
                args=(self.bport, str(self.work / "ca"), queue, resolve_loop_name("auto"),
                      str(self.work / "mysqld.sock")))
            self.child.start()
            self.eport = int(queue.get(timeout=120))
            with bm.connect(self.eport, bm.MASTER, bm.MASTER_PW, self.ca) as m, \
                    m.cursor() as cur:
                cur.execute("CREATE USER 'iam_bench'@'%' IDENTIFIED WITH AWSAuthenticationPlugin"
                            " AS 'RDS'")
                cur.execute("GRANT ALL ON app.* TO 'iam_bench'@'%'")
            self.rds = boto3.client("rds", region_name=bm.REGION, aws_access_key_id=bm.AKID,
                                    aws_secret_access_key=bm.SECRET)
        except BaseException:
            self.close()
            raise

    def token(self, host: str) -> str:
        """A fresh token for the endpoint as reached by ``host`` (127.0.0.1 or localhost)."""
        return str(self.rds.generate_db_auth_token(DBHostname=host, Port=self.eport,
                                                   DBUsername="iam_bench", Region=bm.REGION))

    def login(self, target: str, host: str = "127.0.0.1") -> tuple[int, str, str]:
        """(port, user, password) for ``target``."""
        if target == "direct":
            return self.bport, bm.MASTER, bm.MASTER_PW
        return self.eport, "iam_bench", self.token(host)

    @property
    def endpoint_pid(self) -> int:
        """The endpoint child's pid."""
        assert self.child is not None and self.child.pid is not None
        return self.child.pid

    def versions(self) -> dict[str, str]:
        """The MariaDB server version."""
        with bm.connect(self.bport, bm.MASTER, bm.MASTER_PW, self.ca) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
        return {"mariadb": str(row[0]) if row else "?"}

    def churn_round(self) -> dict[str, float]:
        """``churn_conns`` mariadb-slap --detach=1 connections through the endpoint, then RSS."""
        port, user, pw = self.login("endpoint")
        bm.slap(port, user, pw, self.ca, self.config.churn_conns, 4, True, verify=True)
        return {"mariadb/endpoint": rss_kib(self.endpoint_pid) / 1024}

    def latency(self, target: str) -> list[float]:
        """Sorted µs round trips of SELECT 1 on one PyMySQL connection."""
        port, user, pw = self.login(target, "localhost")
        with bm.connect(port, user, pw, self.ca) as conn, conn.cursor() as cur:
            for _ in range(100):
                cur.execute("SELECT 1")
                cur.fetchall()
            samples = []
            for _ in range(self.config.latency_queries):
                started = time.perf_counter()
                cur.execute("SELECT 1")
                cur.fetchall()
                samples.append((time.perf_counter() - started) * 1e6)
        return sorted(samples)

    def idle_rss(self) -> float:
        """KiB of endpoint RSS per idle authenticated connection."""
        port, user, pw = self.login("endpoint", "localhost")
        before = rss_kib(self.endpoint_pid)
        with hold_open(lambda: bm.connect(port, user, pw, self.ca), self.config.idle_conns):
            after = rss_kib(self.endpoint_pid)
        return (after - before) / self.config.idle_conns

    def run_round(self, index: int) -> list[Sample]:
        """mariadb-slap connections and SELECT 1, PyMySQL latency, bulk, idle RSS."""
        out: list[Sample] = []
        cfg = self.config
        order = rotate(list(self.TARGETS), index)
        for target in order:
            pid = self.endpoint_pid if target == "endpoint" else None
            port, user, pw = self.login(target)
            with cpu_of(pid) as cpu:
                rate = bm.slap(port, user, pw, self.ca, cfg.mysql_conns, 4, True, verify=True)
            out.append(("my.conn_rate", target, rate))
            if pid:
                out.append(("my.cpu_per_conn", target, cpu[0] / cfg.mysql_conns * 1000))
        for target in order:
            pid = self.endpoint_pid if target == "endpoint" else None
            port, user, pw = self.login(target)
            with cpu_of(pid) as cpu:
                rate = bm.slap(port, user, pw, self.ca, cfg.mysql_queries, 4, False,
                               verify=True)
            out.append(("my.select_tps", target, rate))
            if pid:
                out.append(("my.cpu_per_1k_tx", target,
                            cpu[0] / (cfg.mysql_queries / 1000) * 1000))
        for target in order:
            samples = self.latency(target)
            out += [("my.latency_p50", target, percentile(samples, 0.5)),
                    ("my.latency_p99", target, percentile(samples, 0.99))]
        # bulk_pair interleaves direct and endpoint batch by batch itself
        with bm.bulk_connections("mysqlclient", self.bport, self.eport, self.ca,
                                 self.token("localhost"), self.token("127.0.0.1")) as (d, e):
            got = bm.bulk_pair(d, e, cfg.bulk_mb, 1, self.endpoint_pid, self.server.pid)
        for target in self.TARGETS:
            out += [("my.bulk_in", target, got[f"insert {target}"] * 1.048576),
                    ("my.bulk_out", target, got[f"select {target}"] * 1.048576)]
        out.append(("my.idle_rss", "endpoint", self.idle_rss()))
        return out

    def close(self) -> None:
        """Stop the endpoint child and the server."""
        if self.child is not None:
            self.child.kill()
            self.child.join(10)
            self.child = None
        self.server.kill()
        self.server.wait()


# ------------------------------------------------------------------------------ verify, plugin


class VerifyRig:
    """verify_token throughput over genuine botocore tokens (bench_verify.py's)."""

    def __init__(self, config: Config, work: Path) -> None:
        from rdsiam_emulator.auth.credentials import StaticCredentials
        from rdsiam_emulator.clock import SystemClock

        table = bv.make_principals(8)
        self.tokens = bv.make_tokens(config.verify_tokens, table)
        self.creds = StaticCredentials(table)
        self.now = SystemClock().now()  # the tokens' signing time: valid however long the run

    def versions(self) -> dict[str, str]:
        """Nothing beyond the machine record."""
        return {}

    def churn_round(self) -> dict[str, float]:
        """No proxy here."""
        return {}

    def run_round(self, index: int) -> list[Sample]:
        """One pass over the tokens (CPU time, each verified once)."""
        secs = bv.run_optimised(self.tokens, self.creds, self.now)
        return [("verify.rate", "endpoint", len(self.tokens) / secs)]

    def close(self) -> None:
        """Nothing to stop."""


def compile_bytecode() -> str:
    """Compile the venv's and the project's modules once (``compileall``, skips what is up to
    date). With ``PYTHONDONTWRITEBYTECODE`` set (as on some CI machines) every pytest start
    would otherwise compile moto, botocore & co. from source, and both plugins' start-up would
    measure the compiler. Returns what was done, for the machine record."""
    import sysconfig

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                    sysconfig.get_paths()["purelib"], str(REPO / "src"),
                    str(REPO / "pytest_plugin")], env=env, capture_output=True, check=False)
    return (f"compileall before the rounds ({time.monotonic() - started:.0f} s); "
            f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}")


class PluginRig:
    """``pytest --rdsiam-emulator`` vs pytest-postgresql, a fresh subprocess each."""

    def __init__(self, config: Config, work: Path) -> None:
        self.config = config
        self.bytecode = "as found"
        if not config.quick:
            self.bytecode = compile_bytecode()

    def versions(self) -> dict[str, str]:
        """pytest and pytest-postgresql versions, and how the bytecode cache was prepared."""
        from importlib.metadata import version

        return {"pytest": version("pytest"), "pytest-postgresql": version("pytest-postgresql"),
                "bytecode_cache": self.bytecode}

    def churn_round(self) -> dict[str, float]:
        """No proxy here."""
        return {}

    def run_round(self, index: int) -> list[Sample]:
        """One suite run per plugin (order rotated)."""
        out: list[Sample] = []
        for plugin in rotate(list(bpl.PLUGINS), index):
            got = bpl.run_suite(self.config.plugin_tests, "postgres", plugin)
            out += [("plugin.first_test", plugin, got["first_test_s"]),
                    ("plugin.per_test", plugin, got["per_test_ms"])]
        return out

    def close(self) -> None:
        """Nothing to stop (each run cleans up after itself)."""


BENCHES: dict[str, Callable[[Config, Path], Rig]] = {
    "postgres": PostgresRig,
    "mariadb": MariadbRig,
    "verify": VerifyRig,
    "plugin": PluginRig,
}
"""Every bench the runner runs, in order. Add a row to add a bench."""


# ------------------------------------------------------------------------------ results


def machine_record() -> dict[str, object]:
    """Cores, CPU model, memory, Python, OpenSSL, event loop, kernel."""
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {"cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
            "cpu_model": model, "memory": mem, "python": platform.python_version(),
            "openssl": ssl.OPENSSL_VERSION, "loop": resolve_loop_name("auto"),
            "platform": platform.platform(), "loadavg_at_start": list(os.getloadavg())}


def summarise(samples: list[tuple[int, str, str, float]], rounds: int) -> dict[str, object]:
    """Per metric: per-round values per target, medians, per-round ratios and their median."""
    metrics: dict[str, object] = {}
    for mid, spec in METRICS.items():
        values: dict[str, list[float | None]] = {}
        for r, m, target, value in samples:
            if m == mid:
                values.setdefault(target, [None] * rounds)[r] = value
        if not values:
            continue
        medians = {t: statistics.median([v for v in vs if v is not None])
                   for t, vs in values.items()}
        ratios = {}
        for a, b in RATIO_PAIRS:
            if a in values and b in values:
                per_round = [x / y for x, y in zip(values[a], values[b], strict=True)
                             if x is not None and y]
                ratios[f"{a}/{b}"] = {"per_round": per_round,
                                      "median": statistics.median(per_round)}
        metrics[mid] = {**dataclasses.asdict(spec), "values": values, "median": medians,
                        "ratios": ratios}
    return metrics


IDLE_FIRST = "round 1, the first time each process holds them"
"""How the idle-RSS target and figures name the round they use."""


def evaluate_targets(metrics: dict[str, dict[str, object]],
                     churn: dict[str, object]) -> list[dict[str, object]]:
    """The issue's targets with the measured value and met / not met (None: not measured)."""

    def ratio(mid: str) -> float | None:
        m = metrics.get(mid)
        r = m["ratios"].get("endpoint/pgbouncer") if m else None  # type: ignore[attr-defined]
        return None if r is None else float(r["median"])

    def median(mid: str, target: str) -> float | None:
        m = metrics.get(mid)
        v = m["median"].get(target) if m else None  # type: ignore[attr-defined]
        return None if v is None else float(v)

    def first(mid: str, target: str) -> float | None:
        m = metrics.get(mid)
        v = m["values"].get(target) if m else None  # type: ignore[attr-defined]
        return None if not v or v[0] is None else float(v[0])

    growth: dict[str, float] = churn.get("growth", {})  # type: ignore[assignment]
    n = churn.get("rounds_run", 0)
    rows: list[tuple[str, str, float | None, str, float, str]] = [
        ("new-connection rate vs PgBouncer (PostgreSQL)", "≥ 1.0x", ratio("pg.conn_rate"),
         "x", 1.0, ">="),
        ("select-only TPS vs PgBouncer (PostgreSQL)", "≥ 1.0x", ratio("pg.select_tps"), "x",
         1.0, ">="),
        # round 1: later rounds reuse memory the same process freed earlier (PgBouncer then
        # shows ~0), so only the first holds a fresh cost
        (f"RSS per idle connection, PostgreSQL endpoint ({IDLE_FIRST})", "≤ 25 KB",
         first("pg.idle_rss", "endpoint"), "KiB", 25.0, "<="),
        (f"RSS per idle connection, MariaDB endpoint ({IDLE_FIRST})", "≤ 25 KB",
         first("my.idle_rss", "endpoint"), "KiB", 25.0, "<="),
        (f"RSS after {n} churn rounds vs after the first, PostgreSQL endpoint", "≤ 1.10x",
         growth.get("postgres/endpoint"), "x", 1.10, "<="),
        (f"RSS after {n} churn rounds vs after the first, MariaDB endpoint", "≤ 1.10x",
         growth.get("mariadb/endpoint"), "x", 1.10, "<="),
        ("plugin first test", "≤ 0.8 s", median("plugin.first_test", "rdsiam"), "s", 0.8, "<="),
    ]
    out = []
    for name, target, value, unit, bound, op in rows:
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out.append({"name": name, "target": target, "measured": value, "unit": unit,
                    "met": met})
    return out


def figures(metrics: dict[str, dict[str, object]], churn: dict[str, object],
            config: Config) -> list[plots.Figure]:
    """One figure per question, from whatever was measured."""

    def vals(mid: str) -> dict[str, list[float]]:
        """Per-round values per target; ``<metric>/first``: round 1 only."""
        base, _, part = mid.partition("/")
        m = metrics.get(base)
        got: dict[str, list[float]] = dict(m["values"]) if m else {}  # type: ignore[call-overload]
        return {t: v[:1] for t, v in got.items()} if part == "first" else got

    def panels(*specs: tuple[str, str, list[tuple[str, str]]]) -> list[plots.Panel]:
        out = []
        for title, unit, groups in specs:
            got = [(label, vals(mid)) for label, mid in groups if vals(mid)]
            if got:
                out.append(plots.Panel(title, unit, got))
        return out

    session = ("PgBouncer in session mode reuses its server connections; every endpoint login "
               "is a real backend session (as on RDS).")
    figs = [
        plots.Figure("connections.png", "How many new TLS connections per second?", panels(
            ("PostgreSQL: pgbench -S -C -c4 -j2", "connections/s", [("", "pg.conn_rate")]),
            ("MariaDB: mariadb-slap --detach=1 -c4", "connections/s", [("", "my.conn_rate")])),
            session),
        plots.Figure("select_tps.png", "How many small queries per second?", panels(
            ("PostgreSQL: pgbench -S -c4 -j2", "transactions/s", [("", "pg.select_tps")]),
            ("MariaDB: mariadb-slap -c4 SELECT 1", "queries/s", [("", "my.select_tps")])),
            session),
        plots.Figure("latency.png", "How long does one select 1 take?", panels(
            ("PostgreSQL (psycopg, one connection)", "µs",
             [("p50", "pg.latency_p50"), ("p99", "pg.latency_p99")]),
            ("MariaDB (PyMySQL, one connection)", "µs",
             [("p50", "my.latency_p50"), ("p99", "my.latency_p99")]))),
        plots.Figure("bulk.png", "How fast do bulk writes and reads go?", panels(
            (f"PostgreSQL: psql \\copy, {config.copy_mb} MiB", "MB/s",
             [("COPY in", "pg.copy_in"), ("COPY out", "pg.copy_out")]),
            (f"MariaDB: mysqlclient, {config.bulk_mb} x 1 MiB rows", "MB/s",
             [("insert", "my.bulk_in"), ("select", "my.bulk_out")]))),
        plots.Figure("idle_rss.png", "How much proxy memory does an idle connection cost?",
                     panels((f"{config.idle_conns} idle connections: {IDLE_FIRST}",
                             "KiB of proxy RSS per connection",
                             [("PostgreSQL", "pg.idle_rss/first"),
                              ("MariaDB", "my.idle_rss/first")]),
                            ("all rounds (later ones reuse memory freed earlier)",
                             "KiB of proxy RSS per connection",
                             [("PostgreSQL", "pg.idle_rss"), ("MariaDB", "my.idle_rss")])),
                     "PgBouncer holds no server connection for an idle client; the endpoint "
                     "holds a real backend session. Round 1 is the cost a fresh process pays; "
                     "in later rounds both proxies reuse memory they freed earlier, so their "
                     "figures fall towards 0. Target (on round 1): 25 KB (dashed)."),
        plots.Figure("proxy_cpu.png", "How much proxy CPU does the work cost?", panels(
            ("per new connection", "ms CPU (utime+stime)",
             [("PostgreSQL", "pg.cpu_per_conn"), ("MariaDB", "my.cpu_per_conn")]),
            ("per 1,000 transactions", "ms CPU (utime+stime)",
             [("PostgreSQL", "pg.cpu_per_1k_tx"), ("MariaDB", "my.cpu_per_1k_tx")])),
            session),
        plots.Figure("verify.png", "How many tokens can one core verify per second?", panels(
            (f"{config.verify_tokens} distinct botocore tokens", "verifications/s (CPU time)",
             [("", "verify.rate")]))),
        plots.Figure("plugin.png", "How long does a pytest run wait for its database?", panels(
            ("first test (server start included)", "s", [("", "plugin.first_test")]),
            ("each further test (setup + teardown)", "ms", [("", "plugin.per_test")])),
            "Target for the first test: 0.8 s (dashed)."),
    ]
    for fig in figs:
        for p in fig.panels:
            if p.unit.startswith("KiB"):
                p.reference, p.reference_label = 25.0, "target 25 KB"
            if p.title.startswith("first test"):
                p.reference, p.reference_label = 0.8, "target 0.8 s"
    rss: dict[str, list[float]] = churn.get("rss_mib", {})  # type: ignore[assignment]
    if rss:
        churn_panels = []
        for engine in ("postgres", "mariadb"):
            groups = [(plots.LABELS.get(k.split("/")[1], k), {k.split("/")[1]: v})
                      for k, v in rss.items() if k.startswith(engine)]
            if groups:
                churn_panels.append(plots.Panel(
                    "PostgreSQL" if engine == "postgres" else "MariaDB", "RSS (MiB)", groups))
        figs.append(plots.Figure(
            "churn_rss.png", "Does proxy memory stay flat under connection churn?",
            churn_panels, f"RSS after each round of {config.churn_conns} connections opened and "
            "closed. Target: last round within 10 % of the first.", kind="lines"))
    advantage: list[tuple[str, dict[str, list[float]]]] = []
    for label, mid in (("conn/s", "pg.conn_rate"), ("TPS", "pg.select_tps"),
                       ("p50", "pg.latency_p50"), ("p99", "pg.latency_p99"),
                       ("COPY in", "pg.copy_in"), ("COPY out", "pg.copy_out"),
                       ("CPU/conn", "pg.cpu_per_conn"), ("CPU/1k tx", "pg.cpu_per_1k_tx"),
                       ("RSS/idle, round 1", "pg.idle_rss")):
        m = metrics.get(mid)
        r = m["ratios"].get("endpoint/pgbouncer") if m else None  # type: ignore[attr-defined]
        if r:
            rounds = r["per_round"][:1] if mid == "pg.idle_rss" else r["per_round"]
            per = [x if METRICS[mid].better == "higher" else 1 / x for x in rounds if x > 0]
            advantage.append((label, {"endpoint": per}))
    if advantage:
        figs.append(plots.Figure(
            "vs_pgbouncer.png", "Is the endpoint ahead of PgBouncer?",
            [plots.Panel("PostgreSQL, endpoint vs PgBouncer per round (> 1: endpoint better)",
                         "advantage (x, log scale)", advantage, 1.0, "parity", log=True)],
            session + " Lower-is-better rows are inverted (PgBouncer / endpoint)."))
    return [f for f in figs if f.panels]


def markdown(result: dict[str, object]) -> str:
    """The summary tables (for docs/benchmarks/README.md). A ``--quick`` result is headed as a
    smoke run and its targets are not judged: its figures only show that every bench runs."""
    metrics: dict[str, dict[str, object]] = result["metrics"]  # type: ignore[assignment]
    quick = bool(result.get("config", {}).get("quick"))  # type: ignore[attr-defined]
    lines = [SMOKE_BANNER, ""] if quick else []
    first = 'row (smoke run, "quick": true)' if quick else "row"
    lines += [f"| {first} | unit | direct TLS | PgBouncer | endpoint | endpoint / PgBouncer | "
              "endpoint / direct |", "|---|---|---|---|---|---|---|"]

    def cell(d: dict[str, object], k: str, fmt: str = "{:,.1f}") -> str:
        v = d.get(k)
        if isinstance(v, dict):
            v = v["median"]
        return "–" if v is None else fmt.format(v)

    for mid, m in metrics.items():
        med: dict[str, object] = m["median"]  # type: ignore[assignment]
        rat: dict[str, object] = m["ratios"]  # type: ignore[assignment]
        if mid.startswith("plugin."):
            continue
        lines.append(f"| {m['question']} | {m['unit']} | {cell(med, 'direct')} | "
                     f"{cell(med, 'pgbouncer')} | {cell(med, 'endpoint')} | "
                     f"{cell(rat, 'endpoint/pgbouncer', '{:.2f}')} | "
                     f"{cell(rat, 'endpoint/direct', '{:.2f}')} |")
        if mid.endswith(".idle_rss"):  # the median is of long-lived processes: round 1 too
            vals: dict[str, list[float | None]] = m["values"]  # type: ignore[assignment]
            one = {t: v[0] for t, v in vals.items() if v and v[0] is not None}
            ratio = ({"endpoint/pgbouncer": one["endpoint"] / one["pgbouncer"]}
                     if one.get("pgbouncer") and "endpoint" in one else {})
            lines.append(f"| {m['question']}, {IDLE_FIRST} | {m['unit']} | – | "
                         f"{cell(one, 'pgbouncer')} | {cell(one, 'endpoint')} | "
                         f"{cell(ratio, 'endpoint/pgbouncer', '{:.2f}')} | – |")
    lines += ["", "| plugin | unit | pytest --rdsiam-emulator | pytest-postgresql | ratio |",
              "|---|---|---|---|---|"]
    for mid in ("plugin.first_test", "plugin.per_test"):
        if mid in metrics:
            m = metrics[mid]
            med = m["median"]  # type: ignore[assignment]
            rat = m["ratios"]  # type: ignore[assignment]
            lines.append(f"| {m['question']} | {m['unit']} | {cell(med, 'rdsiam', '{:.2f}')} | "
                         f"{cell(med, 'pytest-postgresql', '{:.2f}')} | "
                         f"{cell(rat, 'rdsiam/pytest-postgresql', '{:.2f}')} |")
    if quick:
        lines += ["", '| target (smoke run, "quick": true) | goal | smoke figure | met |',
                  "|---|---|---|---|"]
    else:
        lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
    for t in result["targets"]:  # type: ignore[attr-defined]
        v = t["measured"]
        shown = "not measured" if v is None else f"{v:.2f} {t['unit']}"
        met = {True: "met", False: "**not met**", None: "–"}[t["met"]]
        if quick:  # seconds-long runs at tiny sizes decide nothing
            met = "not judged (smoke run)"
        lines.append(f"| {t['name']} | {t['target']} | {shown} | {met} |")
    if quick:
        lines += ["", SMOKE_BANNER]
    return "\n".join(lines)


SMOKE_BANNER = ("**Smoke run (`--quick`, results.json `\"quick\": true`): one-second runs at tiny "
                "sizes, to check that every bench works. These figures are not results; the "
                "targets are judged only on a full run.**")


def run(config: Config, out_dir: Path) -> dict[str, object]:
    """Run every selected bench; write ``results.json`` and the PNGs into ``out_dir``.

    Returns the result dict (the JSON's content). Servers are stopped however the run ends.
    """
    names = [n for n in BENCHES if not config.only or n in config.only]
    started = datetime.now(UTC)
    work = Path(tempfile.mkdtemp(prefix="rdsiam-bench-all-"))
    work.chmod(0o711)
    rigs: dict[str, Rig] = {}
    samples: list[tuple[int, str, str, float]] = []
    rounds_meta: list[dict[str, object]] = []
    churn: dict[str, object] = {"conns_per_round": config.churn_conns, "rounds": [],
                                "rss_mib": {}, "rounds_run": 0}
    machine = machine_record()
    try:
        for name in names:
            print(f"[bench] starting {name}", flush=True)
            rigs[name] = BENCHES[name](config, work)
        for rig in rigs.values():
            machine.update(rig.versions())
        rss: dict[str, list[float]] = churn["rss_mib"]  # type: ignore[assignment]
        for c in range(config.churn_rounds if any(n in rigs for n in ("postgres", "mariadb"))
                       else 0):
            load = list(os.getloadavg())
            for rig in rigs.values():
                for key, value in rig.churn_round().items():
                    rss.setdefault(key, []).append(value)
            churn["rounds"].append({"index": c, "loadavg_before": load,  # type: ignore[attr-defined]
                                    "loadavg_after": list(os.getloadavg())})
            churn["rounds_run"] = c + 1
            print(f"[bench] churn round {c + 1}/{config.churn_rounds}: "
                  + ", ".join(f"{k} {v[-1]:.1f} MiB" for k, v in rss.items()), flush=True)
        churn["growth"] = {k: v[-1] / v[0] for k, v in rss.items() if v}
        for r in range(config.rounds):
            load_before = list(os.getloadavg())
            t0 = time.monotonic()
            for name in rotate(list(rigs), r):
                samples += [(r, m, t, v) for m, t, v in rigs[name].run_round(r)]
            rounds_meta.append({"index": r, "loadavg_before": load_before,
                                "loadavg_after": list(os.getloadavg()),
                                "seconds": round(time.monotonic() - t0, 1)})
            print(f"[bench] round {r + 1}/{config.rounds} done in "
                  f"{rounds_meta[-1]['seconds']} s, load {load_before[0]:.1f} -> "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    finally:
        for rig in rigs.values():
            with contextlib.suppress(Exception):
                rig.close()
        shutil.rmtree(work, ignore_errors=True)
    metrics = summarise(samples, config.rounds)
    result: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "command": "uv run --frozen python -m bench " + " ".join(sys.argv[1:]),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(config),
        "machine": machine,
        "rounds": rounds_meta,
        "churn": churn,
        "metrics": metrics,
        "notes": {
            "pgbouncer": "session mode: PgBouncer reuses its server connections across client "
                         "connections, and an idle client holds no server connection; every "
                         "endpoint login is a real backend session as on RDS",
            "mysql_proxies": "no ProxySQL or MaxScale package in Debian 12 (apt-cache policy "
                             "proxysql maxscale: none), so MariaDB compares direct and endpoint",
            "pytest_postgresql": "as root its run goes through setpriv to the unprivileged "
                                 "account (PostgreSQL refuses root); ours runs as the caller",
        },
    }
    result["targets"] = evaluate_targets(metrics, churn)  # type: ignore[arg-type]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [plots.render(f, out_dir).name
               for f in figures(metrics, churn, config)]  # type: ignore[arg-type]
    result["figures"] = written
    (out_dir / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False)
                                          + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").split(
        "\n")[0])
    defaults = Config()
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=int, help="length of each pgbench run")
    ap.add_argument("--copy-mb", type=int, help="PostgreSQL COPY size (MiB)")
    ap.add_argument("--bulk-mb", type=int, help="MariaDB bulk size (MiB)")
    ap.add_argument("--idle-conns", type=int, help="idle connections held open for RSS")
    ap.add_argument("--churn-rounds", type=int)
    ap.add_argument("--churn-conns", type=int, help="connections opened+closed per churn round")
    ap.add_argument("--latency-queries", type=int)
    ap.add_argument("--mysql-conns", type=int, help="mariadb-slap connections per round")
    ap.add_argument("--mysql-queries", type=int, help="mariadb-slap SELECT 1 per round")
    ap.add_argument("--verify-tokens", type=int)
    ap.add_argument("--plugin-tests", type=int, help="tests per pytest run (>= 2)")
    ap.add_argument("--pgbouncer-auth", choices=("scram-sha-256", "plain"))
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHES)}")
    ap.add_argument("--quick", action="store_true", help="smoke run: seconds, tiny sizes")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="where results.json and the PNGs go (default docs/benchmarks)")
    ap.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                    help="run nothing: print the summary tables of an earlier results.json")
    ap.add_argument("--replot", action="store_true",
                    help="with --report: render its figures again into --out")
    args = ap.parse_args(argv)
    if args.report:
        result = json.loads(args.report.read_text())
        # judged again from the figures: a JSON from before a change to a target's rule
        result["targets"] = evaluate_targets(result["metrics"], result["churn"])
        print(markdown(result))
        if args.replot:  # the figures again from the JSON (e.g. after a change to plots.py)
            saved = Config(**{**result["config"], "only": tuple(result["config"]["only"])})
            for fig in figures(result["metrics"], result["churn"], saved):
                plots.render(fig, args.out)
        return 0
    values = dataclasses.asdict(defaults) | (QUICK if args.quick else {})
    for key in values:
        given = getattr(args, key, None)
        if given is not None and key not in ("only", "quick"):
            values[key] = given
    values["quick"] = args.quick
    values["only"] = tuple(args.only.split(",")) if args.only else ()
    unknown = set(values["only"]) - set(BENCHES)
    if unknown:
        ap.error(f"unknown bench(es): {', '.join(sorted(unknown))}")
    if values["plugin_tests"] < 2 or values["rounds"] < 1:
        ap.error("--plugin-tests needs >= 2 and --rounds >= 1")
    config = Config(**values)
    result = run(config, args.out)
    print(markdown(result))
    figures_written = len(result["figures"])  # type: ignore[arg-type]
    print(f"[bench] wrote {args.out / 'results.json'} and {figures_written} figures"
          + (" of a smoke run (not results)" if config.quick else ""))
    return 0
