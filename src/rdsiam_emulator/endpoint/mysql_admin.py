# ruff: noqa: S608 - every value is spliced in as a hex literal (hexlit), never as quoted text
"""The MySQL engine's one admin client (the endpoint's, and the backend handle's for "is this an
IAM user?"), and the endpoint's cached copy of the IAM user catalog.

The catalog (``rdsiam_catalog.iam_users``) records which accounts were created or altered with
``IDENTIFIED WITH AWSAuthenticationPlugin``: the backend itself only knows them as password users
(with the emulator's derived password). Every login needs the answer, so the endpoint keeps the
catalog's user names in memory (``CatalogCache``) rather than paying a round trip to the server
per login: writes by the endpoint (its own DDL rewriting) and by the backend handle bump the
handle's ``CatalogVersion`` (``backends.mysql_catalog``) and are seen by the very next login;
writes from elsewhere are seen once the cached copy is ``catalog_max_age`` seconds old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from rdsiam_emulator.backends.mysql_catalog import CATALOG as CATALOG_TABLE
from rdsiam_emulator.backends.mysql_catalog import CATALOG_DDL, TLS_REQUIRED, CatalogVersion
from rdsiam_emulator.endpoint.backend import BackendAddress, BackendUnreachable
from rdsiam_emulator.protocols.mysql.constants import Capability
from rdsiam_emulator.protocols.mysql.ddl import Account, set_password_sql
from rdsiam_emulator.protocols.mysql.handshake import (
    BackendLogin,
    LoginFailed,
    LoginSucceeded,
    SendBackend,
)
from rdsiam_emulator.protocols.mysql.messages import Greeting, HandshakeResponse
from rdsiam_emulator.protocols.mysql.packets import Packet, PacketDecoder, encode_packet
from rdsiam_emulator.protocols.mysql.results import QueryError, TextResult
from rdsiam_emulator.protocols.need_data import NeedData

log = logging.getLogger(__name__)

ADMIN_CAPABILITIES = (
    Capability.LONG_PASSWORD | Capability.LONG_FLAG | Capability.PROTOCOL_41
    | Capability.TRANSACTIONS | Capability.SECURE_CONNECTION | Capability.MULTI_RESULTS
    | Capability.PLUGIN_AUTH | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
)


def hexlit(text: str) -> str:
    """A utf8mb4 string given as hex: no quoting questions, no injection."""
    return "CONVERT(X'" + text.encode("utf-8").hex() + "' USING utf8mb4)"


DEFAULT_CATALOG_MAX_AGE = 1.0
"""Seconds a cached catalog may serve logins before it is reloaded (writers in other processes)."""
ADMIN_LOCK_WAIT = 2
"""The admin session's ``lock_wait_timeout`` (seconds): a table lock someone else holds on the
catalog (the master's ``LOCK TABLES``) makes a reload fail with 1205 this soon, and logins go on
with the copy they have, instead of waiting for the lock (MySQL's default: a year)."""
ER_LOCK_WAIT_TIMEOUT = 1205


class CatalogCache:
    """The catalog's user names, valid for one generation and at most ``max_age`` seconds."""

    def __init__(self, version: CatalogVersion, max_age: float) -> None:
        self.version = version
        self.max_age = max_age
        self.users: frozenset[str] | None = None
        self._generation = -1
        self._loaded_at = 0.0
        self.loads = 0
        """How many times the names were read from the server (tests and benchmarks look)."""

    def lookup(self, user: str, now: float) -> bool | None:
        """The answer, or None when the copy must be reloaded first."""
        if (self.users is None or self._generation != self.version.value
                or now - self._loaded_at > self.max_age):
            return None
        return user in self.users

    def store(self, names: Iterable[str], generation: int, now: float) -> frozenset[str]:
        """``generation`` as read *before* the query, so a write during it forces a reload.

        Names are kept exactly as stored: the server matches a login name exactly (trailing
        spaces and case count), though the catalog column's PAD SPACE collation would not.
        """
        self.users = frozenset(names)
        self._generation = generation
        self._loaded_at = now
        self.loads += 1
        return self.users

    def keep(self, generation: int, now: float) -> None:
        """Serve the copy held for another ``max_age`` (a reload was not possible)."""
        self._generation = generation
        self._loaded_at = now


class AdminClient:
    """The MySQL endpoint's own admin client: one serialised session, reconnected once on
    failure; answers "is this an IAM user?" from the cached catalog. ``timeout``: seconds to
    connect and for each query. Raises ``BackendUnreachable``; ``QueryError`` for a statement
    the server refused."""

    def __init__(self, address: BackendAddress, *, timeout: float = 10.0,
                 catalog_max_age: float = DEFAULT_CATALOG_MAX_AGE,
                 catalog_version: CatalogVersion | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._catalog_ready = False
        # the backend handle's counter when given (its writes are seen at once), else our own
        self.catalog = CatalogCache(catalog_version or CatalogVersion(), catalog_max_age)
        self._catalog_load = asyncio.Lock()
        self._mariadb: bool | None = None

    async def close(self) -> None:
        """Close the admin session, if open; the next query reconnects."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def query(self, sql: str) -> TextResult:
        """Run ``sql`` (one text-protocol query) and return the whole response.

        An ERR answer is returned in ``TextResult.error``, not raised. Raises ``BackendUnreachable``
        when connecting, logging in or the query fails twice (one reconnect) or times out.
        """
        async with self._lock:
            for attempt in (1, 2):
                try:
                    async with asyncio.timeout(self.timeout):
                        if self._writer is None:
                            await self._connect()
                        return await self._query(sql)
                except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    await self.close()
                    if attempt == 2:
                        raise BackendUnreachable(f"admin query failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def execute(self, sql: str) -> TextResult:
        """Like ``query``, but raises ``QueryError`` when the server answers with ERR."""
        result = await self.query(sql)
        if result.error is not None:
            raise QueryError(result.error)
        return result

    # catalog ------------------------------------------------------------------------------------
    async def ensure_catalog(self) -> None:
        """Create the IAM-user catalog if missing (once per client).

        Raises as ``execute``.
        """
        if not self._catalog_ready:
            for statement in CATALOG_DDL:
                await self.execute(statement)
            self._catalog_ready = True

    async def is_iam_user(self, user: str) -> bool:
        """Whether ``user`` has an account in the IAM-user catalog: the engine's one answer (the
        backend handle asks it too). Names compare exactly (trailing spaces, case, every code
        point), as the server compares a login name with its accounts. Served from the cache
        while it is current; else reloads it (one reload shared by concurrent callers). Raises
        as ``execute``.
        """
        loop = asyncio.get_running_loop()
        answer = self.catalog.lookup(user, loop.time())
        if answer is not None:
            return answer
        async with self._catalog_load:  # concurrent logins share one reload
            answer = self.catalog.lookup(user, loop.time())
            if answer is None:
                generation = self.catalog.version.value
                await self.ensure_catalog()
                # no DISTINCT: under the column's PAD SPACE it would fold 'u' and 'u '
                try:
                    result = await self.execute(f"SELECT `user` FROM {CATALOG_TABLE}")
                except QueryError as exc:
                    held = self.catalog.users
                    if exc.error.code != ER_LOCK_WAIT_TIMEOUT or held is None:
                        raise
                    # someone holds a lock on the catalog: logins go on with the copy we have
                    log.warning("mysql endpoint: the IAM-user catalog is locked (%s); serving "
                                "the copy loaded before", exc.error.render())
                    self.catalog.keep(generation, loop.time())
                    return user in held
                users = self.catalog.store(((row[0] or b"").decode("utf-8", "replace")
                                            for row in result.rows), generation, loop.time())
                # What was just read answers this login even if a write landed meanwhile
                # (that write only makes the *next* login reload).
                answer = user in users
        return answer

    async def existing_accounts(self, accounts: Iterable[Account]) -> set[Account]:
        """The subset of ``accounts`` (user@host) that exist in ``mysql.user``.

        Raises as ``execute``.
        """
        found: set[Account] = set()
        for acc in accounts:
            result = await self.execute(
                f"SELECT 1 FROM mysql.user WHERE User = {hexlit(acc.user)} "
                f"AND Host = {hexlit(acc.host)}")
            if result.rows:
                found.add(acc)
        return found

    async def set_iam(self, account: Account, iam: bool) -> None:
        """Add ``account`` to the IAM-user catalog (``iam`` True) or remove it, and bump the catalog
        version so the next login reloads, even when the write failed. Raises as ``execute``.
        """
        await self.ensure_catalog()
        try:
            if iam:
                await self.execute(
                    f"INSERT IGNORE INTO {CATALOG_TABLE} (`user`, `host`) VALUES "
                    f"({hexlit(account.user)}, {hexlit(account.host)})")
            else:
                for table in (CATALOG_TABLE, TLS_REQUIRED):
                    await self.execute(
                        f"DELETE FROM {table} WHERE `user` = {hexlit(account.user)} "
                        f"AND `host` = {hexlit(account.host)}")
        finally:  # even a failed write may have changed the table
            self.catalog.version.changed()

    async def set_password(self, account: Account, password: str) -> None:
        """Give ``account`` ``password`` (an IAM account's derived or placeholder password).

        On MariaDB only the password's stored hash is sent: no SQL text (process list, logs)
        ever holds a password derived from the instance secret. On MySQL the account's password
        history is emptied first: the derived password is the same every time, so PASSWORD
        HISTORY / REUSE INTERVAL (the account's or the server's) would refuse it (3638); an IAM
        account has no password of its own whose history matters. Raises as ``execute``."""
        if self._mariadb is None:
            version = (await self.execute("SELECT VERSION()")).rows[0][0] or b""
            self._mariadb = b"mariadb" in version.lower()
        if not self._mariadb:
            # an admin without DELETE there (an external server's) still gets the ALTER's answer
            await self.query(
                f"DELETE FROM mysql.password_history WHERE User = {hexlit(account.user)} "
                f"AND Host = {hexlit(account.host)}")
        await self.execute(set_password_sql(account, password, self._mariadb))

    async def reset_iam_passwords(self, user: str, password: str) -> None:
        """Give every catalog account of ``user`` the derived ``password`` again."""
        await self.ensure_catalog()
        result = await self.execute(
            f"SELECT c.`host` FROM {CATALOG_TABLE} c JOIN mysql.user u "
            f"ON u.User = c.`user` AND u.Host = c.`host` WHERE c.`user` = {hexlit(user)}")
        for (host,) in result.rows:
            if host is not None:
                await self.set_password(Account(user, host.decode("utf-8")), password)

    async def has_account(self, user: str) -> bool:
        """Whether ``mysql.user`` has an account whose name is exactly ``user`` (any host;
        trailing spaces count, as in the server's login: the table's PAD SPACE comparison
        would match 'u' for 'u '). Raises as ``execute``."""
        result = await self.execute(f"SELECT User FROM mysql.user WHERE User = {hexlit(user)}")
        return any((name or b"").decode("utf-8", "replace") == user for (name,) in result.rows)

    async def is_iam_account(self, account: Account) -> bool:
        """Whether this exact user@host ``account`` is in the IAM-user catalog (no cache).

        Raises as ``execute``.
        """
        await self.ensure_catalog()
        result = await self.execute(
            f"SELECT 1 FROM {CATALOG_TABLE} WHERE `user` = {hexlit(account.user)} "
            f"AND `host` = {hexlit(account.host)}")
        return bool(result.rows)

    async def set_requires_tls(self, account: Account, required: bool) -> None:
        """Record whether IAM account ``account`` was given ``REQUIRE SSL`` (the server itself
        was given ``REQUIRE NONE``). Raises as ``execute``."""
        await self.ensure_catalog()
        if required:
            await self.execute(
                f"INSERT IGNORE INTO {TLS_REQUIRED} (`user`, `host`) VALUES "
                f"({hexlit(account.user)}, {hexlit(account.host)})")
        else:
            await self.execute(
                f"DELETE FROM {TLS_REQUIRED} WHERE `user` = {hexlit(account.user)} "
                f"AND `host` = {hexlit(account.host)}")

    async def requires_tls(self, account: Account) -> bool:
        """Whether IAM account ``account`` was given ``REQUIRE SSL`` (no cache). Raises as
        ``execute``."""
        await self.ensure_catalog()
        result = await self.execute(
            f"SELECT 1 FROM {TLS_REQUIRED} WHERE `user` = {hexlit(account.user)} "
            f"AND `host` = {hexlit(account.host)}")
        return bool(result.rows)

    async def server_requires_ssl(self, account: Account) -> bool:
        """Whether the server itself requires TLS of ``account`` (``mysql.user.ssl_type`` ANY:
        exactly ``REQUIRE SSL``). Raises as ``execute``."""
        result = await self.execute(
            f"SELECT ssl_type FROM mysql.user WHERE User = {hexlit(account.user)} "
            f"AND Host = {hexlit(account.host)}")
        return bool(result.rows) and result.rows[0][0] == b"ANY"

    async def set_server_require(self, account: Account, ssl: bool) -> None:
        """``ALTER USER account REQUIRE SSL`` (``ssl``) or ``REQUIRE NONE`` on the server.
        Raises as ``execute``."""
        await self.execute(f"ALTER USER {account.sql()} REQUIRE {'SSL' if ssl else 'NONE'}")

    # wire ---------------------------------------------------------------------------------------
    async def _connect(self) -> None:
        addr = self.address
        # a local server's private socket when it has one (it normally has no TCP)
        if addr.unix_socket is not None:
            reader, writer = await asyncio.open_unix_connection(addr.unix_socket)
        else:
            reader, writer = await asyncio.open_connection(addr.host, addr.port)
        self._reader, self._writer = reader, writer
        decoder = PacketDecoder(1 << 20)
        packets: list[Packet] = []
        while not packets:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("backend closed before its greeting")
            packets = decoder.feed(data)
        greeting = Greeting.parse(packets[0].payload)
        hello = HandshakeResponse(
            capabilities=ADMIN_CAPABILITIES & greeting.capabilities | Capability.PROTOCOL_41,
            max_packet=1 << 24, charset=45, filler=b"\0" * 23,
            user=addr.admin_user.encode(), auth_plugin=greeting.auth_plugin,
        )
        login = BackendLogin.for_handshake(greeting, hello,
                                           password=addr.admin_password.encode())
        writer.write(login.start())
        while True:
            event = login.next_event()
            if isinstance(event, NeedData):
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("backend closed during the admin login")
                login.receive_data(data)
            elif isinstance(event, SendBackend):
                writer.write(event.data)
            elif isinstance(event, LoginSucceeded):
                await self._set_lock_wait()
                return
            elif isinstance(event, LoginFailed):
                await self.close()
                raise BackendUnreachable("admin login refused: " + event.error.render())

    async def _set_lock_wait(self) -> None:
        result = await self._query(f"SET SESSION lock_wait_timeout = {ADMIN_LOCK_WAIT:d}")
        if result.error is not None:
            raise BackendUnreachable("admin session set-up refused: " + result.error.render())

    async def _query(self, sql: str) -> TextResult:
        assert self._reader is not None and self._writer is not None
        self._writer.write(encode_packet(0, b"\x03" + sql.encode("utf-8")))
        decoder = PacketDecoder(64 * 1024 * 1024)
        result = TextResult()
        while True:
            data = await self._reader.read(65536)
            if not data:
                raise ConnectionError("backend closed during an admin query")
            for packet in decoder.feed(data):
                if result.feed(packet):
                    return result
