"""Connection objects and wire helpers of the MySQL endpoint (asyncio side, no decisions).

``ClientSide`` frames client bytes with ``protocols.mysql.framing`` once linked, holding back the
commands the endpoint handles itself; ``BackendSide`` can be diverted so the endpoint reads the
backend's answer to such a command. The helpers drive the sans-I/O login machines over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from rdsiam_emulator.auth.proxy import ProxyDoor
from rdsiam_emulator.auth.tokens import TokenFormatError, parse_token
from rdsiam_emulator.endpoint.relay import ConnectionClosed, RelayConnection
from rdsiam_emulator.engines import MYSQL
from rdsiam_emulator.protocols.mysql.constants import CLEAR_PASSWORD, ErrorCode
from rdsiam_emulator.protocols.mysql.framing import CommandFramer, Intercept
from rdsiam_emulator.protocols.mysql.handshake import (
    AuthData,
    BackendLogin,
    ForwardToClient,
    FrontendHandshake,
    LoginFailed,
    LoginSucceeded,
    NotifyClient,
    SendBackend,
)
from rdsiam_emulator.protocols.mysql.messages import ErrPacket, access_denied, as_seen_from
from rdsiam_emulator.protocols.mysql.packets import ProtocolError
from rdsiam_emulator.protocols.need_data import NeedData
from rdsiam_emulator.reasons import Reason

FIRST_PACKET_MAX = 64 * 1024
NOT_SUPPORTED_AUTH_MODE = ErrPacket(
    ErrorCode.ER_NOT_SUPPORTED_AUTH_MODE, "08004",
    "Client does not support authentication protocol requested by server; "
    "consider upgrading MySQL client")
"""The server's answer to a client that cannot take the authentication method it needs."""


def refusal_packet(reason: Reason, user: str, address: str,
                   door: ProxyDoor | None = None) -> ErrPacket:
    """What MySQL on RDS answers for a login-step refusal: 1045, or 1251 when the client
    cannot send a cleartext password; through an RDS Proxy (``door``), the proxy's own."""
    wire = door.wire(reason, user) if door is not None else None
    if wire is not None:
        return ErrPacket(wire.code, wire.sqlstate, wire.message)
    if reason is Reason.CLEARTEXT_PLUGIN_UNSUPPORTED:
        return NOT_SUPPORTED_AUTH_MODE
    assert MYSQL.iam_refusal_code is not None
    return ErrPacket(MYSQL.iam_refusal_code, MYSQL.iam_refusal_sqlstate,
                     MYSQL.iam_refusal_message.format(user=user, client=address))
CLIENT_AUTH_TIMEOUT = 10.0
"""How long a client may take to answer an auth switch inside COM_CHANGE_USER."""


def accept_transport(conn: RelayConnection, transport: asyncio.BaseTransport) -> None:
    """Like ``RelayConnection.connection_made`` but duck-typed: uvloop's transports do not
    subclass ``asyncio.Transport``, and the endpoint should run on either loop."""
    conn.transport = cast(asyncio.Transport, transport)


class BackendSide(RelayConnection):
    """The backend connection; ``divert`` takes its bytes away from the client while the endpoint
    runs a command itself (rewritten DDL, COM_CHANGE_USER)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio callback: keep the transport (see ``accept_transport``)."""
        accept_transport(self, transport)

    def __init__(self) -> None:
        super().__init__()
        self.diverted = False
        self._tap = bytearray()
        self._tap_waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        """asyncio callback: while diverted, keep the backend's bytes for ``read_tap``; else
        relay or buffer them as ``RelayConnection`` does.
        """
        if not self.diverted:
            peer = self._peer
            if peer is not None and peer.transport is not None:  # relaying: the hot path
                peer.transport.write(data)
                return
            super().data_received(data)
            return
        self._tap += data
        if self._tap_waiter is not None and not self._tap_waiter.done():
            self._tap_waiter.set_result(None)

    async def read_tap(self) -> bytes:
        """The bytes the backend sent while diverted (waiting for at least one byte, with no
        timeout: a DDL may wait on a lock). Raises ``ConnectionClosed`` once the backend is gone.
        """
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
        """asyncio callback: wake a pending ``read_tap``, then close as ``RelayConnection`` does."""
        if self._tap_waiter is not None and not self._tap_waiter.done():
            self._tap_waiter.set_result(None)
        super().connection_lost(exc)

    def undivert(self) -> bytes:
        """Stop diverting; returns the tapped bytes not yet read (for the client)."""
        self.diverted = False
        rest = bytes(self._tap)
        self._tap.clear()
        return rest


class ClientSide(RelayConnection):
    """The client connection; once linked, its bytes go through a ``CommandFramer``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio callback: keep the transport (see ``accept_transport``)."""
        accept_transport(self, transport)

    def __init__(self) -> None:
        super().__init__()
        self.framer: CommandFramer | None = None
        self.backend: BackendSide | None = None
        self.on_intercept: Callable[[Intercept], object] | None = None
        self.held: bytearray | None = None
        self._held_waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        """asyncio callback: before linking, buffer as ``RelayConnection`` does; once linked, pass
        ordinary commands to the backend and stop at an intercepted one (its rest is held).
        """
        framer, backend = self.framer, self.backend
        if framer is None or backend is None:
            super().data_received(data)
            return
        if self.held is None and framer.passes(data):  # the hot path: an ordinary command
            if backend.transport is not None:
                backend.transport.write(data)
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
        """The client bytes held while a command is intercepted (at least one byte).

        Raises ``ConnectionClosed`` if the client is gone, ``TimeoutError`` when nothing comes
        within ``CLIENT_AUTH_TIMEOUT`` seconds.
        """
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


