"""The local PostgreSQL provider against the real binaries: RDS-like bootstrap and settings."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from rdsiam_emulator.backends import (
    ADMIN_USER,
    BackendError,
    BackendSpec,
    PostgresHandle,
    start_backend,
)


def connect(
    pg: PostgresHandle, user: str, password: str, dbname: str | None = None
) -> psycopg.Connection:
    return psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=user,
        password=password,
        dbname=dbname or pg.dbname,
        autocommit=True,
        connect_timeout=5,
    )


def test_handle_facts(pg: PostgresHandle) -> None:
    assert pg.engine == "postgres"
    assert pg.flavour == "postgresql"
    assert pg.host == pg.unix_socket and not pg.tcp  # libpq's spelling of the socket
    assert pg.provider == "local"
    assert pg.admin_user == ADMIN_USER
    assert pg.master_user == "postgres"
    assert pg.dbname == "appdb"
    assert pg.version.split(".")[0].isdigit()
    assert "password" not in repr(pg).lower() and pg.admin_password not in repr(pg)


def test_master_logs_in_with_password_and_has_rds_powers(pg: PostgresHandle) -> None:
    with connect(pg, pg.master_user, pg.master_password) as conn:
        row = conn.execute(
            "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, "
            "pg_has_role(current_user, 'rds_superuser', 'MEMBER'), "
            "(SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) "
            "FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row == ("postgres", False, True, True, True, "postgres")


def test_wrong_password_is_rejected_with_28p01(pg: PostgresHandle) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        connect(pg, pg.master_user, "wrong")
    assert "password authentication failed" in str(info.value)


def test_admin_is_superuser(pg: PostgresHandle) -> None:
    with connect(pg, pg.admin_user, pg.admin_password, "postgres") as conn:
        assert conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (True,)


def test_rds_roles_exist(pg: PostgresHandle) -> None:
    rows = pg.admin_execute(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'rds%%' ORDER BY 1"
    )
    assert rows == [("rds_iam", False), ("rds_superuser", False), ("rdsadmin", True)]


def test_test_speed_settings_and_loopback(pg: PostgresHandle) -> None:
    settings = dict(
        pg.admin_execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'full_page_writes', 'listen_addresses', "
            "'unix_socket_directories')"
        )
    )
    assert settings["fsync"] == "off"
    assert settings["synchronous_commit"] == "off"
    assert settings["full_page_writes"] == "off"
    assert settings["listen_addresses"] == ""  # no TCP unless asked for
    sock_dir = Path(settings["unix_socket_directories"])
    assert str(sock_dir) == pg.unix_socket
    mode = stat.S_IMODE(os.stat(sock_dir.parent).st_mode)
    assert mode == 0o700, oct(mode)


def test_server_runs_unprivileged(pg: PostgresHandle) -> None:
    (pid,) = pg.admin_execute("SELECT pg_backend_pid()")[0]
    uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
    assert uid != 0
    if os.geteuid() != 0:
        assert uid == os.geteuid()


def test_master_can_make_an_iam_user(pg: PostgresHandle) -> None:
    with connect(pg, pg.master_user, pg.master_password) as conn:
        conn.execute("CREATE USER alice")
        assert not pg.is_iam_user("alice")
        conn.execute("GRANT rds_iam TO alice")
    assert pg.is_iam_user("alice")
    assert not pg.is_iam_user(pg.master_user)
    assert not pg.is_iam_user(pg.admin_user)  # superusers are never IAM users
    assert not pg.is_iam_user("nobody-by-that-name")


def test_start_and_stop_leave_nothing_behind_and_tcp_is_opt_in(pg: PostgresHandle) -> None:
    handle = start_backend(
        BackendSpec("postgres", provider="local", master_password="s3cret-master",
                    listen_tcp=True)
    )
    assert isinstance(handle, PostgresHandle)
    # credentials are random per server (docs/security.md): the session's shared one differs
    assert handle.admin_password != pg.admin_password and len(handle.admin_password) >= 24
    assert handle.tcp and handle.host == "127.0.0.1"
    work = Path(handle.unix_socket or "").parent
    pid = int((work / "data" / "postmaster.pid").read_text().split()[0])
    assert handle.master_password == "s3cret-master"
    with connect(handle, "postgres", "s3cret-master", "app") as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.info.hostaddr == "127.0.0.1"
    # over TCP every login needs its password, the admin's too
    with connect(handle, handle.admin_user, handle.admin_password, "postgres") as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == (True,)
    with pytest.raises(psycopg.OperationalError):
        connect(handle, handle.admin_user, "not-the-password", "postgres")
    handle.stop()
    handle.stop()  # idempotent
    assert handle.stopped
    assert not work.exists()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_admin_execute_in_another_database_raises_backend_error_for_a_lost_session(
        pg: PostgresHandle) -> None:
    db = pg.fresh_database()
    try:
        with pytest.raises(BackendError, match=f"admin SQL in database '{db}' failed: .*terminat"):
            pg.admin_execute("SELECT pg_terminate_backend(pg_backend_pid())", dbname=db)
        with pytest.raises(BackendError, match="canceling statement due to statement timeout"):
            pg.admin_execute("SET statement_timeout = 10; SELECT pg_sleep(5)", dbname=db)
        assert pg.admin_execute("SELECT current_database()", dbname=db) == [(db,)]
    finally:
        pg.drop_database(db)
