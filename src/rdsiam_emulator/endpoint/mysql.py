"""The MySQL/MariaDB endpoint of an emulated RDS instance: asyncio glue around sans-I/O machines.

Per client: open the backend first and greet the client with the backend's own greeting (version,
connection id, nonce) plus ``CLIENT_SSL``, so password logins can be relayed byte for byte and
``KILL <id>`` names the right backend thread. The first client packets are read straight from the
accepted socket with exact sizes, because a MySQL client sends its TLS ClientHello right after the
SSLRequest without waiting; TLS is then layered on the untouched socket.

* IAM user (in the catalog): TLS required, AuthSwitchRequest to ``mysql_clear_password``, token
  verified by the authenticator, then a backend login as that user with the derived password; the
  client gets the backend's OK. Any failure: exactly RDS's ERROR 1045.
* anyone else: the client's HandshakeResponse goes to the backend (CLIENT_SSL cleared) and the auth
  exchange is relayed; caching_sha2 full auth is re-driven with RSA (see handshake.BackendLogin).

Afterwards bytes are relayed unchanged, except that client → server COM_CHANGE_USER and user DDL
(COM_QUERY) packets are intercepted (protocols.mysql.framing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from rdsiam_emulator.authenticator import ClientInfo, Decision
from rdsiam_emulator.endpoint.mysql_admin import AdminConnection, BackendAddress
from rdsiam_emulator.endpoint.relay import ConnectionClosed, RelayConnection
from rdsiam_emulator.events import AuthEvent
from rdsiam_emulator.protocols.mysql import ddl
from rdsiam_emulator.protocols.mysql.constants import CLEAR_PASSWORD, Capability, ErrorCode
from rdsiam_emulator.protocols.mysql.framing import CommandFramer, Intercept
from rdsiam_emulator.protocols.mysql.handshake import (
    AuthData,
    BackendLogin,
    ClientHello,
    ForwardToClient,
    FrontendHandshake,
    LoginFailed,
    LoginSucceeded,
    NotifyClient,
    SendBackend,
    SslRequested,
)
from rdsiam_emulator.protocols.mysql.messages import (
    ChangeUser,
    ErrPacket,
    Greeting,
    HandshakeResponse,
    access_denied,
)
from rdsiam_emulator.protocols.mysql.packets import (
    Packet,
    PacketDecoder,
    ProtocolError,
    encode_packet,
)
from rdsiam_emulator.protocols.mysql.results import DdlOutcomes
from rdsiam_emulator.reasons import Reason
from rdsiam_emulator.secrets import derived_password

log = logging.getLogger(__name__)

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
"""MySQL's connect_timeout."""
FIRST_PACKET_MAX = 64 * 1024
CLIENT_AUTH_TIMEOUT = DEFAULT_HANDSHAKE_TIMEOUT
"""How long a client may take to answer an auth switch inside COM_CHANGE_USER."""
RELAY_WRITE_BUFFER = 1024 * 1024
"""Per-direction buffering before the relay pauses the sending peer (asyncio's default is 64 KB)."""


class IamAuthenticator(Protocol):
    """What the endpoint needs from ``authenticator.Authenticator``."""

    iam_enabled: bool

    def transport_rejection(self, client: ClientInfo) -> Reason | None: ...

    def authenticate_iam(self, *, db_user: str, token: str, client: ClientInfo) -> Decision: ...

    def reject(self, *, db_user: str, client: ClientInfo, reason: Reason, detail: str,
               hint: str | None = None, method: str = "iam") -> Decision: ...

    def record_password_login(self, *, db_user: str, client: ClientInfo, ok: bool,
                              detail: str) -> AuthEvent: ...


@dataclass
class MysqlEndpointSettings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    backend_timeout: float = 10.0


def _accept_transport(conn: RelayConnection, transport: asyncio.BaseTransport) -> None:
    """Like ``RelayConnection.connection_made`` but duck-typed: uvloop's transports do not
    subclass ``asyncio.Transport``, and the endpoint should run on either loop."""
    conn.transport = cast(asyncio.Transport, transport)


