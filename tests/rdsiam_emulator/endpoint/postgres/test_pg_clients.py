"""Real drivers through the endpoint: psycopg 3, psycopg2, asyncpg, SQLAlchemy, psql; and the
post-authentication protocol (extended queries, COPY, LISTEN/NOTIFY, large results)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import time

import asyncpg
import psycopg
import psycopg2
import pytest
import sqlalchemy as sa
from pg_env import RDS_HOST
from sqlalchemy.ext.asyncio import create_async_engine

PSQL = "/usr/lib/postgresql/15/bin/psql"


def test_psycopg3_require_auth_password_and_startup_options(endpoint) -> None:
    user = endpoint.iam_user()
    info = endpoint.conninfo(user, endpoint.token(user), require_auth="password",
                             options="-c statement_timeout=1234 -c search_path=public")
    with psycopg.connect(info) as conn:
        assert conn.execute("show statement_timeout").fetchone() == ("1234ms",)
        assert conn.execute("show search_path").fetchone() == ("public",)
        assert conn.info.parameter_status("server_version").startswith("15")
        assert conn.info.backend_pid == conn.execute("select pg_backend_pid()").fetchone()[0]


def test_password_user_rejects_require_auth_password(endpoint) -> None:
    """A SCRAM user is asked for SCRAM (relayed), so require_auth=password refuses it, as on RDS."""
    user, password = endpoint.password_user()
    with pytest.raises(psycopg.OperationalError, match="server requested SASL authentication"):
        psycopg.connect(endpoint.conninfo(user, password, dbname="postgres",
                                          require_auth="password"))
    with psycopg.connect(endpoint.conninfo(user, password, dbname="postgres",
                                           require_auth="scram-sha-256",
                                           channel_binding="disable")) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)


def test_psycopg2(endpoint) -> None:
    user = endpoint.iam_user()
    conn = psycopg2.connect(host=RDS_HOST, hostaddr="127.0.0.1", port=endpoint.port, user=user,
                            password=endpoint.token(user), dbname="app", sslmode="verify-full",
                            sslrootcert=str(endpoint.ca.bundle_path))
    try:
        cur = conn.cursor()
        cur.execute("select current_user, %s::int + 1", (41,))
        assert cur.fetchone() == (user, 42)
    finally:
        conn.close()


def _asyncpg_ssl(endpoint):
    return endpoint.ca.client_context()


@pytest.fixture
def rds_name():
    """asyncpg resolves in Python: the RDS-style name (the only one in the certificate, as on
    RDS) resolves to 127.0.0.1 in this process for the test."""
    from rdsiam_emulator import resolver

    resolver.register(RDS_HOST)
    yield RDS_HOST
    resolver.unregister(RDS_HOST)


def test_asyncpg_and_sqlstate_28000(endpoint, rds_name) -> None:
    user = endpoint.iam_user()

    async def main() -> None:
        conn = await asyncpg.connect(host=rds_name, port=endpoint.port, user=user,
                                     password=endpoint.token(user), database="app",
                                     ssl=_asyncpg_ssl(endpoint))
        try:
            assert await conn.fetchval("select session_user") == user
            assert await conn.fetchval("select $1::int * 2", 21) == 42
        finally:
            await conn.close()
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError) as err:
            await asyncpg.connect(host=rds_name, port=endpoint.port, user=user,
                                  password="bogus", database="app", ssl=_asyncpg_ssl(endpoint))
        assert err.value.sqlstate == "28000"
        assert str(err.value) == f'PAM authentication failed for user "{user}"'

    asyncio.run(main())


def test_asyncpg_statement_timeout_cancel(endpoint, rds_name) -> None:
    user = endpoint.iam_user()

    async def main() -> None:
        conn = await asyncpg.connect(host=rds_name, port=endpoint.port, user=user,
                                     password=endpoint.token(user), database="app",
                                     ssl=_asyncpg_ssl(endpoint))
        try:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetchval("select pg_sleep(20)", timeout=2)
            # asyncpg sent a CancelRequest: the session is usable again quickly.
            assert await conn.fetchval("select 7") == 7
            assert time.monotonic() - started < 10
        finally:
            await conn.close()

    asyncio.run(main())


def test_sqlalchemy_sync_do_connect_token_injection(endpoint) -> None:
    user = endpoint.iam_user()
    url = sa.URL.create("postgresql+psycopg", username=user, host=RDS_HOST, port=endpoint.port,
                        database="app", query={"sslmode": "verify-full", "hostaddr": "127.0.0.1",
                                               "sslrootcert": str(endpoint.ca.bundle_path)})
    engine = sa.create_engine(url, pool_size=2)
    minted: list[str] = []

    @sa.event.listens_for(engine, "do_connect")
    def provide_token(dialect, conn_rec, cargs, cparams) -> None:
        minted.append(user)
        cparams["password"] = endpoint.token(user)

    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select current_user")).scalar() == user
        engine.dispose()
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
        assert len(minted) == 2
    finally:
        engine.dispose()


def test_sqlalchemy_async_do_connect_token_injection(endpoint, rds_name) -> None:
    user = endpoint.iam_user()

    async def main() -> None:
        url = sa.URL.create("postgresql+asyncpg", username=user, host=rds_name,
                            port=endpoint.port, database="app")
        engine = create_async_engine(url, connect_args={"ssl": _asyncpg_ssl(endpoint)})

        @sa.event.listens_for(engine.sync_engine, "do_connect")
        def provide_token(dialect, conn_rec, cargs, cparams) -> None:
            cparams["password"] = endpoint.token(user)

        try:
            async with engine.connect() as conn:
                result = await conn.execute(sa.text("select current_user, session_user"))
                assert tuple(result.one()) == (user, user)
        finally:
            await engine.dispose()

    asyncio.run(main())


def _psql_env(token: str) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": token}


def _psql_conninfo(endpoint, user: str) -> str:
    return (f"host={RDS_HOST} hostaddr=127.0.0.1 port={endpoint.port} user={user} dbname=app "
            f"sslmode=verify-full sslrootcert={endpoint.ca.bundle_path}")


def test_psql_cli(endpoint) -> None:
    user = endpoint.iam_user()
    out = subprocess.run([PSQL, _psql_conninfo(endpoint, user), "-XAtc",
                          "select current_user || ' ' || session_user"],
                         env=_psql_env(endpoint.token(user)), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{user} {user}"
    bad = subprocess.run([PSQL, _psql_conninfo(endpoint, user), "-XAtc", "select 1"],
                         env=_psql_env("wrong"), capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
    assert f'FATAL:  PAM authentication failed for user "{user}"' in bad.stderr


def test_psql_ctrl_c_cancels_the_query(endpoint) -> None:
    user = endpoint.iam_user()
    proc = subprocess.Popen([PSQL, _psql_conninfo(endpoint, user), "-XAtc",
                             "select pg_sleep(30)"], env=_psql_env(endpoint.token(user)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        endpoint.wait_until_sleeping(user)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert time.monotonic() - started < 10
        assert "canceling statement due to user request" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_copy_in_and_out(endpoint) -> None:
    user = endpoint.iam_user()
    rows = [(i, hashlib.sha1(str(i).encode()).hexdigest()) for i in range(50_000)]
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        conn.execute("create temp table t (id int, h text)")
        with conn.cursor().copy("copy t from stdin") as copy:
            for row in rows:
                copy.write_row(row)
        assert conn.execute("select count(*), sum(id) from t").fetchone() == (
            50_000, sum(r[0] for r in rows))
        out = bytearray()
        with conn.cursor().copy("copy t to stdout") as copy:
            for chunk in copy:
                out += chunk
    expected = "".join(f"{i}\t{h}\n" for i, h in rows).encode()
    assert bytes(out) == expected


def test_listen_notify(endpoint) -> None:
    user = endpoint.iam_user()
    info = endpoint.conninfo(user, endpoint.token(user))
    with psycopg.connect(info, autocommit=True) as listener, \
            psycopg.connect(endpoint.conninfo(user, endpoint.token(user)),
                            autocommit=True) as sender:
        listener.execute("listen chan")
        sender.execute("select pg_notify('chan', 'hello')")
        received = [(n.channel, n.payload) for n in listener.notifies(timeout=5, stop_after=1)]
    assert received == [("chan", "hello")]


def test_large_result_and_prepared_statements(endpoint) -> None:
    user = endpoint.iam_user()
    with psycopg.connect(endpoint.conninfo(user, endpoint.token(user))) as conn:
        cur = conn.execute("select i, repeat('x', 1000) from generate_series(1, %s) i",
                           (30_000,), prepare=True)
        total = 0
        count = 0
        for i, text in cur:
            total += i
            count += len(text)
        assert total == 30_000 * 30_001 // 2
        assert count == 30_000 * 1000
        for n in range(10):
            assert conn.execute("select %s::int", (n,), prepare=True).fetchone() == (n,)


def test_concurrent_sessions(endpoint, rds_name) -> None:
    user = endpoint.iam_user()

    async def one(i: int) -> int:
        conn = await asyncpg.connect(host=rds_name, port=endpoint.port, user=user,
                                     password=endpoint.token(user), database="app",
                                     ssl=_asyncpg_ssl(endpoint))
        try:
            return int(await conn.fetchval("select $1::int", i))
        finally:
            await conn.close()

    async def main() -> list[int]:
        return list(await asyncio.gather(*(one(i) for i in range(30))))

    assert asyncio.run(main()) == list(range(30))
