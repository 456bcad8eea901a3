"""Load and soak (issue #16): sustained new IAM connections, many idle sessions, throttling.

    uv run --frozen python bench/soak.py [--engines postgres,mysql] [--seconds 60] [--idle 1000]
        [--throttle-seconds 5] [--out soak.json] [--phases soak,idle,throttle] [--merge]

(``--help`` lists every option with its default; the published figures are written with
``--out docs/benchmarks/soak.json``.) Per engine, against a local server (the backends
package's; PostgreSQL with TLS and TCP for the direct baseline, both with room for
max(--idle, 300) + 100 connections) and the endpoint in a child process (so clients do not
share its CPU), three phases, named as ``--phases`` names them:

1. ``soak``: sustained new IAM connections through the endpoint for --seconds at the target
   rate. PostgreSQL: first the direct TLS connection rate, ``pgbench -n -C -c4 -j2`` with a
   ``select 1`` script for --direct-seconds (libpq in C; the master user's password), then
   ``pgbench -C -R <that rate>`` through the endpoint; MariaDB 200/s, RDS's documented
   budget (``mariadb-slap --detach=1``, a C client, in one-second batches of 200 connections, 4
   at a time). Each connection is a TLS handshake, a token check and a real backend login.
   Failures, the achieved rate and, every second, the endpoint's RSS and open fds are recorded.
   Throttling is off in this phase (clients reuse one token; a reused token is never throttled
   anyway).
2. ``idle``: --idle authenticated sessions opened one after the other and held (psycopg /
   PyMySQL in this process), then all closed: the endpoint's RSS and fds before, with all open
   and after, and its task/connection registry (``active_tasks``/``active_connections``) after.
3. ``throttle``: throttling at the real rate (a second endpoint process with RDS's limits on):
   clients in 4 processes (psycopg / PyMySQL) open connections as fast as they can, each with a
   token of its own (distinct tokens, one IAM identity), for --throttle-seconds; then 60 such
   clients, each signed by its own identity. Python drivers cannot open 200 connections a second
   on a loaded 2-core machine, so then hand-driven TLS clients are held at the token request and
   send their tokens at the same moment: 300 distinct tokens of one identity, 60 identities, and
   one token 250 times (that endpoint's handshake timeout is 120 s so the first-held clients wait
   for the last). Refusals are counted by their wire text and by the endpoint's reason.

Progress lines go to stderr. Writes one JSON document (machine, commit, command, load average
before and after, every figure and the per-second samples, and ``unexpected``: per engine, any
failure that is not what its phase tests, e.g. a throttle burst refused for the server's own
connection limit) to --out; prints a summary that flags those. The work directory (CA key, TLS
files) is removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_postgres  # the direct-TLS PostgreSQL set-up is shared

REGION = "us-east-1"
PG_HOST = bench_postgres.RDS_HOST
MY_HOST = "localhost"
SECRET = "soak-secret-0123456789abcdefghijklmnopqr"
ACCOUNT = "123456789012"
AKID = "AKIASOAKMAINKEY00000"
SHARED_KEYS = [f"AKIASOAKSHARED{i:06d}" for i in range(4000)]
OWN_KEYS = [f"AKIASOAKOWNKEY{i:06d}" for i in range(60)]
IAM_USER = "soak_iam"
PG_BIN = bench_postgres.PG_BIN


# ------------------------------------------------------------------------------ endpoint process


def serve(args: argparse.Namespace) -> None:
    """Child process: the endpoint until stdin closes. Prints its port; answers ``stats`` lines
    with a JSON line (registry counts and event reasons)."""
    from rdsiam_emulator.auth.authenticator import Authenticator
    from rdsiam_emulator.auth.credentials import ResolvedCredential, StaticCredentials
    from rdsiam_emulator.auth.endpoint_spec import Endpoint
    from rdsiam_emulator.auth.throttle import Throttle
    from rdsiam_emulator.endpoint.backend import BackendAddress
    from rdsiam_emulator.endpoint.event_loops import resolve_loop_name
    from rdsiam_emulator.endpoint.mysql import MysqlEndpoint, MysqlEndpointSettings
    from rdsiam_emulator.endpoint.postgres import PostgresEndpoint, PostgresEndpointSettings
    from rdsiam_emulator.events import EventLog
    from rdsiam_emulator.tls import EmulatorCA, endpoint_names

    if resolve_loop_name("auto") == "uvloop":
        import uvloop

        uvloop.install()
    table: dict[str, Any] = {AKID: (SECRET, None)}
    table.update({k: ResolvedCredential(k, SECRET, principal_arn=f"arn:aws:iam::{ACCOUNT}:"
                                        "user/soak", account_id=ACCOUNT) for k in SHARED_KEYS})
    table.update({k: ResolvedCredential(k, SECRET, principal_arn=f"arn:aws:iam::{ACCOUNT}:"
                                        f"user/own-{i}", account_id=ACCOUNT)
                  for i, k in enumerate(OWN_KEYS)})
    events = EventLog(maxlen=100_000)

    async def main() -> None:
        ca = EmulatorCA(Path(args.ca_dir))
        host = PG_HOST if args.engine == "postgres" else MY_HOST
        cert = ca.server_certificate(endpoint_names([host, "127.0.0.1"]))
        target = BackendAddress("127.0.0.1", args.backend_port, args.admin_user,
                                args.admin_password, unix_socket=args.backend_socket)
        cls: Any = PostgresEndpoint if args.engine == "postgres" else MysqlEndpoint
        settings_cls: Any = (PostgresEndpointSettings if args.engine == "postgres"
                             else MysqlEndpointSettings)
        # held clients wait for all the others to be ready: more than MySQL's 10 s default
        settings = settings_cls(handshake_timeout=120.0) if args.throttle else None
        ep = cls(backend=target, authenticator=None, instance_secret=b"soak-secret" * 3,
                 tls_context=cert.server_context(), settings=settings)
        await ep.start()
        ep.authenticator = Authenticator(
            instance_id="soak", engine=args.engine,
            endpoint=Endpoint(host, ep.port, REGION, aliases=("localhost", "127.0.0.1")),
            credentials=StaticCredentials(table), events=events,
            throttle=Throttle() if args.throttle else None)
        print(ep.port, flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "stats":
                reasons = Counter(e.reason.value if e.reason else "allow" for e in events.all())
                print(json.dumps({"tasks": ep.active_tasks, "connections": ep.active_connections,
                                  "events": dict(reasons)}), flush=True)
        await ep.close()

    asyncio.run(main())


class Child:
    """The endpoint process: its port, ``stats()``, RSS and fd count."""

    def __init__(self, engine: str, ca_dir: Path, handle: Any, throttle: bool = False) -> None:
        socket_arg = handle.unix_socket
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--engine", engine, "--ca-dir", str(ca_dir),
             "--backend-port", str(handle.port), "--admin-user", handle.admin_user,
             f"--admin-password={handle.admin_password}",
             *(["--backend-socket", socket_arg] if socket_arg else []),
             *(["--throttle"] if throttle else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.port = int(self.proc.stdout.readline())
        self.pid = self.proc.pid

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Sampler:
    """The endpoint's RSS (MB) and open fds every second, in a thread."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append({"t": round(time.monotonic() - self._t0, 2),
                                 "rss_mb": round(self.child.rss_mb(), 2),
                                 "fds": self.child.fds()})
            self._stop.wait(1.0)

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def token(host: str, port: int, key: str = AKID, user: str = IAM_USER) -> str:
    rds = boto3.client("rds", region_name=REGION, aws_access_key_id=key,
                       aws_secret_access_key=SECRET)
    return str(rds.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user))