class _BackendSide(RelayConnection):
    """The backend connection; ``divert`` takes its bytes away from the client while the endpoint
    runs a command itself (rewritten DDL, COM_CHANGE_USER)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _accept_transport(self, transport)

    def __init__(self) -> None:
        super().__init__()
        self.diverted = False
        self._tap = bytearray()
        self._tap_waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        if not self.diverted:
            super().data_received(data)
            return
        self._tap += data
        if self._tap_waiter is not None and not self._tap_waiter.done():
            self._tap_waiter.set_result(None)

    async def read_tap(self) -> bytes:
        while not self._tap:
            if self.transport is None or self.transport.is_closing():
                raise ConnectionClosed("backend closed")
            self._tap_waiter = asyncio.get_running_loop().create_future()
            try:  # no timeout: a DDL may wait on a lock as long as the server lets it
                await self._tap_waiter
            finally:
                self._tap_waiter = None
        data = bytes(self._tap)
        self._tap.clear()
        return data

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tap_waiter is not None and not self._tap_waiter.done():
            self._tap_waiter.set_result(None)
        super().connection_lost(exc)

    def undivert(self) -> bytes:
        self.diverted = False
        rest = bytes(self._tap)
        self._tap.clear()
        return rest


class _ClientSide(RelayConnection):
    """The client connection; once linked, its bytes go through a ``CommandFramer``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _accept_transport(self, transport)

    def __init__(self) -> None:
        super().__init__()
        self.framer: CommandFramer | None = None
        self.backend: _BackendSide | None = None
        self.on_intercept: Callable[[Intercept], None] | None = None
        self.held: bytearray | None = None
        self._held_waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        if self.framer is None or self.backend is None:
            super().data_received(data)
            return
        if self.held is not None:
            self.held += data
            if self._held_waiter is not None and not self._held_waiter.done():
                self._held_waiter.set_result(None)
            return
        self._process(data)

    def _process(self, data: bytes) -> None:
        assert self.framer is not None and self.backend is not None
        items, rest = self.framer.feed(data)
        backend = self.backend
        for item in items:
            if isinstance(item, Intercept):
                self.held = bytearray(rest)
                if self.transport is not None:
                    with contextlib.suppress(RuntimeError):
                        self.transport.pause_reading()
                if self.on_intercept is not None:
                    self.on_intercept(item)
                return
            if backend.transport is not None:
                backend.transport.write(item)

    async def read_held(self) -> bytes:
        while not self.held:
            if self.transport is None or self.transport.is_closing():
                raise ConnectionClosed("client closed")
            if self.transport is not None:
                with contextlib.suppress(RuntimeError):
                    self.transport.resume_reading()
            self._held_waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(CLIENT_AUTH_TIMEOUT):
                    await self._held_waiter
            finally:
                self._held_waiter = None
        assert self.held is not None
        data = bytes(self.held)
        self.held.clear()
        return data

    def release(self) -> None:
        """The intercepted command is done: go on relaying (and process what came meanwhile)."""
        pending = bytes(self.held or b"")
        self.held = None
        if self.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()
        if pending:
            self._process(pending)


@dataclass
class _Session:
    """What the endpoint keeps about an authenticated session (for intercepted commands)."""

    client: _ClientSide
    backend: _BackendSide
    greeting: Greeting
    capabilities: int
    info: ClientInfo
    user: str


