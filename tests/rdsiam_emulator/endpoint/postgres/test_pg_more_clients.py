"""More real clients: the AWS Advanced Python Wrapper's IAM plugin, node ``pg`` with an
``@aws-sdk/rds-signer`` token, and the endpoint running on uvloop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from pg_env import AKID, RDS_HOST, REGION, SECRET, LoopThread, close_and_check, make_endpoint

NODE_DIR = Path(__file__).resolve().parents[3] / "node"


def test_aws_advanced_python_wrapper_iam_plugin(endpoint, monkeypatch) -> None:
    from aws_advanced_python_wrapper import AwsWrapperConnection

    from rdsiam_emulator import resolver

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    user = endpoint.iam_user()
    resolver.register(RDS_HOST)
    try:
        conn = AwsWrapperConnection.connect(
            psycopg.Connection.connect,
            f"host={RDS_HOST} port={endpoint.port} dbname=app user={user} "
            f"sslmode=verify-full sslrootcert={endpoint.ca.bundle_path}",
            plugins="iam", iam_region=REGION, iam_host=RDS_HOST, wrapper_dialect="pg")
        try:
            cur = conn.cursor()
            cur.execute("select current_user, session_user")
            assert cur.fetchone() == (user, user)
        finally:
            conn.close()
    finally:
        resolver.unregister(RDS_HOST)
    event = endpoint.events.all()[-1]
    assert event.ok and event.db_user == user and event.method == "iam"


@pytest.mark.node
def test_node_pg_with_rds_signer_token(endpoint) -> None:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "pg").is_dir():
        pytest.skip(reason="node or tests/node/node_modules/pg (npm ci in tests/node) missing")
    user = endpoint.iam_user()
    base = dict(os.environ, HOST=RDS_HOST, ADDRESS="127.0.0.1", PORT=str(endpoint.port),
                DBUSER=user, CA=str(endpoint.ca.bundle_path), REGION=REGION,
                AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET)

    def run(**extra: str) -> dict[str, object]:
        out = subprocess.run(["node", str(NODE_DIR / "pg_iam.mjs")], capture_output=True,
                             text=True, env=dict(base, **extra), timeout=60, cwd=NODE_DIR)
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))

    assert run() == {"ok": True, "user": user}
    assert run(PASSWORD="not-a-token") == {
        "ok": False, "code": "28000", "message": f'PAM authentication failed for user "{user}"'}


def test_endpoint_on_uvloop(pg_server, ca) -> None:
    import uvloop

    lt = LoopThread(uvloop.new_event_loop())
    try:
        running = make_endpoint(pg_server, ca, lt)
        try:
            user = running.iam_user()
            with psycopg.connect(running.conninfo(user, running.token(user))) as conn:
                assert conn.execute("select current_user").fetchone() == (user,)
                rows = conn.execute("select repeat('y', 1000) from generate_series(1, 5000)")
                assert sum(len(r[0]) for r in rows) == 5_000_000
            with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
                psycopg.connect(running.conninfo(user, "bad"))
        finally:
            close_and_check(running)
    finally:
        lt.stop()