# ------------------------------------------------------------------------------ clients


def pgbench_connections(env: dict[str, str], script: Path, seconds: int,
                        rate: float | None = None) -> dict[str, Any]:
    """``pgbench -n -C -c4 -j2`` running ``select 1`` (a new connection per transaction)."""
    cmd = [str(PG_BIN / "pgbench"), "-n", "-C", "-c4", "-j2", "-T", str(seconds),
           "-f", str(script)]
    if rate is not None:
        cmd += ["-R", f"{rate:.0f}"]
    started = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    done = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    aborted = [line for line in out.stderr.splitlines() if "aborted" in line]
    return {"command": " ".join(cmd[1:]), "returncode": out.returncode,
            "connections": int(done.group(1)) if done else 0,
            "failed": (int(failed.group(1)) if failed else 0) + len(aborted),
            "errors": out.stderr.strip().splitlines()[:5], "seconds": round(elapsed, 2),
            "rate": round(int(done.group(1)) / seconds, 1) if done else 0.0}


def slap_batches(port: int, pw: str, ca: Path, rate: int, seconds: int) -> dict[str, Any]:
    """mariadb-slap --detach=1 in one-second batches of ``rate`` connections (4 at a time)."""
    cmd = ["mariadb-slap", "--no-defaults", "-h", "127.0.0.1", "-P", str(port), "-u", IAM_USER,
           f"--password={pw}", f"--ssl-ca={ca}", "--concurrency=4",
           f"--number-of-queries={rate}", "--query=SELECT 1", "--create-schema=app",
           "--no-drop", "--iterations=1", "--detach=1"]
    done = failed = 0
    errors: list[str] = []
    started = time.monotonic()
    second = 0
    while time.monotonic() - started < seconds:  # a slow batch is not made up for
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode == 0:
            done += rate
        else:
            failed += 1
            errors.append(out.stderr.strip()[:300])
        second += 1
        wait = started + second - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    elapsed = time.monotonic() - started
    shown = [a if "password" not in a else "--password=<token>" for a in cmd[1:]]
    return {"command": " ".join(shown) + " (once a second)", "connections": done,
            "failed_batches": failed, "failed": failed, "errors": errors[:5],
            "seconds": round(elapsed, 2), "rate": round(done / elapsed, 1)}


