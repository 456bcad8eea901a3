"""SIGTERM with open client sessions, and SIGINT: exit 0 within 10 s, and every process the
server started (PostgreSQL, MariaDB and their children) is gone from the process table."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psycopg
import pymysql
from serve_proc import APP_KEY, APP_SECRET, REGION, Serve, free_port, process_gone


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc: backends run in their own sessions, but are
    still our children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"}]})
CONFIG = f"""
[server]
port = PORT
region = "{REGION}"

[[instances]]
identifier = "orders"
engine = "postgres"
iam_db_users = ["app_user"]

[[instances]]
identifier = "shop"
engine = "mysql"
iam_db_users = ["app_user"]

[[iam.users]]
name = "app"
inline_policies = {{ all = '{ALLOW_ALL}' }}
access_keys = [{{ access_key_id = "{APP_KEY}", secret_access_key = "{APP_SECRET}" }}]
"""


def test_sigterm_with_open_sessions_exits_0_and_leaves_no_servers(tmp_path: Path) -> None:
    port = free_port()
    serve = Serve(CONFIG.replace("PORT", str(port)), tmp_path)
    try:
        serve.wait_ready(port)
        serve.ca.write_bytes(serve.get("/_rdsiam/ca.pem").content)
        rds = serve.client("rds", APP_KEY, APP_SECRET)
        orders, shop = serve.instance("orders"), serve.instance("shop")
        pids = {orders["backend_pid"], shop["backend_pid"]}
        pg = psycopg.connect(host="127.0.0.1", port=orders["port"], user="app_user",
                             password=rds.generate_db_auth_token(
                                 DBHostname=orders["host"], Port=orders["port"],
                                 DBUsername="app_user"),
                             dbname="app", sslmode="require", connect_timeout=20)
        pg.execute("SELECT 1")  # a session inside an open transaction
        my = pymysql.connect(host="127.0.0.1", port=shop["port"], user="app_user",
                             password=rds.generate_db_auth_token(
                                 DBHostname=shop["host"], Port=shop["port"],
                                 DBUsername="app_user"),
                             ssl={"ca": str(serve.ca), "check_hostname": False},
                             connect_timeout=20)
        my.query("SELECT 1")
        started = descendants(serve.proc.pid)
        assert pids <= started and len(started) >= 4  # postgres has helpers too
    except BaseException:
        serve.stop(signal.SIGKILL)
        raise
    began = time.monotonic()
    code = serve.stop(signal.SIGTERM, timeout=10)
    took = time.monotonic() - began
    assert code == 0, serve.stderr()
    assert serve.stderr() == ""
    assert took < 10
    assert "shutting down" in serve.output()
    left = [pid for pid in started if not process_gone(pid)]
    assert left == [], f"still running after shutdown: {left}"
    pg.close()
    my.close()


def test_sigint_exits_0(tmp_path: Path) -> None:
    port = free_port()
    serve = Serve(f"[server]\nport = {port}\n", tmp_path)
    try:
        assert serve.wait_ready(port)[-1] == 200
        assert serve.json("/_rdsiam/health") == {"status": "ready", "instances": {},
                                                 "clusters": {}}
    except BaseException:
        serve.stop(signal.SIGKILL)
        raise
    assert serve.stop(signal.SIGINT, timeout=10) == 0


def test_sigterm_during_start_up_aborts_it(tmp_path: Path) -> None:
    """Issue #14: a signal while the backends boot and moto loads stops start-up: no ``ready``
    line after it, exit 0, no server process left."""
    port = free_port()
    serve = Serve(CONFIG.replace("PORT", str(port)), tmp_path)
    seen: set[int] = set()
    try:
        serve.wait_line("rdsiam-emulator serve: AWS APIs", timeout=60)
        # the backends boot in the background from here: wait for the first of them
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            seen |= descendants(serve.proc.pid)
            time.sleep(0.02)
        assert seen, serve.output()
        assert not any(line.startswith("ready in") for line in serve.lines), serve.output()
    except BaseException:
        serve.stop(signal.SIGKILL)
        raise
    began = time.monotonic()
    serve.proc.send_signal(signal.SIGTERM)
    while serve.proc.poll() is None and time.monotonic() - began < 20:
        seen |= descendants(serve.proc.pid)
        time.sleep(0.05)
    code = serve.stop(signal.SIGTERM, timeout=1)
    took = time.monotonic() - began
    assert code == 0, serve.stderr()
    assert took < 20, took
    assert not any(line.startswith("ready in") for line in serve.lines), serve.output()
    assert "shutting down" in serve.output()
    left = [pid for pid in seen if not process_gone(pid)]
    assert left == [], f"still running after shutdown: {left}"
