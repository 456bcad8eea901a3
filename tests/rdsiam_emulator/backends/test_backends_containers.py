"""The container provider through testcontainers against a real Docker-API engine.

There is no Docker here, so the session starts Podman's Docker-compatible API with
scripts/podman-engine (which also builds the stand-in images once and caches them) and stops that
service at the end. The images come from configuration ($RDSIAM_POSTGRES_IMAGE, ...) printed by the
script, exactly as a user would point the provider at other images.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest

from rdsiam_emulator.backends import BackendSpec, MysqlHandle, PostgresHandle, start_backend
from rdsiam_emulator.backends.containers import LABEL, LABEL_REUSE_KEY

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "podman-engine"

pytestmark = pytest.mark.containers


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if shutil.which("podman") is None and os.geteuid() != 0:
        pytest.skip(reason="no podman and not root: scripts/podman-engine cannot install it here")
    api_dir = tmp_path_factory.mktemp("podman-api")
    proc = subprocess.run(
        [str(SCRIPT), "up", str(api_dir)], capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/podman-engine up failed:\n{proc.stderr[-4000:]}")
    env = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    assert env["DOCKER_HOST"] == f"unix://{api_dir}/podman.sock"
    yield env
    subprocess.run([str(SCRIPT), "stop", str(api_dir)], capture_output=True, timeout=60, check=True)
    assert not (api_dir / "podman.sock").exists()


@pytest.fixture
def engine(engine_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from testcontainers.core.config import testcontainers_config

    for key, value in engine_env.items():
        monkeypatch.setenv(key, value)
    # testcontainers reads TESTCONTAINERS_RYUK_DISABLED once per process: another test in this
    # worker may have imported it before the variable was set (Ryuk's image does not exist here)
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled",
                        engine_env.get("TESTCONTAINERS_RYUK_DISABLED") == "true")
    return engine_env


def docker_client(env: dict[str, str]):  # type: ignore[no-untyped-def]
    import docker

    return docker.DockerClient(base_url=env["DOCKER_HOST"], timeout=30)


def our_containers(env: dict[str, str], **labels: str) -> list[str]:
    filters = [f"{LABEL}=1", *(f"{k}={v}" for k, v in labels.items())]
    client = docker_client(env)
    try:
        return [c.id for c in client.containers.list(all=True, filters={"label": filters})]
    finally:
        client.close()


def test_postgres_container_is_bootstrapped_like_rds(engine: dict[str, str]) -> None:
    spec = BackendSpec("postgres", provider="docker", dbname="appdb")
    assert spec.resolved_image() == engine["RDSIAM_POSTGRES_IMAGE"]
    handle = start_backend(spec)
    assert isinstance(handle, PostgresHandle)
    try:
        assert handle.provider.startswith(f"docker:{engine['RDSIAM_POSTGRES_IMAGE']}:")
        assert handle.host == "127.0.0.1"
        assert handle.flavour == "postgresql"
        assert handle.version.split(".")[0].isdigit()
        with psycopg.connect(**handle.master_dsn(), autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT rolsuper, rolcreaterole, pg_has_role('rds_superuser', 'MEMBER'), "
                "current_database() FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            assert row == (False, True, True, "appdb")
            conn.execute("CREATE ROLE iam_user LOGIN")
            conn.execute("GRANT rds_iam TO iam_user")
        assert handle.is_iam_user("iam_user")
        db = handle.fresh_database()
        with psycopg.connect(**handle.master_dsn(db), autocommit=True) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (db,)
        assert handle.reset_users() == ["iam_user"]
        # the bridge: clients reach the server through the published loopback port, with passwords
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(**(handle.master_dsn() | {"password": "wrong"}), connect_timeout=10)
        # what is exposed (docs/backends.md "Who can reach a backend"): the port on loopback
        # only, and an admin password made for this container, readable through the engine
        client = docker_client(engine)
        try:
            attrs = client.containers.get(handle.provider.rsplit(":", 1)[1]).attrs
        finally:
            client.close()
        bindings = attrs["NetworkSettings"]["Ports"]["5432/tcp"]
        assert bindings and {b["HostIp"] for b in bindings} == {"127.0.0.1"}, bindings
        assert len(handle.admin_password) >= 32
        assert f"POSTGRES_PASSWORD={handle.admin_password}" in attrs["Config"]["Env"]
    finally:
        handle.stop()
    assert our_containers(engine, **{f"{LABEL}.owner-pid": str(os.getpid())}) == []


def test_mysql_container_is_bootstrapped_like_rds(engine: dict[str, str]) -> None:
    handle = start_backend(BackendSpec("mysql", provider="docker", dbname="appdb"))
    assert isinstance(handle, MysqlHandle)
    try:
        assert handle.provider.startswith(f"docker:{engine['RDSIAM_MYSQL_IMAGE']}:")
        assert handle.flavour in ("mariadb", "mysql")
        with pymysql.connect(**handle.master_dsn(), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone() == ("appdb",)
            cur.execute("SHOW GRANTS")
            assert "WITH GRANT OPTION" in " ".join(r[0] for r in cur.fetchall())
            cur.execute("CREATE USER 'u1'@'%' IDENTIFIED BY 'pw'")
        handle.record_iam_user("u1")
        assert handle.is_iam_user("u1")
        assert handle.reset_users() == ["u1@%"]
        assert not handle.is_iam_user("u1")
        users = {r[0] for r in handle.admin_execute("SELECT user FROM mysql.user")}
        assert {"root", "rdsadmin", "admin"} <= users  # the image's root stays (official contract)
        assert handle.fresh_database().startswith("t_")
    finally:
        handle.stop()
    assert our_containers(engine, **{f"{LABEL}.owner-pid": str(os.getpid())}) == []


def test_reuse_finds_the_same_container(engine: dict[str, str]) -> None:
    spec = BackendSpec("mysql", provider="docker", reuse=True, dbname=f"reuse{os.getpid()}")
    first = start_backend(spec)
    try:
        first.admin_execute("CREATE TABLE IF NOT EXISTS reuse_marker (x int)", dbname=spec.dbname)
        first.stop()
        kept = our_containers(engine, **{f"{LABEL}.reuse": "true"})
        assert kept, "a reusable container must survive stop()"
        started = time.monotonic()
        second = start_backend(spec)
        assert time.monotonic() - started < 30
        assert second.provider == first.provider  # same container id
        assert second.port == first.port
        rows = second.admin_execute("SHOW TABLES LIKE 'reuse_marker'", dbname=spec.dbname)
        assert rows == [("reuse_marker",)]
        second.stop()
    finally:
        client = docker_client(engine)
        for container in client.containers.list(all=True, filters={"label": f"{LABEL_REUSE_KEY}"}):
            if container.labels.get(f"{LABEL}.owner-pid") == str(os.getpid()):
                container.remove(force=True, v=True)
        client.close()


CHILD = r"""
import json, time
from rdsiam_emulator.backends import BackendSpec, start_backend
h = start_backend(BackendSpec("postgres", provider="docker"))
print(json.dumps({"provider": h.provider}), flush=True)
time.sleep(120)
"""


def test_sigterm_removes_the_container(engine: dict[str, str]) -> None:
    with subprocess.Popen(  # closes the pipe and reaps the child on every way out
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        start_new_session=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            assert our_containers(engine, **{f"{LABEL}.owner-pid": str(proc.pid)})
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=60) == -signal.SIGTERM
        finally:
            if proc.poll() is None:
                proc.kill()
    assert info["provider"].startswith("docker:")
    assert our_containers(engine, **{f"{LABEL}.owner-pid": str(proc.pid)}) == []