def open_session(engine: str, port: int, ca: Path, password: str) -> Any:
    if engine == "postgres":
        return psycopg.connect(host=PG_HOST, hostaddr="127.0.0.1", port=port, user=IAM_USER,
                               password=password, dbname="app", sslmode="verify-full",
                               sslrootcert=str(ca), connect_timeout=30)
    return pymysql.connect(host=MY_HOST, port=port, user=IAM_USER, password=password,
                           ssl={"ca": str(ca)}, connect_timeout=30)


def burst_worker(engine: str, port: int, ca: str, tokens: list[str],
                 out: mp.Queue, seconds: float = 600.0) -> None:  # type: ignore[type-arg]
    """Opens one connection per token as fast as it can, for at most ``seconds``; reports
    outcomes by text."""
    results: Counter[str] = Counter()
    started = time.monotonic()
    for tok in tokens:
        if time.monotonic() - started > seconds:
            break
        try:
            open_session(engine, port, Path(ca), tok).close()
            results["ok"] += 1
        except (psycopg.Error, pymysql.err.Error) as exc:
            text = re.sub(r'port \d+', "port <p>", str(exc))
            results[text] += 1
    out.put((dict(results), time.monotonic() - started))


def held_client(engine: str, port: int, ca: Path) -> ssl.SSLSocket:
    """A TLS client that named the IAM user and was asked for its token, driven by hand so that
    hundreds can send their tokens at the same moment."""
    from rdsiam_emulator.protocols.mysql.constants import Capability as Cap
    from rdsiam_emulator.protocols.mysql.messages import HandshakeResponse
    from rdsiam_emulator.protocols.mysql.packets import PacketDecoder, encode_packet
    from rdsiam_emulator.protocols.postgres import codec

    raw = socket.create_connection(("127.0.0.1", port), timeout=60)
    context = ssl.create_default_context(cafile=str(ca))
    if engine == "postgres":
        raw.sendall(codec.ssl_request())
        assert raw.recv(1) == b"S"
        tls = context.wrap_socket(raw, server_hostname=PG_HOST)
        tls.sendall(codec.startup_message({"user": IAM_USER, "database": "app"}))
        reader = codec.MessageReader()
        while reader.next_message() is None:
            reader.feed(tls.recv(65536))
        return tls
    decoder = PacketDecoder()
    while not decoder.feed(raw.recv(65536)):
        pass
    caps = int(Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH | Cap.SSL)
    raw.sendall(encode_packet(1, HandshakeResponse(caps, 1 << 24, 45, b"\0" * 23,
                                                   is_ssl_request=True).build()))
    tls = context.wrap_socket(raw, server_hostname=MY_HOST)
    tls.sendall(encode_packet(2, HandshakeResponse(
        caps, 1 << 24, 45, b"\0" * 23, user=IAM_USER.encode(), auth_response=b"\1" * 20,
        auth_plugin="mysql_native_password").build()))
    decoder = PacketDecoder()
    while not decoder.feed(tls.recv(65536)):
        pass
    return tls


