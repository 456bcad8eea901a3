"""Per-test databases and user clean-up on the real local servers."""

from __future__ import annotations

import psycopg
import pymysql
import pytest

from rdsiam_emulator.backends import BackendError, MysqlHandle, PostgresHandle


def pg_master(pg: PostgresHandle, dbname: str | None = None) -> psycopg.Connection:
    return psycopg.connect(**pg.master_dsn(dbname), autocommit=True, connect_timeout=5)


def my_master(my: MysqlHandle, dbname: str | None = None) -> pymysql.Connection:
    return pymysql.connect(**my.master_dsn(dbname), autocommit=True, connect_timeout=5)


# -- PostgreSQL -----------------------------------------------------------------------------------
def test_pg_fresh_databases_are_unique_owned_by_master_and_empty(pg: PostgresHandle) -> None:
    a, b = pg.fresh_database(), pg.fresh_database()
    assert a != b
    try:
        rows = pg.admin_execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname IN (%s, %s) "
            "ORDER BY 1",
            [a, b],
        )
        assert rows == [(a, pg.master_user), (b, pg.master_user)]
        with pg_master(pg, a) as conn:
            conn.execute("CREATE TABLE t (x int)")  # master can create in public (owner)
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert tables.fetchone() == (1,)
        with pg_master(pg, b) as conn:
            assert conn.execute("SELECT to_regclass('public.t')").fetchone() == (None,)
    finally:
        pg.drop_database(a)
        pg.drop_database(b)
    assert not pg.admin_execute("SELECT 1 FROM pg_database WHERE datname = %s", [a])


def test_pg_custom_template_is_copied(pg: PostgresHandle) -> None:
    tmpl = pg.create_database("tmpl_custom_" + str(id(pg) % 10000))
    try:
        with pg_master(pg, tmpl) as conn:
            conn.execute("CREATE TABLE seeded (v text)")
            conn.execute("INSERT INTO seeded VALUES ('migrated')")
        copy = pg.create_database(tmpl + "_copy", template=tmpl)
        with pg_master(pg, copy) as conn:
            assert conn.execute("SELECT v FROM seeded").fetchall() == [("migrated",)]
        pg.drop_database(copy)
    finally:
        pg.drop_database(tmpl)


def test_pg_template_in_use_gives_a_clear_error(pg: PostgresHandle) -> None:
    tmpl = pg.fresh_database("busy")
    try:
        with pg_master(pg, tmpl), pytest.raises(BackendError, match="being accessed"):
            pg.create_database(tmpl + "_x", template=tmpl)
    finally:
        pg.drop_database(tmpl)


def test_pg_drop_database_disconnects_sessions(pg: PostgresHandle) -> None:
    name = pg.fresh_database()
    conn = pg_master(pg, name)
    pg.drop_database(name)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()


def test_pg_reset_users_drops_roles_with_objects_grants_and_sessions(pg: PostgresHandle) -> None:
    db = pg.fresh_database()
    with pg_master(pg, db) as conn:
        conn.execute("CREATE ROLE app_owner LOGIN PASSWORD 'pw1'")
        conn.execute("CREATE ROLE reader LOGIN PASSWORD 'pw2'")
        conn.execute("CREATE ROLE grp")
        conn.execute("GRANT rds_iam TO reader")
        conn.execute("GRANT grp TO reader")
        conn.execute("GRANT CREATE ON SCHEMA public TO app_owner")
    owner = psycopg.connect(**pg._dsn("app_owner", "pw1", db), autocommit=True)
    owner.execute("CREATE TABLE owned (x int)")
    owner.execute("GRANT SELECT ON owned TO reader")
    owner.execute("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO reader")
    dropped = pg.reset_users()
    assert sorted(dropped) == ["app_owner", "grp", "reader"]
    left = pg.admin_execute(
        "SELECT rolname FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%%' ORDER BY 1"
    )
    assert left == [(pg.master_user,), ("rds_iam",), ("rds_superuser",), ("rdsadmin",)]
    with pytest.raises(psycopg.OperationalError):
        owner.execute("SELECT 1")  # its session was terminated
    owner.close()
    with pg_master(pg, db) as conn:
        assert conn.execute("SELECT to_regclass('public.owned')").fetchone() == (None,)
    assert pg.reset_users() == []  # nothing left to do
    pg.drop_database(db)


