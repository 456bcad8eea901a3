"""MySQL endpoint benchmark: direct TLS to MariaDB vs through the endpoint (TLS on both).

    uv run --frozen python bench/bench_mysql.py [--conns 2000] [--queries 20000] [--mb 100]

Starts a private MariaDB with TLS (certificate from the emulator CA) and runs the endpoint in a
child process. That server, unlike the backends package's (socket only unless ``listen_tcp``),
listens on 127.0.0.1 TCP on purpose: the direct-TLS baseline needs it; it lives only as long as
the benchmark. New connections and the small-query loop are driven by ``mariadb-slap`` (a C client,
so the client is not the bottleneck): ``--detach=1`` makes every query a new TLS connection (IAM
token through the endpoint, password direct); ``--select-conns 1,4,8`` runs the small-query loop
at several client counts. Bulk insert/select of --mb megabytes runs with mysqlclient (C) and
PyMySQL (pure Python), direct and endpoint interleaved batch by batch (the select reads the
table --select-repeat times). Every
figure is the median of --rounds runs, direct and endpoint alternating, because other processes
on the machine skew single runs: compare ratios. Each mariadb-slap figure also shows the
machine's idle and steal shares while it ran (steal: the hypervisor running something else on
this VM's CPUs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import pymysql

REGION = "us-east-1"
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MASTER, MASTER_PW = "admin", "admin-pw-123"
ADMIN, ADMIN_PW = "rdsadmin", "rdsadmin-pw-123"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mariadb(work: Path, cert: Path, key: Path, ca: Path) -> tuple[subprocess.Popen, int]:
    data = work / "data"
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=socket", "--skip-test-db"],
                   check=True, capture_output=True)
    port = free_port()
    sock = work / "mysqld.sock"
    proc = subprocess.Popen([
        "mariadbd", "--no-defaults", f"--datadir={data}", "--user=root", f"--port={port}",
        "--bind-address=127.0.0.1", f"--socket={sock}", f"--pid-file={work}/pid",
        "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=1G",
        "--max-allowed-packet=256M", "--max-connections=2000", "--skip-name-resolve",
        f"--ssl-cert={cert}", f"--ssl-key={key}", f"--ssl-ca={ca}",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if sock.exists():
            try:
                conn = pymysql.connect(unix_socket=str(sock), user="root")
                break
            except pymysql.err.OperationalError:
                pass
        time.sleep(0.1)
    else:
        proc.kill()
        raise SystemExit("mariadbd did not start")
    with conn.cursor() as cur:
        for user, pw in ((ADMIN, ADMIN_PW), (MASTER, MASTER_PW)):
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{pw}'")
            cur.execute(f"GRANT ALL ON *.* TO '{user}'@'%' WITH GRANT OPTION")
        cur.execute("CREATE DATABASE app")
    conn.close()
    return proc, port


def serve(backend_port: int, ca_dir: str, queue: mp.Queue, loop: str = "uvloop",
          backend_socket: str | None = None, profile: str | None = None) -> None:
    from rdsiam_emulator.auth.authenticator import Authenticator
    from rdsiam_emulator.auth.credentials import StaticCredentials
    from rdsiam_emulator.auth.endpoint_spec import Endpoint
    from rdsiam_emulator.endpoint.backend import BackendAddress
    from rdsiam_emulator.endpoint.mysql import MysqlEndpoint
    from rdsiam_emulator.events import EventLog
    from rdsiam_emulator.tls import EmulatorCA

    async def main() -> None:
        cert = EmulatorCA(Path(ca_dir)).server_certificate(["localhost", "127.0.0.1"])
        ep = MysqlEndpoint(backend=BackendAddress("127.0.0.1", backend_port, ADMIN, ADMIN_PW,
                                                          unix_socket=backend_socket),
                           authenticator=None,  # type: ignore[arg-type]
                           instance_secret=b"b" * 32, tls_context=cert.server_context())
        await ep.start()
        ep.authenticator = Authenticator(
            instance_id="bench", engine="mysql",
            endpoint=Endpoint("localhost", ep.port, REGION, aliases=("127.0.0.1",)),
            credentials=StaticCredentials({AKID: (SECRET, None)}), events=EventLog(maxlen=1000))
        queue.put(ep.port)
        await asyncio.Event().wait()

    if loop == "uvloop":  # the product's loop when uvloop is installed (endpoint/event_loops.py)
        import uvloop

        uvloop.install()
    if profile:  # stats written when the bench ends the process with SIGTERM
        import cProfile
        import signal

        prof = cProfile.Profile()

        def dump(*_: object) -> None:
            prof.disable()
            prof.dump_stats(profile)
            os._exit(0)

        signal.signal(signal.SIGTERM, dump)
        prof.enable()
    asyncio.run(main())


def connect(port: int, user: str, pw: str, ca: str, **kw):
    return pymysql.connect(host="localhost", port=port, user=user, password=pw,
                           ssl={"ca": ca}, **kw)


def machine_ticks() -> list[int]:
    """The machine-wide CPU tick counters (user nice system idle iowait irq softirq steal)."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


