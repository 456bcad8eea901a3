"""The backend login's cached SCRAM SaltedPassword against a real PostgreSQL 15: a repeated login
is answered from the cache, and a role whose password (and so salt) changed with ALTER ROLE still
logs in, while its old password no longer does."""

from __future__ import annotations

import asyncio
import uuid

from pg_env import PgServer

from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.postgres_admin import log_in, open_backend
from rdsiam_emulator.protocols.postgres.backend import BackendLogin, LoginFailed, LoginSucceeded
from rdsiam_emulator.protocols.postgres.scram import SaltedPasswordCache


def _login(pg_server: PgServer, user: str, password: str,
           cache: SaltedPasswordCache) -> LoginSucceeded | LoginFailed:
    async def run() -> LoginSucceeded | LoginFailed:
        conn = await open_backend(BackendAddress.from_handle(pg_server.handle), 10)
        try:
            return await log_in(conn, BackendLogin(user=user, database="postgres",
                                                   password=password, salted_passwords=cache))
        finally:
            conn.close()

    return asyncio.run(run())


def _salt(pg_server: PgServer, user: str) -> str:
    [[row]] = pg_server.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'")
    return str(row[0]).split("$")[1]  # "<iterations>:<salt>"


def test_altered_password_logs_in_through_a_cache_miss(pg_server: PgServer) -> None:
    user = f"scram_{uuid.uuid4().hex[:8]}"
    cache = SaltedPasswordCache(maxsize=4)
    pg_server.sql(f"CREATE ROLE {user} LOGIN PASSWORD 'first-pw'")
    try:
        assert isinstance(_login(pg_server, user, "first-pw", cache), LoginSucceeded)
        assert isinstance(_login(pg_server, user, "first-pw", cache), LoginSucceeded)
        assert (cache.computed, cache.hits) == (1, 1)

        old_salt = _salt(pg_server, user)
        pg_server.sql(f"ALTER ROLE {user} PASSWORD 'first-pw'")  # same password, new salt
        assert _salt(pg_server, user) != old_salt
        assert isinstance(_login(pg_server, user, "first-pw", cache), LoginSucceeded)
        assert (cache.computed, cache.hits) == (2, 1)

        pg_server.sql(f"ALTER ROLE {user} PASSWORD 'second-pw'")
        assert isinstance(_login(pg_server, user, "second-pw", cache), LoginSucceeded)
        refused = _login(pg_server, user, "first-pw", cache)
        assert isinstance(refused, LoginFailed) and refused.sqlstate == "28P01"
        assert cache.computed == 4 and cache.hits == 1
    finally:
        pg_server.sql(f"DROP ROLE IF EXISTS {user}")