def held_answer(engine: str, tls: ssl.SSLSocket) -> str:
    """"ok" or the refusal as on the wire."""
    from rdsiam_emulator.protocols.mysql.messages import ErrPacket
    from rdsiam_emulator.protocols.mysql.packets import PacketDecoder
    from rdsiam_emulator.protocols.postgres import codec

    if engine == "postgres":
        reader = codec.MessageReader(10_000_000)
        while True:
            msg = reader.next_message()
            if msg is None:
                data = tls.recv(65536)
                if not data:
                    return "closed"
                reader.feed(data)
            elif msg.type == b"E":
                f = codec.parse_fields(msg.body)
                return f"{f['S']} {f['C']} {f['M']}"
            elif msg.type == b"Z":
                return "ok"
    decoder = PacketDecoder()
    while True:
        data = tls.recv(65536)
        if not data:
            return "closed"
        packets = decoder.feed(data)
        if packets:
            payload = packets[0].payload
            if payload[0] == 0:
                return "ok"
            err = ErrPacket.parse(payload)
            return f"{err.code} {err.message}"


def held_burst(engine: str, child: Child, ca: Path, tokens: list[str]) -> dict[str, Any]:
    """All clients held at the token request, then every token sent at once."""
    from rdsiam_emulator.protocols.mysql.packets import encode_packet
    from rdsiam_emulator.protocols.postgres import codec

    clients = [held_client(engine, child.port, ca) for _ in tokens]
    before = child.stats()["events"]
    started = time.monotonic()
    for tls, tok in zip(clients, tokens, strict=True):
        tls.sendall(codec.password_message(tok) if engine == "postgres"
                    else encode_packet(4, tok.encode() + b"\0"))
    sent = time.monotonic() - started
    outcomes = Counter(held_answer(engine, tls) for tls in clients)
    answered = time.monotonic() - started
    for tls in clients:
        tls.close()
    after = child.stats()["events"]
    return {"clients": len(tokens), "tokens_sent_in_s": round(sent, 3),
            "all_answered_in_s": round(answered, 2), "outcomes": dict(outcomes),
            "event_reasons": {k: after.get(k, 0) - before.get(k, 0) for k in after
                              if after.get(k, 0) - before.get(k, 0)}}