LAST_MACHINE: list[tuple[float, float]] = []
"""(idle, steal) shares of the machine during the latest mariadb-slap run: steal is the
hypervisor taking this VM's CPUs, the main reason runs minutes apart differ."""


def slap(port: int, user: str, pw: str, ca: str, n: int, concurrency: int,
         detach: bool, verify: bool = False) -> float:
    """Queries (= connections with ``detach``) per second, measured by mariadb-slap; with
    ``verify`` the client also checks the server certificate's name (127.0.0.1)."""
    cmd = ["mariadb-slap", "--no-defaults", "-h", "127.0.0.1", "-P", str(port), "-u", user,
           f"--password={pw}", f"--ssl-ca={ca}", f"--concurrency={concurrency}",
           *(["--ssl-verify-server-cert"] if verify else []),
           f"--number-of-queries={n}", "--query=SELECT 1", "--create-schema=app", "--no-drop",
           "--iterations=1"]
    if detach:
        cmd.append("--detach=1")
    before = machine_ticks()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    delta = [b - a for a, b in zip(before, machine_ticks(), strict=True)]
    total = sum(delta) or 1
    LAST_MACHINE[:] = [((delta[3] + delta[4]) / total, delta[7] / total)]
    for line in out.splitlines():
        if "Average number of seconds to run all queries" in line:
            return n / float(line.split(":")[1].split()[0])
    raise RuntimeError("unexpected mariadb-slap output: " + out)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report the endpoint's cost per
    query / MB / connection: unlike throughput ratios it hardly depends on the machine's load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def conn_rate(port: int, user: str, pw_fn, ca: str, n: int, threads: int = 4) -> float:
    per = n // threads

    def worker() -> None:
        for _ in range(per):
            connect(port, user, pw_fn(), ca).close()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * threads / (time.monotonic() - start)


def query_rate(conn, n: int) -> float:
    cur = conn.cursor()
    start = time.monotonic()
    for _ in range(n):
        cur.execute("SELECT 1")
        cur.fetchall()
    return n / (time.monotonic() - start)


@contextlib.contextmanager
def bulk_connections(client: str, bport: int, eport: int, ca: str, tok: str, ip_tok: str):
    """A direct and an endpoint connection with one driver (TLS, verified CA on both)."""
    if client == "pymysql":
        d = connect(bport, MASTER, MASTER_PW, ca, max_allowed_packet=256 << 20)
        e = connect(eport, "iam_bench", tok, ca, max_allowed_packet=256 << 20)
    elif client == "mysqlclient":
        import MySQLdb  # libmariadb sends the token in cleartext only over TLS, as RDS needs

        d = MySQLdb.connect(host="127.0.0.1", port=bport, user=MASTER, password=MASTER_PW,
                            ssl={"ca": ca})
        e = MySQLdb.connect(host="127.0.0.1", port=eport, user="iam_bench", password=ip_tok,
                            ssl={"ca": ca})
    else:
        raise SystemExit(f"unknown bulk client {client!r}")
    try:
        yield d, e
    finally:
        d.close()
        e.close()


