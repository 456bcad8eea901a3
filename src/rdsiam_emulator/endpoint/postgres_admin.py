"""The PostgreSQL endpoint's own admin client: one long-lived session on the real server.

It answers "is this an IAM user?" (``rds_iam`` membership) for every login, and reads and sets
role passwords (the derived password of IAM users). Raises ``BackendUnreachable`` when the server
cannot be reached or refuses the admin login or a query.
"""

from __future__ import annotations

import asyncio

from rdsiam_emulator.endpoint.backend import BackendAddress, BackendUnreachable
from rdsiam_emulator.endpoint.relay import ConnectionClosed, RelayConnection
from rdsiam_emulator.engines import POSTGRES
from rdsiam_emulator.protocols.postgres.backend import BackendLogin, LoginFailed, LoginSucceeded
from rdsiam_emulator.protocols.postgres.codec import ProtocolError
from rdsiam_emulator.protocols.postgres.query import (
    QueryResult,
    SimpleQuery,
    is_iam_user_sql,
    query_message,
    quote_ident,
    quote_literal,
)
from rdsiam_emulator.protocols.postgres.scram import scram_verifier

ADMIN_DATABASE = POSTGRES.admin_database or "postgres"


def _socket_path(target: BackendAddress) -> str | None:
    """The server's socket file in its private socket directory, if it has one."""
    if target.unix_socket is None:
        return None
    return f"{target.unix_socket}/.s.PGSQL.{target.port}"


async def open_backend(target: BackendAddress, timeout: float) -> RelayConnection:
    """A new connection to the server (its private socket when it has one) within ``timeout``
    seconds; raises ``BackendUnreachable``."""
    loop = asyncio.get_running_loop()
    path = _socket_path(target)
    where = path or f"{target.host}:{target.port}"
    try:
        async with asyncio.timeout(timeout):
            if path is not None:
                _, proto = await loop.create_unix_connection(RelayConnection, path)
            else:
                _, proto = await loop.create_connection(RelayConnection, target.host,
                                                        target.port)
    except (OSError, TimeoutError) as exc:
        raise BackendUnreachable(f"cannot reach {where}: {exc}") from exc
    return proto


async def log_in(conn: RelayConnection, login: BackendLogin) -> LoginSucceeded | LoginFailed:
    """Drive ``login`` over ``conn`` until the server accepts or refuses it (a close is a
    refusal, 08006); bytes after the login stay readable on ``conn``."""
    conn.write(login.data_to_send())
    while True:
        try:
            data = await conn.read()
        except ConnectionClosed:
            return LoginFailed({"S": "FATAL", "V": "FATAL", "C": "08006",
                                "M": "the server closed the connection during login"})
        result = login.receive_data(data)
        out = login.data_to_send()
        if out:
            conn.write(out)
        if result is not None:
            conn.unread(login.take_rest())
            return result


class AdminClient:
    """One long-lived admin session per endpoint, reconnected on failure, one query at a time.

    ``timeout``: seconds to connect and log in, and for each query."""

    def __init__(self, target: BackendAddress, *, timeout: float = 10.0) -> None:
        self._target = target
        self._timeout = timeout
        self._conn: RelayConnection | None = None
        self._lock = asyncio.Lock()
        self.server_version = ""

    @property
    def server_major(self) -> int:
        """The server's major version from its ``server_version`` (e.g. 15 for ``15.4``); 0 before
        the first admin login or when the value does not start with a number.
        """
        head = self.server_version.split(".")[0].split(" ")[0]
        return int(head) if head.isdigit() else 0

    async def query(self, sql: str) -> QueryResult:
        """Run ``sql`` (one simple query); raises ``BackendUnreachable`` after one reconnect."""
        async with self._lock:
            for attempt in (1, 2):
                try:
                    conn = await self._connection()
                    async with asyncio.timeout(self._timeout):
                        return await self._run(conn, sql)
                except (ConnectionClosed, OSError, TimeoutError, ProtocolError) as exc:
                    self._drop()
                    if attempt == 2:
                        why = (f"timed out: no answer in {self._timeout:g} s"
                               if isinstance(exc, TimeoutError) else str(exc))
                        raise BackendUnreachable(f"admin query failed: {why}") from exc
            raise AssertionError("unreachable")

    async def _run(self, conn: RelayConnection, sql: str) -> QueryResult:
        conn.write(query_message(sql))
        collector = SimpleQuery()
        while True:
            result = collector.receive_data(await conn.read())
            if result is not None:
                return result

    async def _connection(self) -> RelayConnection:
        if self._conn is not None and self._conn.transport is not None \
                and not self._conn.transport.is_closing():
            return self._conn
        conn = await open_backend(self._target, self._timeout)
        login = BackendLogin(user=self._target.admin_user, database=ADMIN_DATABASE,
                             password=self._target.admin_password,
                             params={"application_name": "rdsiam-emulator"})
        async with asyncio.timeout(self._timeout):
            result = await log_in(conn, login)
        if isinstance(result, LoginFailed):
            conn.close()
            raise BackendUnreachable(f"admin login failed: {result.message}")
        self.server_version = result.parameters.get("server_version", "")
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.abort()
        self._conn = None

    async def is_iam_user(self, user: str) -> bool:
        """Whether ``user`` is an IAM user (``query.is_iam_user_sql``: the rule both the endpoint
        and the backend handle use). Raises ``BackendUnreachable``."""
        sql = is_iam_user_sql(user)
        result = await self.query(sql)
        if result.error is not None:
            raise BackendUnreachable(f"membership query failed: {result.error.get('M')}")
        return bool(result.rows) and result.rows[0][0] == "t"

    async def has_password(self, user: str) -> bool | None:
        """Whether role ``user`` has a password (None: no such role). Reads pg_authid, which
        only a superuser (the admin) can."""
        result = await self.query(
            "SELECT rolpassword IS NOT NULL FROM pg_authid"  # noqa: S608 - quote_literal()ed
            f" WHERE rolname = {quote_literal(user)}")
        if result.error is not None:
            raise BackendUnreachable(f"password query failed: {result.error.get('M')}")
        return None if not result.rows else result.rows[0][0] == "t"

    async def set_password(self, user: str, password: str) -> None:
        """Store the SCRAM verifier of ``password`` (the plaintext never reaches the server)."""
        verifier = scram_verifier(password)
        result = await self.query(
            f"ALTER ROLE {quote_ident(user)} PASSWORD {quote_literal(verifier)}")
        if result.error is not None:
            message = result.error.get("M")
            raise BackendUnreachable(f"cannot set the backend password: {message}")

    async def close(self) -> None:
        """Close the session (a later query opens a new one)."""
        self._drop()