def throttle_run(engine: str, ca_dir: Path, handle: Any, ca: Path,
                 seconds: int) -> dict[str, Any]:
    child = Child(engine, ca_dir, handle, throttle=True)
    try:
        host = PG_HOST if engine == "postgres" else MY_HOST
        per_proc = 120 * seconds  # more than a process can open in that time here
        procs = 4
        keys = SHARED_KEYS[:per_proc * procs]
        tokens = [token(host, child.port, k) for k in keys]
        queue: mp.Queue[Any] = mp.Queue()
        before = child.stats()["events"]
        started = time.monotonic()
        workers = [mp.Process(target=burst_worker,
                              args=(engine, child.port, str(ca),
                                    tokens[i::procs][:per_proc], queue, seconds))
                   for i in range(procs)]
        for w in workers:
            w.start()
        outcomes: Counter[str] = Counter()
        for _ in workers:
            got, _secs = queue.get()
            outcomes.update(got)
        for w in workers:
            w.join()
        elapsed = time.monotonic() - started
        tokens_phase = {"clients": f"{procs} processes, one distinct token per connection "
                                   "(one IAM identity)",
                        "attempts": sum(outcomes.values()), "seconds": round(elapsed, 2),
                        "attempt_rate": round(sum(outcomes.values()) / elapsed, 1),
                        "outcomes": dict(outcomes), "endpoint": child.stats()}
        after = tokens_phase["endpoint"]["events"]
        tokens_phase["event_reasons"] = {k: after.get(k, 0) - before.get(k, 0) for k in after
                                         if after.get(k, 0) - before.get(k, 0)}
        progress(f"{engine}: throttle: drivers, distinct tokens: "
                 f"{tokens_phase['event_reasons']}")
        idents = [token(host, child.port, k) for k in OWN_KEYS]
        time.sleep(1.5)  # an empty window
        before = child.stats()["events"]
        queue2: mp.Queue[Any] = mp.Queue()
        workers = [mp.Process(target=burst_worker,
                              args=(engine, child.port, str(ca), idents[i::6], queue2))
                   for i in range(6)]
        for w in workers:
            w.start()
        outcomes2: Counter[str] = Counter()
        for _ in workers:
            outcomes2.update(queue2.get()[0])
        for w in workers:
            w.join()
        after = child.stats()["events"]
        progress(f"{engine}: throttle: drivers, 60 identities done")
        ident_phase = {"clients": "60 connections, each signed by its own IAM identity, from 6 "
                                  "processes at once",
                       "outcomes": dict(outcomes2),
                       "event_reasons": {k: after.get(k, 0) - before.get(k, 0) for k in after
                                         if after.get(k, 0) - before.get(k, 0)}}
        time.sleep(1.5)
        progress(f"{engine}: throttle: held clients (300 tokens, 60 identities, 1 token x250)")
        held_tokens = held_burst(engine, child, ca,
                                 [token(host, child.port, k) for k in SHARED_KEYS[-300:]])
        time.sleep(1.5)
        held_idents = held_burst(engine, child, ca, idents)
        time.sleep(1.5)
        reused = held_burst(engine, child, ca, [idents[0]] * 250)
        return {"drivers_distinct_tokens": tokens_phase, "drivers_distinct_identities": ident_phase,
                "held_300_distinct_tokens_one_identity": held_tokens,
                "held_60_identities": held_idents, "held_250_one_reused_token": reused}
    finally:
        child.stop()


# ------------------------------------------------------------------------------ per engine


def start_backend(engine: str, ca_dir: Path, idle: int) -> tuple[Any, Path]:
    """The engine's local server with room for max(``idle``, 300) + 100 connections; returns
    (handle, CA bundle path). The caller stops the handle."""
    from rdsiam_emulator.backends import BackendSpec, local_mysql, start_local
    from rdsiam_emulator.tls import EmulatorCA

    # the idle phase's sessions or the throttle phase's held bursts (up to 300 at once), with
    # room for admin sessions
    room = max(idle, 300) + 100
    local_mysql.MARIADB_FAST[:] = [a for a in local_mysql.MARIADB_FAST  # benchmark-only tweak
                                   if not a.startswith("--max-connections")]
    local_mysql.MARIADB_FAST.append(f"--max-connections={room}")
    if engine == "postgres":
        # start_tls_postgres sets max_connections itself: pass the room through
        handle, root = bench_postgres.start_tls_postgres(ca_dir, max_connections=room)
        handle.admin_execute(f"CREATE ROLE {IAM_USER} LOGIN")
        handle.admin_execute(f"GRANT rds_iam TO {IAM_USER}")
        return handle, root
    handle = start_local(BackendSpec(engine="mysql", provider="local", dbname="app"))
    return handle, EmulatorCA(ca_dir).bundle_path