def test_pg_reset_users_restores_the_master(pg: PostgresHandle) -> None:
    with pg_master(pg) as conn:
        conn.execute("GRANT rds_iam TO postgres")  # makes the master an IAM user, as on RDS
        conn.execute("ALTER ROLE postgres PASSWORD 'changed-by-test'")
    assert pg.is_iam_user(pg.master_user)
    pg.reset_users()
    assert not pg.is_iam_user(pg.master_user)
    with pg_master(pg) as conn:  # the bootstrap password works again
        assert conn.execute("SELECT pg_has_role('rds_superuser', 'MEMBER')").fetchone() == (True,)
        conn.execute("CREATE ROLE again")
        conn.execute("GRANT rds_iam TO again")  # and the master can still grant rds_iam
    assert pg.is_iam_user("again")


# -- MySQL / MariaDB ------------------------------------------------------------------------------
def test_my_fresh_schema_and_template_copy(my: MysqlHandle) -> None:
    a = my.fresh_database()
    with my_master(my, a) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE seeded (v VARCHAR(20) PRIMARY KEY)")
        cur.execute("INSERT INTO seeded VALUES ('migrated')")
    b = my.create_database(a + "_copy", template=a)
    c = my.fresh_database()
    try:
        assert my.admin_execute("SELECT v FROM seeded", dbname=b) == [("migrated",)]
        keys = my.admin_execute(
            "SELECT column_key FROM information_schema.columns WHERE table_schema = %s", [b]
        )
        assert keys == [("PRI",)]  # structure, not just data
        tables = my.admin_execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [c]
        )
        assert tables == [(0,)]
    finally:
        for name in (a, b, c):
            my.drop_database(name)
    assert not my.admin_execute("SHOW DATABASES LIKE %s", [a])


def test_my_drop_database_refuses_system_schemas(my: MysqlHandle) -> None:
    with pytest.raises(ValueError, match="system schema"):
        my.drop_database("mysql")


def test_my_reset_users_drops_users_roles_and_catalog_rows(my: MysqlHandle) -> None:
    with my_master(my) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER 'iam_u'@'%' IDENTIFIED BY 'pw'")
        cur.execute("CREATE USER 'local_u'@'localhost' IDENTIFIED BY 'pw'")
        cur.execute("CREATE ROLE app_role")
        cur.execute(f"GRANT SELECT ON `{my.dbname}`.* TO 'iam_u'@'%'")
    my.record_iam_user("iam_u")
    session = pymysql.connect(**my._dsn("iam_u", "pw", my.dbname), autocommit=True)
    dropped = my.reset_users()
    assert sorted(dropped) == ["app_role@", "iam_u@%", "local_u@localhost"]
    assert not my.is_iam_user("iam_u")
    users = sorted(my.admin_execute("SELECT user, host FROM mysql.user"))
    assert users == [
        ("admin", "%"),
        ("mariadb.sys", "localhost"),
        ("rdsadmin", "%"),
        ("root", "localhost"),
    ]
    with pytest.raises(pymysql.err.MySQLError), session.cursor() as cur:
        cur.execute("SELECT 1")
    session.close()
    assert my.reset_users() == []


def test_my_reset_users_restores_master_grants_and_password(my: MysqlHandle) -> None:
    with my_master(my) as conn, conn.cursor() as cur:
        cur.execute("ALTER USER CURRENT_USER() IDENTIFIED BY 'changed'")
    my.admin_execute("REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'admin'@'%'")
    my.reset_users()
    with my_master(my) as conn, conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = " ".join(r[0] for r in cur.fetchall())
    assert "ALL PRIVILEGES ON *.*" in grants and "WITH GRANT OPTION" in grants