# ---------------------------------------------------------------------------------- helpers


async def sock_send(sock: socket.socket, data: bytes) -> None:
    """Send all of ``data`` on the non-blocking socket ``sock``; raises ``OSError`` on failure."""
    await asyncio.get_running_loop().sock_sendall(sock, data)


async def recv_exact(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from the (non-blocking) accepted socket. Bytes already there are taken at once:
    the loop's ``sock_recv`` would register the socket with epoll and wait a loop turn even then
    (the SSLRequest body usually arrives together with its header)."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except (BlockingIOError, InterruptedError):
            chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise ConnectionClosed("client closed during the handshake")
        buf += chunk
    return bytes(buf)


async def read_packet(sock: socket.socket) -> bytes:
    """Exactly one packet from the raw socket (nothing more: TLS may follow)."""
    header = await recv_exact(sock, 4)
    length = int.from_bytes(header[:3], "little")
    if length > FIRST_PACKET_MAX:
        raise ProtocolError("first packet too large", code=ErrorCode.ER_NET_PACKET_TOO_LARGE)
    return header + await recv_exact(sock, length)


async def next_client_auth(client: ClientSide, front: FrontendHandshake, *,
                            held: bool = False) -> bytes:
    """The client's next auth packet (its answer to an auth switch / more-data request)."""
    while not isinstance(event := front.next_event(), AuthData):
        front.receive_data(await (client.read_held() if held else client.read()))
    return event.payload


async def backend_read(backend: BackendSide, tap: bool) -> bytes:
    """The backend's next bytes: from the tap when ``tap`` (diverted), else the handshake buffer.

    Raises ``ConnectionClosed`` when the backend is gone.
    """
    return await (backend.read_tap() if tap else backend.read())


async def drive_own_login(backend: BackendSide, login: BackendLogin, *, tap: bool = False
                           ) -> LoginSucceeded | LoginFailed:
    """Log in to the backend with the endpoint's own credentials (``login`` has the password);
    raises ``ProtocolError`` if the server asks for something only the client could answer."""
    return await _exchange(backend, login, tap=tap, ask_client=None)


async def _exchange(backend: BackendSide, login: BackendLogin, *, tap: bool,
                    ask_client: Callable[[NotifyClient | ForwardToClient], Awaitable[None]] | None,
                    ) -> LoginSucceeded | LoginFailed:
    """Drive ``login`` with the backend until it ends; what the server asks of the client goes
    to ``ask_client`` (None: nothing may be asked)."""
    backend.write(login.start())
    while True:
        event = login.next_event()
        if isinstance(event, NeedData):
            login.receive_data(await backend_read(backend, tap))
        elif isinstance(event, SendBackend):
            backend.write(event.data)
        elif isinstance(event, LoginSucceeded | LoginFailed):
            return event
        elif ask_client is None:
            raise ProtocolError("backend asked the client something in an own login")
        else:
            await ask_client(event)


@dataclass(frozen=True, slots=True)
class RelayOutcome:
    """How a relayed password exchange ended: ``final`` is the packet for the client (not yet
    sent, so the caller can record the event first); ``error_code`` is the backend's own code
    (before 1045 is reworded for the client), None on success."""

    ok: bool
    final: bytes
    error_code: int | None


async def relay_login_outcome(
    client: ClientSide, backend: BackendSide, front: FrontendHandshake, login: BackendLogin,
    user: str, client_ip: str, used_password: bool, *, tap: bool = False,
) -> RelayOutcome:
    """Relay the client's own authentication exchange (``login`` has no password) and return
    how it ended; the final packet is not sent yet. The backend's error code is kept (1040 is
    overload, not a bad password); its 1045 is reworded for the client as RDS words it."""

    async def ask(event: NotifyClient | ForwardToClient) -> None:
        if isinstance(event, NotifyClient):
            client.write(front.notify(event.payload))
            return
        client.write(front.send_auth(event.payload))
        login.from_client(await next_client_auth(client, front, held=tap))

    result = await _exchange(backend, login, tap=tap, ask_client=ask)
    if isinstance(result, LoginSucceeded):
        return RelayOutcome(True, front.succeed(result.ok_payload), None)
    err = result.error
    code = err.code
    if code == ErrorCode.ER_ACCESS_DENIED:
        err = access_denied(user, client_ip, using_password=used_password)
    else:
        err = as_seen_from(err, user, client_ip)
    return RelayOutcome(False, front.fail(err), code)


def cleartext_password(plugin: str | None, auth_response: bytes) -> str | None:
    """The client's password if it sent it in clear (``mysql_clear_password``), else None: only
    then can the endpoint tell that a refused password was in fact an IAM token."""
    if plugin != CLEAR_PASSWORD:
        return None
    raw = auth_response[:-1] if auth_response.endswith(b"\0") else auth_response
    return raw.decode("utf-8", "replace")


def looks_like_token(password: str | None) -> bool:
    """Whether ``password`` parses as an RDS IAM token (format stage only, no verification)."""
    if not password:
        return False
    try:
        parse_token(password)
    except TokenFormatError:
        return False
    return True


NOT_IAM_USER_HINT = ("the user is a password user: create it IDENTIFIED WITH "
                     "AWSAuthenticationPlugin AS 'RDS' for IAM logins, or log in with its password")
