# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""The endpoint's cached IAM-user catalog: no server round trip per login, yet every catalog write
in this process is seen by the next login, and writes from elsewhere within ``catalog_max_age``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pymysql
import pytest
from mysql_env import MyEnv, _make_env, emulator_ca, mariadb, unique  # noqa: F401
from test_mysql_endpoint import connect, make_iam_user, master, scalar

from rdsiam_emulator.backends.mysql_handle import CATALOG
from rdsiam_emulator.endpoint.mysql import MysqlEndpointSettings


@pytest.fixture
def long_cache(mariadb, emulator_ca) -> Iterator[MyEnv]:
    """A cache that never expires by age during a test: only generations can refresh it."""
    yield from _make_env(mariadb, emulator_ca, settings=MysqlEndpointSettings(catalog_max_age=600))


@pytest.fixture
def short_cache(mariadb, emulator_ca) -> Iterator[MyEnv]:
    yield from _make_env(mariadb, emulator_ca, settings=MysqlEndpointSettings(catalog_max_age=0.3))


def token_login_works(env: MyEnv, user: str) -> bool:
    try:
        with connect(env, user, env.token(user)) as conn:
            return bool(scalar(conn, "SELECT CURRENT_USER()") == f"{user}@%")
    except pymysql.err.OperationalError as exc:
        assert exc.args[0] == 1045
        return False


def test_logins_are_answered_from_one_catalog_load(long_cache):
    user = make_iam_user(long_cache)
    assert token_login_works(long_cache, user)
    loads = long_cache.endpoint.admin.catalog.loads
    for _ in range(3):
        assert token_login_works(long_cache, user)
        with master(long_cache) as conn:
            assert scalar(conn, "SELECT 1") == 1
    assert long_cache.endpoint.admin.catalog.loads == loads
    assert [e.method for e in long_cache.events.all()[-6:]] == ["iam", "password"] * 3


def test_ddl_through_the_endpoint_is_seen_by_the_next_login(long_cache):
    user = unique("pw")
    with master(long_cache) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-1'")
    with connect(long_cache, user, "pw-1") as conn:  # cached now: not an IAM user
        assert scalar(conn, "SELECT 1") == 1
    with master(long_cache) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    assert token_login_works(long_cache, user)
    with master(long_cache) as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER '{user}'@'%'")
    assert not token_login_works(long_cache, user)
    assert long_cache.events.all()[-1].method == "password"  # no longer in the catalog


def test_backend_handle_writes_are_seen_by_the_next_login(long_cache, mariadb):
    user = make_iam_user(long_cache)
    assert token_login_works(long_cache, user)
    mariadb.forget_iam_user(user)
    assert not token_login_works(long_cache, user)  # now a password user: the token is wrong
    assert long_cache.events.all()[-1].method == "password"
    mariadb.record_iam_user(user)
    assert token_login_works(long_cache, user)


def test_other_writers_are_seen_once_the_copy_is_max_age_old(short_cache, mariadb):
    user = make_iam_user(short_cache)
    assert token_login_works(short_cache, user)
    # Another process sharing the server: a plain connection, not this process's handle.
    with pymysql.connect(**mariadb.address_kwargs(), user=mariadb.admin_user,
                         password=mariadb.admin_password, autocommit=True) as conn, \
            conn.cursor() as cur:
        cur.execute(f"DELETE FROM {CATALOG} WHERE user = %s", [user])
    time.sleep(0.3 + 0.2)
    assert not token_login_works(short_cache, user)
    assert short_cache.events.all()[-1].method == "password"


def test_names_compare_exactly_as_the_server_matches_a_login(long_cache):
    """Not as the catalog column's PAD SPACE collation would: the server refuses a login as
    'u  ' for the account 'u' (test_mysql_iam_user_rule)."""
    user = make_iam_user(long_cache)
    loop = long_cache.loop
    assert loop.run(long_cache.endpoint.admin.is_iam_user(user))
    assert not loop.run(long_cache.endpoint.admin.is_iam_user(user + "  "))
    assert not loop.run(long_cache.endpoint.admin.is_iam_user(" " + user))
    assert not loop.run(long_cache.endpoint.admin.is_iam_user(user.upper()))


def test_a_write_during_the_reload_does_not_spoil_the_answer(long_cache, mariadb):
    """The reload's own result answers the login that asked; the write only forces another
    reload for the next one."""
    user = make_iam_user(long_cache)
    admin = long_cache.endpoint.admin
    real_execute = admin.execute

    async def execute_while_someone_writes(sql: str):
        if sql.startswith("SELECT `user` FROM"):
            mariadb.record_iam_user(unique("other"))  # another writer, mid-reload
        return await real_execute(sql)

    admin.execute = execute_while_someone_writes  # type: ignore[method-assign]
    try:
        loads = admin.catalog.loads
        assert long_cache.loop.run(admin.is_iam_user(user))
        assert admin.catalog.loads == loads + 1
    finally:
        admin.execute = real_execute  # type: ignore[method-assign]
    assert long_cache.loop.run(admin.is_iam_user(user))
    assert admin.catalog.loads == loads + 2  # the write seen: reloaded once more
    assert long_cache.loop.run(admin.is_iam_user(user))
    assert admin.catalog.loads == loads + 2


def test_the_masters_lock_on_the_catalog_does_not_block_logins(short_cache):
    """#17: the master's LOCK TABLES ... WRITE on the catalog made every other login wait for the
    lock (then 2013 after 10 s). The reload now gives up after the admin session's
    lock_wait_timeout (2 s) and the logins go on with the copy loaded before."""
    env = short_cache
    iam = make_iam_user(env)
    pw = unique("lp")
    with master(env) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{pw}'@'%' IDENTIFIED BY 'Pw-1'")
    holder = master(env)  # its login loads the catalog with both users in it
    try:
        with holder.cursor() as cur:
            cur.execute(f"LOCK TABLES {CATALOG} WRITE")
        time.sleep(0.5)  # the copy is older than catalog_max_age (0.3 s)
        started = time.monotonic()
        with connect(env, pw, "Pw-1") as conn:
            assert scalar(conn, "SELECT CURRENT_USER()") == f"{pw}@%"
        assert token_login_works(env, iam)
        assert time.monotonic() - started < 6
    finally:
        with holder.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        holder.close()
    time.sleep(0.5)  # unlocked: the next login reloads (and sees a new IAM user) again
    assert token_login_works(env, make_iam_user(env))