def own_cpu_seconds() -> float:
    """This process's CPU time: the bulk client runs here."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bulk_pair(direct, endpoint, mb: int, select_repeat: int, endpoint_pid: int,
              server_pid: int) -> dict[str, float]:
    """Bulk insert of ``mb`` 1 MiB rows and ``select_repeat`` full selects of them, direct and
    through the endpoint **interleaved step by step** (one insert batch or one select each, in
    turn), so both sides see the same moment of a VM whose speed drifts within seconds. Returns
    MB/s per side, the endpoint's CPU microseconds per MB moved through it, and for the selects
    the CPU per MB of each process on each side (client = this process, server, endpoint)."""
    sides = {"direct": direct, "endpoint": endpoint}
    spent = dict.fromkeys(("insert direct", "insert endpoint", "select direct",
                           "select endpoint"), 0.0)
    moved = dict.fromkeys(("select direct", "select endpoint"), 0)
    endpoint_cpu = 0.0
    select_cpu = {f"{proc} {side}": 0.0 for proc in ("client", "server", "endpoint")
                  for side in sides}
    row = os.urandom(1024 * 1024)

    def cpu_now() -> dict[str, float]:
        return {"client": own_cpu_seconds(), "server": cpu_seconds(server_pid),
                "endpoint": cpu_seconds(endpoint_pid)}

    def step(kind: str, side: str, sql: str, rows=None) -> None:
        nonlocal endpoint_cpu
        cur = sides[side].cursor()
        before = cpu_now()
        start = time.monotonic()
        if rows is None:
            cur.execute(sql)
            moved[f"{kind} {side}"] += sum(len(r[0]) for r in cur.fetchall())
        else:
            cur.executemany(sql, rows)
            sides[side].commit()
        spent[f"{kind} {side}"] += time.monotonic() - start
        after = cpu_now()
        if side == "endpoint":
            endpoint_cpu += after["endpoint"] - before["endpoint"]
        if kind == "select":
            for proc in after:
                select_cpu[f"{proc} {side}"] += after[proc] - before[proc]

    for side, conn in sides.items():
        conn.cursor().execute(f"CREATE TABLE app.bulk_{side} (id INT PRIMARY KEY, v LONGBLOB)")
    for i in range(0, mb, 8):
        rows = [(i + j, row) for j in range(min(8, mb - i))]
        for side in sides:
            step("insert", side, f"INSERT INTO app.bulk_{side} VALUES (%s, %s)", rows)
    for _ in range(select_repeat):
        for side in sides:
            step("select", side, f"SELECT v FROM app.bulk_{side}")
    for side, conn in sides.items():
        conn.cursor().execute(f"DROP TABLE app.bulk_{side}")
    out = {f"insert {side}": mb / spent[f"insert {side}"] for side in sides}
    out |= {f"select {side}": moved[f"select {side}"] / 1024 / 1024 / spent[f"select {side}"]
            for side in sides}
    out["endpoint cpu per MB"] = endpoint_cpu * 1e6 / ((1 + select_repeat) * mb)
    for key, seconds in select_cpu.items():
        if key != "endpoint direct":
            side = key.split()[1]
            out[f"select cpu per MB, {key}"] = (
                seconds * 1e6 / (moved[f"select {side}"] / 1024 / 1024))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--bulk-clients", default="mysqlclient,pymysql",
                    help="drivers for the bulk part: mysqlclient (C, libmariadb) and/or pymysql")
    ap.add_argument("--select-repeat", type=int, default=5,
                    help="how many times the bulk select reads the --mb table per round")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                    help="event loop of the endpoint process")
    ap.add_argument("--backend-tcp", action="store_true",
                    help="endpoint -> server over loopback TCP instead of the server's socket")
    ap.add_argument("--select-conns", default="4",
                    help="comma-separated client connection counts for the SELECT 1 loop")
    ap.add_argument("--profile", help="write the endpoint's cProfile stats to this file")
    ap.add_argument("--only", choices=("conn", "select", "bulk"),
                    help="run one part (for profiling the endpoint, whose pid is printed)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mysql-"))
    proc = None
    child = None
    try:
        from rdsiam_emulator.tls import EmulatorCA

        ca = EmulatorCA(work / "ca")
        cert = ca.server_certificate(["localhost", "127.0.0.1"])
        proc, bport = start_mariadb(work, cert.cert_path, cert.key_path, ca.bundle_path)
        cafile = str(ca.bundle_path)
        queue: mp.Queue = mp.get_context("spawn").Queue()
        child = mp.get_context("spawn").Process(
            target=serve, daemon=True,
            args=(bport, str(work / "ca"), queue, args.loop,
                  None if args.backend_tcp else str(work / "mysqld.sock"), args.profile))
        child.start()
        eport = queue.get(timeout=60)
        with connect(eport, MASTER, MASTER_PW, cafile) as m, m.cursor() as cur:
            cur.execute("CREATE USER 'iam_bench'@'%' IDENTIFIED WITH AWSAuthenticationPlugin "
                        "AS 'RDS'")
            cur.execute("GRANT ALL ON app.* TO 'iam_bench'@'%'")
        rds = boto3.client("rds", region_name=REGION, aws_access_key_id=AKID,
                           aws_secret_access_key=SECRET)

        def token() -> str:
            return rds.generate_db_auth_token(DBHostname="localhost", Port=eport,
                                              DBUsername="iam_bench", Region=REGION)

        tok = token()
        ip_tok = rds.generate_db_auth_token(DBHostname="127.0.0.1", Port=eport,
                                            DBUsername="iam_bench", Region=REGION)
        runs: dict[str, list[float]] = {}

        machine: dict[str, list[tuple[float, float]]] = {}

        def add(name: str, value: float) -> None:
            runs.setdefault(name, []).append(value)
            if LAST_MACHINE:  # set by slap(); bulk runs in-process and has none
                machine.setdefault(name, []).append(LAST_MACHINE.pop())

        assert child.pid is not None
        cpu: dict[str, list[float]] = {}

        def timed(name: str, per: float, fn):  # endpoint CPU microseconds per unit of work
            before = cpu_seconds(child.pid)
            value = fn()
            cpu.setdefault(name, []).append((cpu_seconds(child.pid) - before) * 1e6 / per)
            return value

        print(f"endpoint pid {child.pid}", flush=True)
        parts = ("conn", "select", "bulk") if args.only is None else (args.only,)
        select_conns = [int(c) for c in args.select_conns.split(",")]
        bulk_clients = args.bulk_clients.split(",")
        for _ in range(args.rounds):
            if "conn" in parts:
                add("conn/s direct (password, TLS)",
                    slap(bport, MASTER, MASTER_PW, cafile, args.conns, 8, True))
                add("conn/s endpoint (IAM token, TLS)", timed(
                    "endpoint CPU us per IAM connection", args.conns,
                    lambda: slap(eport, "iam_bench", ip_tok, cafile, args.conns, 8, True)))
                add("conn/s endpoint (password relay, TLS)", timed(
                    "endpoint CPU us per password connection", args.conns,
                    lambda: slap(eport, MASTER, MASTER_PW, cafile, args.conns, 8, True)))
            for c in select_conns if "select" in parts else ():
                add(f"SELECT 1/s direct ({c} conns)",
                    slap(bport, MASTER, MASTER_PW, cafile, args.queries, c, False))
                add(f"SELECT 1/s endpoint ({c} conns)", timed(
                    f"endpoint CPU us per SELECT 1 ({c} conns)", args.queries,
                    lambda c=c: slap(eport, "iam_bench", ip_tok, cafile, args.queries, c, False)))
            for client in bulk_clients if "bulk" in parts else ():
                with bulk_connections(client, bport, eport, cafile, tok, ip_tok) as (d, e):
                    got = bulk_pair(d, e, args.mb, args.select_repeat, child.pid, proc.pid)
                for kind in ("insert", "select"):
                    add(f"bulk {kind} MB/s direct ({client})", got[f"{kind} direct"])
                    add(f"bulk {kind} MB/s endpoint ({client})", got[f"{kind} endpoint"])
                cpu.setdefault(f"endpoint CPU us per MB, insert + select ({client})",
                               []).append(got["endpoint cpu per MB"])
                for key, value in got.items():
                    if key.startswith("select cpu per MB, "):
                        proc_side = key.removeprefix("select cpu per MB, ")
                        cpu.setdefault(f"select: {proc_side} CPU us per MB ({client})",
                                       []).append(value)
        results = {name: median(values) for name, values in runs.items()}
        for name, value in results.items():
            rounds = " ".join(f"{v:.0f}" for v in runs[name])
            shares = " ".join(f"{i:.0%}/{st:.0%}" for i, st in machine.get(name, []))
            print(f"{name:42s} {value:10.1f}   rounds: {rounds}"
                  + (f"   idle/steal: {shares}" if shares else ""))
        for name, values in cpu.items():
            rounds = " ".join(f"{v:.0f}" for v in values)
            print(f"{name:42s} {median(values):10.1f}   rounds: {rounds}")
        pairs = (("conn (IAM endpoint / direct)", "conn/s endpoint (IAM token, TLS)",
                  "conn/s direct (password, TLS)"),
                 *((f"SELECT 1 ({c} conns)", f"SELECT 1/s endpoint ({c} conns)",
                    f"SELECT 1/s direct ({c} conns)") for c in select_conns),
                 *((f"bulk {kind} ({client})", f"bulk {kind} MB/s endpoint ({client})",
                    f"bulk {kind} MB/s direct ({client})")
                   for client in bulk_clients for kind in ("insert", "select")))
        print("ratio endpoint/direct: of the medians, and the median of the per-round ratios "
              "(each round runs both back to back, so load drift cancels out)")
        for label, ep_name, direct_name in pairs:
            if ep_name not in runs:
                continue
            per_round = [a / b for a, b in zip(runs[ep_name], runs[direct_name], strict=True)]
            print(f"ratio {label:36s} {results[ep_name] / results[direct_name]:10.2f} "
                  f"{median(per_round):10.2f}")
    finally:
        if child is not None:
            if args.profile:
                child.terminate()  # SIGTERM: the child writes its profile first
                child.join(30)
            child.kill()
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