def run_engine(engine: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    ca_dir = work / engine / "ca"
    ca_dir.parent.mkdir(parents=True)
    ca_dir.parent.chmod(0o711)
    progress(f"{engine}: starting the server")
    handle, ca = start_backend(engine, ca_dir, args.idle)
    result: dict[str, Any] = {"server": f"{handle.flavour} {handle.version}"}
    child: Child | None = None
    try:
        child = Child(engine, ca_dir, handle)
        host = PG_HOST if engine == "postgres" else MY_HOST
        tok = token(host, child.port)
        if engine == "mysql":
            master = pymysql.connect(host=MY_HOST, port=child.port, user=handle.master_user,
                                     password=handle.master_password, ssl={"ca": str(ca)})
            with master.cursor() as cur:
                cur.execute(f"CREATE USER '{IAM_USER}'@'%' IDENTIFIED WITH "
                            "AWSAuthenticationPlugin AS 'RDS'")
                cur.execute(f"GRANT ALL ON app.* TO '{IAM_USER}'@'%'")
            master.close()
        open_session(engine, child.port, ca, tok).close()  # warm: admin session, caches

        phases = args.phases.split(",")
        if "soak" in phases:
            progress(f"{engine}: soak: "
                     + ("direct TLS rate for "
                        f"{args.direct_seconds} s, then " if engine == "postgres" else "")
                     + f"new IAM connections for {args.seconds} s")
            result.update(soak_run(engine, args, work, handle, child, ca, tok))
        if "idle" in phases:
            progress(f"{engine}: idle: opening {args.idle} sessions, then closing them")
            result["idle"] = idle_run(engine, child, ca, tok, args.idle)
    finally:
        if child is not None:
            child.stop()
    try:
        if "throttle" in args.phases.split(","):
            progress(f"{engine}: throttle: drivers for {args.throttle_seconds} s, "
                     "then 60 identities, then held bursts")
            result["throttle"] = throttle_run(engine, ca_dir, handle, ca, args.throttle_seconds)
    finally:
        handle.stop()
    return result


def soak_run(engine: str, args: argparse.Namespace, work: Path, handle: Any, child: Child,
             ca: Path, tok: str) -> dict[str, Any]:
    """Phase 1 (soak): the direct TLS rate (PostgreSQL), then new IAM connections through the
    endpoint at the target rate for --seconds, sampling the endpoint every second."""
    out: dict[str, Any] = {}
    if engine == "postgres":
        script = work / "select1.sql"
        script.write_text("select 1;\n")
        direct = bench_postgres.pg_env(handle.master_user, handle.master_password, handle.port,
                                       bench_postgres.DIRECT_HOST, "verify-full", ca)
        out["direct_tls"] = measured = pgbench_connections(direct, script, args.direct_seconds)
        target = float(measured["rate"])
        progress(f"{engine}: soak: direct TLS {target:.0f}/s; through the endpoint at that "
                 f"rate for {args.seconds} s")
        via = bench_postgres.pg_env(IAM_USER, tok, child.port, PG_HOST, "verify-full", ca)
        sampler = Sampler(child)
        soak = pgbench_connections(via, script, args.seconds, rate=target)
    else:
        target = 200.0
        sampler = Sampler(child)
        soak = slap_batches(child.port, tok, ca, int(target), args.seconds)
    samples = sampler.stop()
    soak["target_rate"] = target
    soak["samples"] = samples
    rss = [s["rss_mb"] for s in samples]
    fds = [s["fds"] for s in samples]
    soak["rss_mb"] = {"first": rss[0], "min": min(rss), "max": max(rss), "last": rss[-1]}
    soak["fds"] = {"first": fds[0], "min": min(fds), "max": max(fds), "last": fds[-1]}
    time.sleep(1)
    soak["after"] = {"rss_mb": round(child.rss_mb(), 2), "fds": child.fds(), **child.stats()}
    out["soak"] = soak
    return out


def idle_run(engine: str, child: Child, ca: Path, tok: str, idle: int) -> dict[str, Any]:
    """``idle`` sessions opened one after the other and held, then all closed."""
    before = {"rss_mb": round(child.rss_mb(), 2), "fds": child.fds(), **child.stats()}
    sessions = []
    started = time.monotonic()
    for _ in range(idle):
        sessions.append(open_session(engine, child.port, ca, tok))
    opened = time.monotonic() - started
    time.sleep(1)
    held = {"rss_mb": round(child.rss_mb(), 2), "fds": child.fds(), **child.stats()}
    for s in sessions:
        s.close()
    deadline = time.monotonic() + 30
    while child.stats()["connections"] and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    after = {"rss_mb": round(child.rss_mb(), 2), "fds": child.fds(), **child.stats()}
    for d in (before, held, after):
        d.pop("events", None)
    return {
        "sessions": idle, "open_seconds": round(opened, 1), "before": before,
        "held": held, "after": after,
        "rss_kb_per_session": round((held["rss_mb"] - before["rss_mb"]) * 1024 / idle, 1)}


def progress(message: str) -> None:
    """One progress line on stderr (a phase runs for minutes), with the time and load."""
    print(f"[soak {time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {message}",
          file=sys.stderr, flush=True)


EXPECTED_REASONS: dict[str, frozenset[str]] = {
    "drivers_distinct_tokens": frozenset({"allow", "throttled"}),
    "drivers_distinct_identities": frozenset({"allow", "throttled"}),
    "held_300_distinct_tokens_one_identity": frozenset({"allow", "throttled"}),
    "held_60_identities": frozenset({"allow", "throttled"}),
    "held_250_one_reused_token": frozenset({"allow"}),  # a reused token is never throttled
}
"""Per throttle sub-phase, the endpoint reasons that phase tests; any other is a flaw of the
run (e.g. ``too_many_connections``: the server's own limit, not the emulated throttle)."""


def unexpected_failures(result: dict[str, Any]) -> list[str]:
    """What in one engine's result is not what its phase tests: soak failures, idle leftovers,
    throttle refusals for another reason or refusals on the wire without a reason. Empty when
    the run is clean. ``result`` is one entry of the report's ``engines``."""
    flags: list[str] = []
    soak = result.get("soak")
    if soak is not None and soak["failed"]:
        flags.append(f"soak: {soak['failed']} failed connections: {soak['errors'][:2]}")
    idle = result.get("idle")
    if idle is not None and (idle["after"]["tasks"] or idle["after"]["connections"]):
        flags.append(f"idle: after closing, {idle['after']['tasks']} tasks and "
                     f"{idle['after']['connections']} connections left")
    for phase, got in (result.get("throttle") or {}).items():
        reasons: dict[str, int] = got.get("event_reasons", {})
        expected = EXPECTED_REASONS.get(phase, frozenset({"allow"}))
        for reason, n in sorted(reasons.items()):
            if reason not in expected:
                flags.append(f"throttle/{phase}: {n} refused as {reason}")
        refused = sum(n for text, n in got["outcomes"].items() if text != "ok")
        explained = sum(n for r, n in reasons.items() if r != "allow")
        if refused > explained:
            others = {t: n for t, n in got["outcomes"].items() if t != "ok"}
            flags.append(f"throttle/{phase}: {refused - explained} of {refused} refusals on the "
                         f"wire without an endpoint reason: {others}")
    return flags


def git_commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes), or ``?``."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:

    from rdsiam_emulator.endpoint.event_loops import resolve_loop_name

    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "loop": resolve_loop_name("auto"),
            "ulimit_n": __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)[0]}


