"""The local MariaDB provider against the real server: RDS-like bootstrap, loopback, the catalog."""

from __future__ import annotations

import os
from pathlib import Path

import pymysql
import pytest

from rdsiam_emulator.backends import ADMIN_USER, BackendSpec, MysqlHandle, start_backend


def connect(
    my: MysqlHandle, user: str, password: str, database: str | None = None
) -> pymysql.Connection:
    return pymysql.connect(
        **my.address_kwargs(),  # the private socket unless the server has TCP (opt-in)
        user=user,
        password=password,
        database=database,
        autocommit=True,
        connect_timeout=5,
    )


def test_handle_facts(my: MysqlHandle) -> None:
    assert my.engine == "mysql"
    assert my.flavour == "mariadb"
    assert "MariaDB" in my.version
    assert my.host == "localhost" and not my.tcp  # no TCP unless asked for
    assert my.address_kwargs() == {"unix_socket": my.unix_socket}
    assert my.master_user == "admin"
    assert my.admin_user == ADMIN_USER
    assert my.admin_password not in repr(my)


def test_master_has_all_privileges_with_grant_option(my: MysqlHandle) -> None:
    with connect(my, my.master_user, my.master_password, my.dbname) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER(), DATABASE()")
        assert cur.fetchone() == ("admin@%", "appdb")
        cur.execute("SHOW GRANTS")
        grants = " ".join(r[0] for r in cur.fetchall())
    assert "GRANT ALL PRIVILEGES ON *.* TO `admin`@`%`" in grants
    assert "WITH GRANT OPTION" in grants


def test_wrong_password_is_1045(my: MysqlHandle) -> None:
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(my, my.master_user, "wrong")
    assert info.value.args[0] == 1045


def test_only_bootstrap_accounts_and_no_passwordless_root(my: MysqlHandle) -> None:
    users = sorted(my.admin_execute("SELECT user, host FROM mysql.user"))
    assert users == [
        ("admin", "%"),
        ("mariadb.sys", "localhost"),
        ("rdsadmin", "%"),
        ("root", "localhost"),
    ]
    with pytest.raises(pymysql.err.OperationalError):
        connect(my, "root", "")


def test_socket_only_and_speed_settings(my: MysqlHandle) -> None:
    row = my.admin_execute(
        "SELECT @@skip_networking, @@innodb_flush_log_at_trx_commit, @@log_bin, "
        "@@innodb_doublewrite, @@socket"
    )
    assert row[0][:4] == (1, 0, 0, 0)
    assert row[0][4] == my.unix_socket


def test_catalog_table_and_helpers(my: MysqlHandle) -> None:
    cols = my.admin_execute(
        "SELECT column_name, column_key FROM information_schema.columns "
        "WHERE table_schema = 'rdsiam_catalog' AND table_name = 'iam_users' "
        "ORDER BY ordinal_position"
    )
    assert cols == [("user", "PRI"), ("host", "PRI"), ("created_at", "")]
    assert not my.is_iam_user("bob")
    my.record_iam_user("bob", "%")
    my.record_iam_user("bob", "%")  # idempotent
    assert my.is_iam_user("bob")
    assert not my.is_iam_user("BOB")  # user names are case-sensitive
    my.forget_iam_user("bob", "%")
    assert not my.is_iam_user("bob")


def test_server_runs_unprivileged(my: MysqlHandle) -> None:
    pid = int((Path(my.unix_socket or "").parent / "mysqld.pid").read_text())
    uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
    assert uid != 0 or os.geteuid() != 0


def test_start_and_stop_leave_nothing_behind_and_tcp_is_opt_in(my: MysqlHandle) -> None:
    handle = start_backend(
        BackendSpec(
            "mysql",
            provider="local",
            master_username="boss",
            master_password="pw-boss",
            dbname="shop",
            listen_tcp=True,
        )
    )
    assert isinstance(handle, MysqlHandle)
    assert handle.tcp and handle.address_kwargs() == {"host": "127.0.0.1", "port": handle.port}
    # credentials are random per server (docs/security.md): the session's shared one differs
    assert handle.admin_password != my.admin_password and len(handle.admin_password) >= 24
    work = Path(handle.unix_socket or "").parent
    pid = int((work / "mysqld.pid").read_text())
    with connect(handle, "boss", "pw-boss", "shop") as conn, conn.cursor() as cur:
        cur.execute("SELECT DATABASE(), @@skip_networking, @@bind_address")
        assert cur.fetchone() == ("shop", 0, "127.0.0.1")
        assert conn.host_info.startswith("socket 127.0.0.1")
    handle.stop()
    handle.stop()
    assert not work.exists()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_parallel_first_builds_of_the_prepared_datadir_do_not_clash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """xdist workers on a fresh machine all build the prepared data directory at once. Each
    install-db run needs its own tmpdir: a starting server deletes every "#sql*" file in its
    tmpdir, which broke a parallel build's temporary tables in a CI run."""
    from concurrent.futures import ThreadPoolExecutor

    from rdsiam_emulator.backends import local_mysql
    from rdsiam_emulator.backends.procs import run_as

    monkeypatch.setenv("RDSIAM_CACHE_DIR", str(tmp_path / "cache"))
    server, flavour = local_mysql.find_server()
    who = run_as()
    with ThreadPoolExecutor(3) as pool:
        built = list(pool.map(lambda _: local_mysql._golden(server, flavour, who), range(3)))
    assert len(set(built)) == 1
    assert (built[0] / "mysql").is_dir()