class MysqlEndpoint:
    """Listens for clients of one emulated MySQL/MariaDB instance and serves each connection."""

    def __init__(
        self,
        *,
        backend: BackendAddress,
        authenticator: IamAuthenticator,
        instance_secret: bytes,
        tls_context: ssl.SSLContext | None,
        settings: MysqlEndpointSettings | None = None,
    ) -> None:
        self.backend = backend
        self.authenticator = authenticator
        self._secret = instance_secret
        self._tls = tls_context
        self.settings = settings or MysqlEndpointSettings()
        self.admin = AdminConnection(backend, timeout=self.settings.backend_timeout)
        self._sock: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[RelayConnection] = set()
        self._raw: set[socket.socket] = set()
        self.port = 0

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        infos = socket.getaddrinfo(self.settings.listen_host, self.settings.listen_port,
                                   type=socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(1024)
        sock.setblocking(False)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def close(self) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for conn in list(self._conns):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for raw in list(self._raw):
            raw.close()
        await self.admin.close()

    async def __aenter__(self) -> MysqlEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def active_connections(self) -> int:
        return len(self._conns)

    @property
    def active_tasks(self) -> int:
        return len(self._tasks)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            try:
                conn, addr = await loop.sock_accept(self._sock)
            except OSError as exc:  # EMFILE and friends: back off, keep serving
                log.warning("mysql endpoint: accept failed: %s", exc)
                await asyncio.sleep(0.05)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(self._serve(conn, addr))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------------------ one client
    async def _serve(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        self._raw.add(sock)
        client: _ClientSide | None = None
        backend: _BackendSide | None = None
        try:
            async with asyncio.timeout(self.settings.handshake_timeout):
                backend = await self._open_backend()
                if backend is None:
                    await _sock_send(sock, encode_packet(0, ErrPacket(
                        ErrorCode.ER_SERVER_SHUTDOWN, "08S01",
                        "Server shutdown in progress").build()))
                    return
                self._conns.add(backend)
                session = await self._handshake(sock, addr, backend)
            if session is None:
                return
            client = session.client
            self._raw.discard(sock)
            if session.backend is not backend:  # re-opened after a password repair
                backend.close()
                self._conns.discard(backend)
                backend = session.backend
            await client.wait_closed()
            await backend.wait_closed()
        except (TimeoutError, ConnectionClosed, ssl.SSLError, ConnectionError, OSError,
                ProtocolError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("mysql endpoint: unexpected error")
        finally:
            if backend is not None:
                backend.close()
                self._conns.discard(backend)
            if client is not None:
                client.close()
                self._conns.discard(client)
            if sock in self._raw:
                self._raw.discard(sock)
                sock.close()

    async def _open_backend(self) -> _BackendSide | None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.settings.backend_timeout):
                _, proto = await loop.create_connection(
                    _BackendSide, self.backend.host, self.backend.port)
        except (OSError, TimeoutError):
            return None
        return proto

    async def _handshake(
        self, sock: socket.socket, addr: tuple[str, int], backend: _BackendSide
    ) -> _Session | None:
        loop = asyncio.get_running_loop()
        bdec = PacketDecoder(FIRST_PACKET_MAX)
        packets: list[Packet] = []
        while not packets:
            packets = bdec.feed(await backend.read())
        bgreet = Greeting.parse(packets[0].payload)
        greeting = replace(bgreet, capabilities=bgreet.capabilities | Capability.SSL)
        front = FrontendHandshake(greeting)
        await _sock_send(sock, front.start())
        client: _ClientSide | None = None
        try:
            events = front.receive_data(await _read_packet(sock))
            if events and isinstance(events[0], SslRequested):
                if self._tls is None:
                    raise ProtocolError("TLS is not configured on this endpoint")
                self._raw.discard(sock)  # the transport takes over (and closes it on failure)
                tls_side = _ClientSide()  # our instance: uvloop returns its SSL protocol
                await loop.connect_accepted_socket(
                    lambda: tls_side, sock, ssl=self._tls,
                    ssl_handshake_timeout=self.settings.handshake_timeout)
                client = tls_side
                front.tls_started()
                events = []
                while not events:
                    events = front.receive_data(await client.read())
            else:
                plain_side = _ClientSide()
                await loop.connect_accepted_socket(lambda: plain_side, sock)
                client = plain_side
            self._raw.discard(sock)  # the transport owns the socket now
            self._conns.add(client)
            hello = events[0]
            if not isinstance(hello, ClientHello):
                raise ProtocolError("expected a handshake response")
            linked = await self._authenticate(client, backend, front, bgreet, hello, addr)
        except ProtocolError as exc:
            err = front.fail(ErrPacket(exc.code, exc.sqlstate, _protocol_message(exc)))
            if client is not None:
                client.write(err)
                client.close()
            else:
                with contextlib.suppress(OSError):
                    await _sock_send(sock, err)
            return None
        if linked is None:
            client.close()
            return None
        backend, bgreet = linked
        caps = hello.response.capabilities & bgreet.capabilities
        session = _Session(client, backend, bgreet, caps,
                           self._client_info(client, addr, hello), hello.response.user_text)
        self._link(session)
        return session

    def _client_info(self, client: _ClientSide, addr: tuple[str, int], hello: ClientHello
                     ) -> ClientInfo:
        db = hello.response.database.decode("utf-8", "replace") if hello.response.database \
            else None
        return ClientInfo(address=addr[0], port=addr[1], tls=hello.tls, database=db)

    async def _authenticate(
        self, client: _ClientSide, backend: _BackendSide, front: FrontendHandshake,
        bgreet: Greeting, hello: ClientHello, addr: tuple[str, int],
    ) -> tuple[_BackendSide, Greeting] | None:
        """Run the login; returns the backend session to relay to (and its greeting), or None."""
        response = hello.response
        user = response.user_text
        info = self._client_info(client, addr, hello)
        try:
            iam = self.authenticator.iam_enabled and await self.admin.is_iam_user(user)
        except Exception as exc:
            self.authenticator.reject(db_user=user, client=info, reason=Reason.INTERNAL_ERROR,
                                      detail=f"catalog lookup failed: {exc!r}")
            client.write(front.fail(access_denied(user, addr[0])))
            return None
        if not iam:
            ok = await self._password_login(client, backend, front, bgreet, hello, info)
            return (backend, bgreet) if ok else None
        if self.authenticator.transport_rejection(info) is not None:
            self.authenticator.reject(
                db_user=user, client=info, reason=Reason.TLS_REQUIRED,
                detail="IAM logins are accepted over TLS only",
                hint="connect with TLS (ssl_mode=REQUIRED / ssl=true / --ssl)")
            client.write(front.fail(access_denied(user, addr[0])))
            return None
        if not response.capabilities & Capability.PLUGIN_AUTH:
            self.authenticator.reject(
                db_user=user, client=info, reason=Reason.MALFORMED_TOKEN,
                detail="the client cannot switch to mysql_clear_password (no CLIENT_PLUGIN_AUTH)",
                hint="use a client that supports pluggable authentication")
            client.write(front.fail(ErrPacket(
                ErrorCode.ER_NOT_SUPPORTED_AUTH_MODE, "08004",
                "Client does not support authentication protocol requested by server; "
                "consider upgrading MySQL client")))
            return None
        token = await self._ask_token(client, front, response)
        if token is None:
            return None
        decision = self.authenticator.authenticate_iam(
            db_user=user, token=token.decode("utf-8", "replace"), client=info)
        if not decision.ok:
            client.write(front.fail(access_denied(user, addr[0])))
            return None
        password = derived_password(self._secret, user)
        login = BackendLogin.for_handshake(bgreet, response, password=password.encode())
        result = await _drive_own_login(backend, login)
        if isinstance(result, LoginFailed) and result.error.code == ErrorCode.ER_ACCESS_DENIED:
            # The backend's password is not the derived one (a new instance secret with a reused
            # backend, or an ALTER USER that bypassed the endpoint): repair it once and retry on
            # a fresh backend connection (the failed one is closed by the server).
            retried = await self._repair_and_retry(user, password, response)
            if retried is not None:
                new_backend, new_greeting, result = retried
                if isinstance(result, LoginSucceeded):
                    client.write(front.succeed(result.ok_payload))
                    return new_backend, new_greeting
                new_backend.close()
                self._conns.discard(new_backend)
        if isinstance(result, LoginSucceeded):
            client.write(front.succeed(result.ok_payload))
            return backend, bgreet
        log.warning("mysql endpoint: backend refused the derived login of %r: %s", user,
                    result.error.render())
        self.authenticator.reject(
            db_user=user, client=info, reason=Reason.INTERNAL_ERROR,
            detail="the backend refused the derived-password login: " + result.error.render(),
            hint="the user was dropped or its password changed outside the endpoint")
        client.write(front.fail(access_denied(user, addr[0])))
        return None

    async def _repair_and_retry(
        self, user: str, password: str, response: HandshakeResponse
    ) -> tuple[_BackendSide, Greeting, LoginSucceeded | LoginFailed] | None:
        try:
            await self.admin.reset_iam_passwords(user, password)
        except Exception as exc:
            log.warning("mysql endpoint: cannot repair the backend password of %r: %r", user, exc)
            return None
        backend = await self._open_backend()
        if backend is None:
            return None
        self._conns.add(backend)
        try:
            decoder = PacketDecoder(FIRST_PACKET_MAX)
            packets: list[Packet] = []
            while not packets:
                packets = decoder.feed(await backend.read())
            greeting = Greeting.parse(packets[0].payload)
            login = BackendLogin.for_handshake(greeting, response, password=password.encode())
            return backend, greeting, await _drive_own_login(backend, login)
        except BaseException:
            backend.close()
            self._conns.discard(backend)
            raise

    async def _ask_token(self, client: _ClientSide, front: FrontendHandshake,
                         response: HandshakeResponse | None) -> bytes | None:
        if response is not None and response.auth_plugin == CLEAR_PASSWORD:
            data = response.auth_response
        else:
            client.write(front.request_cleartext())
            data = await _next_client_auth(client, front)
        return data[:-1] if data.endswith(b"\0") else data

    async def _password_login(
        self, client: _ClientSide, backend: _BackendSide, front: FrontendHandshake,
        bgreet: Greeting, hello: ClientHello, info: ClientInfo,
    ) -> bool:
        login = BackendLogin.for_handshake(bgreet, hello.response, password=None,
                                           client_tls=hello.tls)
        user = hello.response.user_text
        ok, final = await _relay_login(client, backend, front, login, user, info.address,
                                       bool(hello.response.auth_response))
        self.authenticator.record_password_login(
            db_user=user, client=info, ok=ok,
            detail="password login relayed to the backend" + ("" if ok else ": refused"))
        client.write(final)
        return ok

    # ------------------------------------------------------------------------------ relay phase
    def _link(self, s: _Session) -> None:
        for side in (s.client, s.backend):
            if side.transport is not None:  # bulk transfers: fewer pause/resume round trips
                side.transport.set_write_buffer_limits(high=RELAY_WRITE_BUFFER)
        s.client.link(s.backend)
        if s.capabilities & Capability.COMPRESS:
            return  # compressed packets are opaque: pure relay (docs/mysql.md)
        s.client.backend = s.backend
        s.client.framer = CommandFramer()
        s.client.on_intercept = lambda item: self._spawn(self._intercepted(s, item))

    async def _intercepted(self, s: _Session, item: Intercept) -> None:
        try:
            s.backend.diverted = True
            if item.packet.payload[0] == 0x11:
                keep = await self._change_user(s, item)
            else:
                keep = await self._user_ddl(s, item)
        except Exception as exc:
            log.warning("mysql endpoint: intercepted command failed: %r", exc)
            keep = False
        if not keep:
            s.client.close()
            s.backend.close()
            return
        rest = s.backend.undivert()
        if rest:
            s.client.write(rest)
        s.client.release()

    async def _user_ddl(self, s: _Session, item: Intercept) -> bool:
        payload = item.packet.payload
        prefix = b""
        if s.capabilities & Capability.QUERY_ATTRIBUTES:
            if payload[1:3] != b"\x00\x01":
                s.backend.write(item.raw)
                return await self._forward_response(s, None)
            prefix = b"\x00\x01"
        text = payload[1 + len(prefix):].decode("utf-8", "surrogateescape")
        inspection = ddl.inspect(text, lambda user: derived_password(self._secret, user))
        if not inspection.user_ddl:
            s.backend.write(item.raw)
            return await self._forward_response(s, None)
        if inspection.uses_iam_plugin and not self.authenticator.iam_enabled:
            s.client.write(encode_packet(1, ErrPacket(
                ErrorCode.ER_PLUGIN_IS_NOT_LOADED, "HY000",
                "Plugin 'AWSAuthenticationPlugin' is not loaded").build()))
            return True
        skip: set[ddl.Account] = set()
        for stmt in inspection.user_ddl:
            if stmt.op is ddl.Op.CREATE and stmt.if_not_exists:
                skip |= await self.admin.existing_accounts(c.account for c in stmt.changes)
        was_iam: dict[ddl.Account, bool] = {}
        for stmt in inspection.user_ddl:
            if stmt.op is ddl.Op.RENAME:
                for change in stmt.changes:
                    was_iam[change.account] = await self.admin.is_iam_account(change.account)
        raw = item.raw
        if inspection.rewritten is not None:
            raw = encode_packet(0, b"\x03" + prefix
                                + inspection.rewritten.encode("utf-8", "surrogateescape"))
        s.backend.write(raw)
        return await self._forward_response(s, (inspection, skip, was_iam))

    async def _forward_response(
        self, s: _Session,
        ddl_ctx: tuple[ddl.Inspection, set[ddl.Account], dict[ddl.Account, bool]] | None,
    ) -> bool:
        decoder = PacketDecoder(1 << 30)
        outcomes = DdlOutcomes()
        chunks: list[bytes] = []
        while not outcomes.done:
            data = await s.backend.read_tap()
            chunks.append(data)
            for packet in decoder.feed(data):
                if outcomes.feed(packet):
                    break
        if ddl_ctx is not None and not outcomes.unknown:
            await self._apply_catalog(ddl_ctx, outcomes)
        s.client.write(b"".join(chunks))
        return True

    async def _apply_catalog(
        self, ctx: tuple[ddl.Inspection, set[ddl.Account], dict[ddl.Account, bool]],
        outcomes: DdlOutcomes,
    ) -> None:
        inspection, skip, was_iam = ctx
        for stmt, outcome in zip(inspection.statements, outcomes.outcomes, strict=False):
            if stmt is None:
                continue
            failed: set[ddl.Account] = set()
            if not outcome.ok:
                if outcome.error is None or outcome.error.code != 1396:
                    continue
                failed = ddl.failed_accounts(outcome.error.message)
            for change in stmt.changes:
                acc = change.account
                if acc in failed or acc in skip:
                    continue
                if stmt.op is ddl.Op.RENAME and change.renamed_to is not None:
                    if was_iam.get(acc):  # the derived password follows the user name
                        new = change.renamed_to
                        await self.admin.set_password(
                            new, derived_password(self._secret, new.user))
                        await self.admin.set_iam(acc, False)
                        await self.admin.set_iam(new, True)
                elif change.iam is not None:
                    await self.admin.set_iam(acc, change.iam)

    async def _change_user(self, s: _Session, item: Intercept) -> bool:
        change = ChangeUser.parse(item.packet.payload, s.capabilities)
        user = change.user.decode("utf-8", "replace")
        info = replace(s.info, database=change.database.decode("utf-8", "replace") or None)
        front = FrontendHandshake.for_change_user(s.greeting, item.packet.seq)
        front.tls = s.info.tls
        iam = self.authenticator.iam_enabled and await self.admin.is_iam_user(user)
        if not iam:
            login = BackendLogin.for_change_user(
                s.greeting.nonce, change, s.capabilities, password=None,
                default_plugin=s.greeting.auth_plugin, client_tls=s.info.tls)
            ok, final = await _relay_login(s.client, s.backend, front, login, user,
                                           s.info.address, bool(change.auth_response), tap=True)
            self.authenticator.record_password_login(
                db_user=user, client=info, ok=ok, detail="COM_CHANGE_USER relayed")
            s.client.write(final)
            return ok
        if self.authenticator.transport_rejection(info) is not None:
            self.authenticator.reject(db_user=user, client=info, reason=Reason.TLS_REQUIRED,
                                      detail="IAM logins are accepted over TLS only")
            s.client.write(front.fail(access_denied(user, s.info.address)))
            return False
        if change.auth_plugin == CLEAR_PASSWORD:
            token = change.auth_response
        else:
            s.client.write(front.request_cleartext())
            token = await _next_client_auth(s.client, front, held=True)
        token = token[:-1] if token.endswith(b"\0") else token
        decision = self.authenticator.authenticate_iam(
            db_user=user, token=token.decode("utf-8", "replace"), client=info)
        if not decision.ok:
            s.client.write(front.fail(access_denied(user, s.info.address)))
            return False
        login = BackendLogin.for_change_user(
            s.greeting.nonce, change, s.capabilities,
            password=derived_password(self._secret, user).encode(),
            default_plugin=s.greeting.auth_plugin)
        result = await _drive_own_login(s.backend, login, tap=True)
        if isinstance(result, LoginSucceeded):
            s.client.write(front.succeed(result.ok_payload))
            return True
        s.client.write(front.fail(access_denied(user, s.info.address)))
        return False


# ---------------------------------------------------------------------------------- helpers


def _protocol_message(exc: ProtocolError) -> str:
    if exc.code == ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER:
        return "Got packets out of order"
    if exc.code == ErrorCode.ER_NET_PACKET_TOO_LARGE:
        return "Got a packet bigger than 'max_allowed_packet' bytes"
    if exc.code == ErrorCode.ER_NOT_SUPPORTED_AUTH_MODE:
        return ("Client does not support authentication protocol requested by server; "
                "consider upgrading MariaDB client")
    return "Bad handshake"


async def _sock_send(sock: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, data)


async def _recv_exact(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    buf = bytearray()
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise ConnectionClosed("client closed during the handshake")
        buf += chunk
    return bytes(buf)


async def _read_packet(sock: socket.socket) -> bytes:
    """Exactly one packet from the raw socket (nothing more: TLS may follow)."""
    header = await _recv_exact(sock, 4)
    length = int.from_bytes(header[:3], "little")
    if length > FIRST_PACKET_MAX:
        raise ProtocolError("first packet too large", code=ErrorCode.ER_NET_PACKET_TOO_LARGE)
    return header + await _recv_exact(sock, length)


async def _next_client_auth(client: _ClientSide, front: FrontendHandshake, *,
                            held: bool = False) -> bytes:
    while True:
        data = await (client.read_held() if held else client.read())
        for event in front.receive_data(data):
            if isinstance(event, AuthData):
                return event.payload
        # partial packet: keep reading


async def _backend_read(backend: _BackendSide, tap: bool) -> bytes:
    return await (backend.read_tap() if tap else backend.read())


async def _drive_own_login(backend: _BackendSide, login: BackendLogin, *, tap: bool = False
                           ) -> LoginSucceeded | LoginFailed:
    backend.write(login.start())
    while True:
        data = await _backend_read(backend, tap)
        for event in login.receive_data(data):
            if isinstance(event, SendBackend):
                backend.write(event.data)
            elif isinstance(event, LoginSucceeded | LoginFailed):
                return event
            else:
                raise ProtocolError("backend asked the client something in an own login")


async def _relay_login(
    client: _ClientSide, backend: _BackendSide, front: FrontendHandshake, login: BackendLogin,
    user: str, client_ip: str, used_password: bool, *, tap: bool = False,
) -> tuple[bool, bytes]:
    """Relay a password exchange; returns the outcome and the final packet (not yet sent, so
    the caller can record the event first)."""
    backend.write(login.start())
    while True:
        data = await _backend_read(backend, tap)
        for event in login.receive_data(data):
            if isinstance(event, SendBackend):
                backend.write(event.data)
            elif isinstance(event, NotifyClient):
                client.write(front.notify(event.payload))
            elif isinstance(event, ForwardToClient):
                client.write(front.send_auth(event.payload))
                answer = await _next_client_auth(client, front, held=tap)
                for follow in login.from_client(answer):
                    if isinstance(follow, SendBackend):
                        backend.write(follow.data)
            elif isinstance(event, LoginSucceeded):
                return True, front.succeed(event.ok_payload)
            else:
                err = event.error
                if err.code == ErrorCode.ER_ACCESS_DENIED:
                    err = access_denied(user, client_ip, using_password=used_password)
                return False, front.fail(err)