DEFAULT_OUT = "soak.json"
"""Where a run writes unless told: the current directory, not docs/ (the documented command
names ``--out docs/benchmarks/soak.json``)."""


def parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="bench/soak.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Load and soak per engine: sustained new IAM connections, many idle "
                    "sessions, throttling at the real rate. Takes 5-7 minutes per engine with "
                    "the defaults; progress lines go to stderr.")
    ap.add_argument("--engines", default="postgres,mysql",
                    help="comma-separated subset of postgres,mysql")
    ap.add_argument("--seconds", type=int, default=60,
                    help="phase 1 (soak): how long new IAM connections are sustained")
    ap.add_argument("--direct-seconds", type=int, default=10,
                    help="phase 1 (soak), PostgreSQL: how long the direct TLS rate is "
                         "measured first")
    ap.add_argument("--idle", type=int, default=1000,
                    help="phase 2 (idle): authenticated sessions held open at once")
    ap.add_argument("--throttle-seconds", type=int, default=5,
                    help="phase 3 (throttle): how long the driver clients open connections")
    ap.add_argument("--out", default=DEFAULT_OUT,
                    help="the JSON result (docs/benchmarks/soak.json for the published one)")
    ap.add_argument("--phases", default="soak,idle,throttle",
                    help="a subset of soak (phase 1), idle (2), throttle (3)")
    ap.add_argument("--merge", action="store_true",
                    help="add these phases' results into the existing --out")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--ca-dir", help=argparse.SUPPRESS)
    ap.add_argument("--backend-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--backend-socket", help=argparse.SUPPRESS)
    ap.add_argument("--admin-user", help=argparse.SUPPRESS)
    ap.add_argument("--admin-password", help=argparse.SUPPRESS)
    ap.add_argument("--throttle", action="store_true", help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.serve:
        serve(args)
        return
    given = sys.argv[1:] if argv is None else argv
    run = {"machine": machine(), "commit": git_commit(),
           "command": "uv run --frozen python bench/soak.py " + " ".join(given),
           "load_average_before": os.getloadavg(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "args": {k: v for k, v in vars(args).items()
                    if k in ("engines", "seconds", "direct_seconds", "idle", "throttle_seconds",
                             "phases")}}
    out = Path(args.out)
    report: dict[str, Any] = {**run, "engines": {}}
    if args.merge and out.exists():  # a later run of some phases, added to the earlier one
        report = json.loads(out.read_text())
        report.setdefault("merged_runs", []).append(run)
    # holds the CA's private key and the servers' TLS files: removed however the run ends
    work = Path(tempfile.mkdtemp(prefix="rdsiam-soak-"))
    try:
        work.chmod(0o711)
        for engine in args.engines.split(","):
            got = run_engine(engine, args, work)
            got["load_average_after_" + "_".join(args.phases.split(","))] = os.getloadavg()
            report["engines"].setdefault(engine, {}).update(got)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["load_average_after"] = os.getloadavg()
    flags = {engine: unexpected_failures(r) for engine, r in report["engines"].items()}
    report["unexpected"] = {e: f for e, f in flags.items() if f}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    for engine, r in report["engines"].items():
        if "soak" in r:
            s = r["soak"]
            print(f"{engine}: sustained {s['rate']}/s (target {s['target_rate']:.0f}) for "
                  f"{s['seconds']} s, {s['failed']} failed; RSS {s['rss_mb']['first']}->"
                  f"{s['rss_mb']['last']} MB (max {s['rss_mb']['max']}), fds "
                  f"{s['fds']['first']}->{s['fds']['last']} (max {s['fds']['max']})")
        if "idle" in r:
            i = r["idle"]
            print(f"{engine}: idle {i['sessions']}: RSS {i['before']['rss_mb']}->"
                  f"{i['held']['rss_mb']}->{i['after']['rss_mb']} MB, fds {i['before']['fds']}->"
                  f"{i['held']['fds']}->{i['after']['fds']}, tasks after {i['after']['tasks']}, "
                  f"connections after {i['after']['connections']}")
        for phase, got in (r.get("throttle") or {}).items():
            print(f"{engine}: throttle {phase}: endpoint reasons "
                  f"{got.get('event_reasons', {})}")
        for flag in flags[engine]:
            print(f"{engine}: UNEXPECTED: {flag}")
    print(f"written to {args.out}" + ("" if not report["unexpected"] else
                                      " -- with failures the phases do not test (see above)"))


if __name__ == "__main__":
    main()
