"""The PostgreSQL endpoint of an emulated RDS instance: asyncio glue around the sans-I/O machines.

Per client connection: read the start-up packets (SSLRequest → ``S`` + TLS, GSSENCRequest → ``N``,
CancelRequest → forwarded), then decide by the DB user, as RDS does:

* member of ``rds_iam`` → ask for a cleartext password (the token), verify it with the
  authenticator, and on success log in to the real server as that user with the derived password;
  the client then gets AuthenticationOk and the server's own greeting;
* anyone else → the start-up packet goes to the real server and the authentication exchange
  (SCRAM/MD5/...) is relayed untouched.

Afterwards bytes are relayed unchanged (``relay.RelayConnection``). The client's BackendKeyData is
the backend's own (pid, key), so a CancelRequest is simply forwarded to the backend, which checks
the key itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from rdsiam_emulator.auth.authenticator import ClientInfo, IamAuthenticator, LoginDecision
from rdsiam_emulator.auth.login import AskToken, LogIn, LoginFacts, LoginStep, Refuse, RelayPassword
from rdsiam_emulator.auth.proxy import ProxyDoor
from rdsiam_emulator.endpoint.backend import BackendAddress, BackendUnreachable, EndpointSettings
from rdsiam_emulator.endpoint.postgres_admin import AdminClient, log_in, open_backend
from rdsiam_emulator.endpoint.relay import ConnectionClosed, RelayConnection
from rdsiam_emulator.endpoint.tracking import TrackedEndpoint
from rdsiam_emulator.engines import POSTGRES
from rdsiam_emulator.events import TEXT_CAP, clip
from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.protocols.postgres.backend import BackendLogin, LoginFailed, LoginSucceeded
from rdsiam_emulator.protocols.postgres.codec import ProtocolError
from rdsiam_emulator.protocols.postgres.frontend import (
    NEED_DATA,
    CancelRequested,
    FrontendHandshake,
    GSSEncRequested,
    PasswordReceived,
    SSLRequested,
    StartupReceived,
)
from rdsiam_emulator.protocols.postgres.query import (
    quote_ident,
)
from rdsiam_emulator.reasons import Reason

log = logging.getLogger(__name__)

DEFAULT_HANDSHAKE_TIMEOUT = 60.0
"""PostgreSQL's default authentication_timeout."""
TOO_MANY_CONNECTIONS = "53300"
"""SQLSTATE of "sorry, too many clients already" (and of the per-role/database limits)."""
UNAVAILABLE = "57P03"
UNAVAILABLE_MESSAGE = "the database system is not accepting connections"


class _PasswordNotStored(Exception):
    """An IAM login's derived password could not be stored (the admin's server unreachable)."""


@dataclass
class PostgresEndpointSettings(EndpointSettings):
    """A PostgreSQL endpoint's settings (times in seconds)."""

    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    force_ssl: bool = False
    """rds.force_ssl: refuse password logins without TLS too (RDS's default from PostgreSQL 16)."""


class PostgresEndpoint(TrackedEndpoint):
    """Listens for clients of one emulated instance and serves each connection."""

    def __init__(
        self,
        *,
        backend: BackendAddress,
        authenticator: IamAuthenticator,
        instance_secret: bytes,
        tls_context: ssl.SSLContext | None,
        settings: PostgresEndpointSettings | None = None,
        door: ProxyDoor | None = None,
    ) -> None:
        """``door``: this endpoint is an RDS Proxy's (its rules and wire texts, ``auth.proxy``);
        ``instance_secret`` is then the target instance's."""
        super().__init__()
        self.door = door
        self.backend = backend
        self.backend_route: Callable[[], BackendAddress] | None = None
        """Where each new backend connection goes instead of ``backend`` (an RDS Proxy in front
        of an Aurora cluster: the current writer, or the next reader); the admin session stays
        on ``backend``."""
        self.authenticator = authenticator
        self._secret = instance_secret
        self._tls = tls_context
        self.settings = settings or PostgresEndpointSettings()
        self.admin = AdminClient(backend, timeout=self.settings.backend_timeout)
        self._server: asyncio.Server | None = None

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen on ``settings.listen_host``/``listen_port`` and set ``port`` (the bound one).

        Raises ``OSError`` when the address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_connection, self.settings.listen_host, self.settings.listen_port,
            reuse_address=True, backlog=1024)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def close(self) -> None:
        """Stop listening, abort every connection and task, and close the admin session."""
        if self._server is not None:
            self._server.close()
        await self._release_all()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await self.admin.close()

    def buffered_bytes(self) -> int:
        """Bytes waiting in write buffers of all connections (diagnostics: flow control works)."""
        total = 0
        for conn in self._conns:
            if conn.transport is not None and not conn.transport.is_closing():
                total += conn.transport.get_write_buffer_size()
        return total

    def _make_connection(self) -> RelayConnection:
        conn = _ClientConnection(self._on_connect)
        return conn

    def _on_connect(self, conn: _ClientConnection) -> None:
        self._conns.add(conn)
        # The client leaving ends its unlinked backend legs at once: a backend session left
        # waiting for the rest of an abandoned handshake holds a server slot for the server's
        # authentication_timeout.
        conn.closed.add_done_callback(lambda _: conn.abort_unlinked_legs())
        self._spawn(self._serve(conn)).add_done_callback(lambda _: self._conns.discard(conn))

    def _route(self) -> BackendAddress:
        return self.backend if self.backend_route is None else self.backend_route()

    async def _open_leg(self, client: _ClientConnection) -> RelayConnection:
        """A backend connection owned by ``client``: tracked, and aborted with the client.

        Raises BackendUnreachable; ConnectionClosed if the client already left.
        """
        leg = await open_backend(self._route(), self.settings.backend_timeout)
        if client.gone:
            leg.abort()
            raise ConnectionClosed("the client left while the backend was being reached")
        client.legs.append(leg)
        self._conns.add(leg)
        leg.closed.add_done_callback(lambda _: self._conns.discard(leg))
        return leg

    # ------------------------------------------------------------------------------ one client

    async def _serve(self, client: _ClientConnection) -> None:
        backend: RelayConnection | None = None
        try:
            async with asyncio.timeout(self.settings.handshake_timeout):
                backend = await self._handshake(client)
            if backend is None:
                client.close()
                return
            await client.wait_closed()
            await backend.wait_closed()
        except TimeoutError:
            # authentication_timeout: a real server just closes the socket.
            client.abort()
        except (ConnectionClosed, ssl.SSLError, ConnectionError):
            client.abort()
        except asyncio.CancelledError:
            client.abort()
            raise
        except Exception:
            log.exception("postgres endpoint: unexpected error")
            client.abort()
        finally:
            if backend is not None and backend.transport is not None \
                    and not backend.transport.is_closing():
                backend.close()
            client.abort_unlinked_legs()

    async def _handshake(self, client: _ClientConnection) -> RelayConnection | None:
        """Runs until the client is authenticated (returns the linked backend) or refused (None)."""
        hs = FrontendHandshake()
        try:
            while True:
                event = hs.next_event()
                if event is NEED_DATA:
                    hs.receive_data(await client.read())
                elif isinstance(event, SSLRequested):
                    if self._tls is None:
                        client.write(hs.refuse_ssl())
                        continue
                    client.write(hs.accept_ssl())
                    await client.start_tls(self._tls, timeout=self.settings.handshake_timeout)
                    hs.tls_established()
                elif isinstance(event, GSSEncRequested):
                    client.write(hs.refuse_gssenc())
                elif isinstance(event, CancelRequested):
                    await self._forward_cancel(event)
                    return None
                elif isinstance(event, StartupReceived):
                    return await self._authenticate(client, hs, event)
                else:  # PasswordReceived outside the IAM exchange cannot happen here
                    return None
        except ProtocolError as exc:
            if exc.report:
                client.write(codec.fatal(exc.sqlstate, exc.message))
            return None

    def _client_info(self, client: RelayConnection, tls: bool, database: str) -> ClientInfo:
        peer = client.extra("peername")  # noqa: S610
        address, port = ("unknown", None)
        if isinstance(peer, tuple) and len(peer) >= 2:
            address, port = str(peer[0]), int(peer[1])
        return ClientInfo(address=address, port=port, tls=tls, database=database)

    def _hba_reject(self, info: ClientInfo, user: str, database: str,
                    replication: str | None = None) -> bytes:
        """PostgreSQL's ClientAuthentication message when no pg_hba.conf line matches."""
        if info.tls:
            wording = "SSL encryption" if self.admin.server_major >= 16 else "SSL on"
        else:
            wording = "no encryption" if self.admin.server_major >= 16 else "SSL off"
        if replication is not None and replication.lower() != "database":
            message = (f'pg_hba.conf rejects replication connection for host "{info.address}", '
                       f'user "{user}", {wording}')
        else:
            message = (f'pg_hba.conf rejects connection for host "{info.address}", '
                       f'user "{user}", database "{database}", {wording}')
        return codec.fatal("28000", message, routine="ClientAuthentication")

    async def _authenticate(self, client: _ClientConnection, hs: FrontendHandshake,
                            startup: StartupReceived) -> RelayConnection | None:
        """Carry out the login step's commands for one start-up (``login.LoginStep``)."""
        info = self._client_info(client, hs.tls, startup.database)
        user = startup.user
        try:
            member = await self.admin.is_iam_user(user)
        except BackendUnreachable as exc:
            log.warning("postgres endpoint: backend unavailable: %s", clip(str(exc), TEXT_CAP))
            self._record_unavailable(user, info, str(exc))
            client.write(hs.fail(UNAVAILABLE, UNAVAILABLE_MESSAGE))
            return None
        replication = startup.params.get("replication")
        step = LoginStep(self.authenticator, LoginFacts(
            db_user=user, client=info, iam_user=member, replication=replication,
            reserved_user=user == self.backend.admin_user, force_ssl=self.settings.force_ssl,
        ), secret=self._secret, door=self.door)
        command = step.start()
        if isinstance(command, RelayPassword):
            return await self._password_login(client, hs, startup, info)
        if isinstance(command, AskToken):
            client.write(hs.negotiate_protocol_version(startup) + hs.request_cleartext_password())
            while (event := hs.next_event()) is NEED_DATA:
                hs.receive_data(await client.read())
            if not isinstance(event, PasswordReceived):
                return None
            command = step.receive_token(event.password)
        if isinstance(command, Refuse):
            client.write(self._refusal(command.reason, info, startup))
            return None
        return await self._iam_login(client, hs, startup, info, command)

    def _refusal(self, reason: Reason, info: ClientInfo, startup: StartupReceived) -> bytes:
        """What PostgreSQL on RDS (or the RDS Proxy in front of it) sends for a refusal of the
        login step."""
        wire = self.door.wire(reason, startup.user) if self.door is not None else None
        if wire is not None:
            return codec.fatal(wire.sqlstate, wire.message)
        if reason in _HBA_REASONS:
            replication = (startup.params.get("replication")
                           if reason is not Reason.TLS_REQUIRED else None)
            return self._hba_reject(info, startup.user, startup.database, replication)
        return codec.fatal(POSTGRES.iam_refusal_sqlstate,
                           POSTGRES.iam_refusal_message.format(user=startup.user, client=""),
                           routine="auth_failed")

    async def _iam_login(self, client: _ClientConnection, hs: FrontendHandshake,
                         startup: StartupReceived, info: ClientInfo,
                         login: LogIn) -> RelayConnection | None:
        """Log in to the server as the IAM user (``LogIn``) and link the client to it."""
        pipelined = hs.take_rest()
        try:
            backend, result = await self._backend_login(client, login, startup)
        except _PasswordNotStored as exc:
            # not the server's own 28P01: the token was good, the derived password not stored
            self.authenticator.reject(
                db_user=login.user, client=info, reason=Reason.BACKEND_UNAVAILABLE,
                caller=login.decision,
                detail=f"the token is valid but the user's derived password could not be "
                       f"stored: {clip(str(exc), TEXT_CAP)}",
                hint="the server that stores it is down or unreachable (on an Aurora reader: "
                     "the cluster's writer, needed for an IAM user's first login on a reader, "
                     "docs/aurora.md): retry once it runs again or after a failover")
            client.write(self._refusal(Reason.BACKEND_UNAVAILABLE, info, startup))
            return None
        if isinstance(result, LoginFailed):
            if backend is not None:
                backend.close()
            if not login.repair and result.sqlstate in ("28P01", "28000"):
                # a proxy secret the database refuses: the proxy's error, not the server's
                self.authenticator.reject(
                    db_user=login.user, client=info, reason=Reason.PROXY_SECRET_REFUSED,
                    caller=login.decision,
                    detail=f"the database refused the proxy secret's credentials: "
                           f"{result.sqlstate} {result.message}",
                    hint="put the database user's current password in the proxy's secret "
                         "(describe_db_proxy_targets shows AUTH_FAILURE until then)")
                client.write(self._refusal(Reason.PROXY_SECRET_REFUSED, info, startup))
                return None
            self._record_backend_failure(login.user, info, "iam", result, login.decision)
            client.write(codec.error_response(result.fields))
            return None
        assert backend is not None
        client.write(codec.auth_ok() + result.greeting)
        client.unread(pipelined)
        client.link(backend)
        return backend

    async def _password_state(self, user: str) -> bool | BackendUnreachable | None:
        """Whether role ``user`` has a password (None: no such role; the error if the admin
        session cannot tell)."""
        try:
            return await self.admin.has_password(user)
        except BackendUnreachable as exc:
            log.warning("postgres endpoint: %s", clip(str(exc), TEXT_CAP))
            return exc

    async def _record_password_refused(self, user: str, info: ClientInfo,
                                       failed: LoginFailed) -> None:
        """A relayed password login the server refused with 28P01. SCRAM hides the password, so
        whether it was an IAM token can only be inferred: by a role without a password (no
        password could have been right), or said as a possibility in the hint."""
        state = await self._password_state(user)
        said = f"{failed.sqlstate} {failed.message}"
        grant = f"GRANT rds_iam TO {quote_ident(user)}"
        if state is None:
            self.authenticator.reject(
                db_user=user, client=info, reason=Reason.UNKNOWN_USER, method="password",
                detail=f"{said}: no role named {user!r} exists",
                hint=f"create it: CREATE USER {quote_ident(user)}; then {grant} for IAM logins "
                     "(or give it a PASSWORD for password logins)")
        elif state is False:
            self.authenticator.reject(
                db_user=user, client=info, reason=Reason.NOT_IAM_USER, method="password",
                detail=f"{said}: the user is not a member of rds_iam and has no password, so "
                       "this was a password login that could not succeed (an IAM token?)",
                hint=f"for IAM logins: {grant}; for password logins: give the user a password")
        else:
            why = ("the role has a password" if state is True
                   else f"whether the role has a password is unknown ({state})")
            self.authenticator.reject(
                db_user=user, client=info, reason=Reason.PASSWORD_MISMATCH, method="password",
                detail=f"{said}: a password login ({why}; SCRAM hides the password, so the "
                       "endpoint cannot tell whether it was an IAM token)",
                hint=f"check the password; if an IAM token was sent, the user is not IAM-enabled: "
                     f"{grant} (then it logs in with tokens only)")

    def _record_unavailable(self, user: str, info: ClientInfo, why: str,
                            method: str = "iam", caller: LoginDecision | None = None) -> None:
        self.authenticator.reject(
            db_user=user, client=info, reason=Reason.BACKEND_UNAVAILABLE, method=method,
            caller=caller,
            detail=f"the client was answered {UNAVAILABLE}: {why}",
            hint="the real PostgreSQL server is down or unreachable: start it (or wait for its "
                 "restart) and retry")

    def _record_backend_failure(self, user: str, info: ClientInfo, method: str,
                                result: LoginFailed, caller: LoginDecision | None = None) -> None:
        """The server refused a session the endpoint opened (its error goes to the client).
        ``caller``: the IAM allow it follows (its caller fields go on the event)."""
        if result.sqlstate == TOO_MANY_CONNECTIONS:
            self._record_capacity(user, info, method, result, caller)
        elif result.sqlstate == UNAVAILABLE:
            self._record_unavailable(user, info, result.message, method, caller)
        else:
            self._record_backend_refused(user, info, method, result, caller)

    def _record_backend_refused(self, user: str, info: ClientInfo, method: str,
                                result: LoginFailed, caller: LoginDecision | None = None) -> None:
        hint = BACKEND_HINTS.get(result.sqlstate,
                                 "the server's own error (in the detail) reached the client "
                                 "unchanged; fix what it names")
        self.authenticator.reject(
            db_user=user, client=info, reason=Reason.BACKEND_REFUSED, method=method,
            caller=caller,
            detail=f"the server refused the session: {result.sqlstate} {result.message}",
            hint=hint)

    def _record_capacity(self, user: str, info: ClientInfo, method: str,
                         result: LoginFailed, caller: LoginDecision | None = None) -> None:
        self.authenticator.reject(
            db_user=user, client=info, reason=Reason.TOO_MANY_CONNECTIONS, method=method,
            caller=caller,
            detail=f"the backend refused for capacity: {result.sqlstate} {result.message}",
            hint="fewer concurrent sessions (a pool), or raise the server's max_connections")

    async def _backend_login(
        self, client: _ClientConnection, login: LogIn, startup: StartupReceived
    ) -> tuple[RelayConnection | None, LoginSucceeded | LoginFailed]:
        user, password = login.user, login.password
        params = {k: v for k, v in startup.params.items()
                  if k not in ("user", "database") and not k.startswith("_pq_.")}
        backend: RelayConnection | None = None
        for attempt in (1, 2):
            try:
                backend = await self._open_leg(client)
            except BackendUnreachable as exc:
                log.warning("postgres endpoint: %s", clip(str(exc), TEXT_CAP))
                return None, LoginFailed({"S": "FATAL", "V": "FATAL", "C": UNAVAILABLE,
                                          "M": UNAVAILABLE_MESSAGE})
            machine = BackendLogin(user=user, database=startup.database, password=password,
                                   params=params)
            result = await log_in(backend, machine)
            if isinstance(result, LoginSucceeded):
                return backend, result
            backend.close()
            if attempt == 1 and result.sqlstate == "28P01" and login.repair:
                try:
                    await self.admin.set_password(user, password)
                except BackendUnreachable as exc:
                    log.warning("postgres endpoint: %s", clip(str(exc), TEXT_CAP))
                    raise _PasswordNotStored(str(exc)) from exc
                continue
            return None, result
        raise AssertionError("unreachable")

    async def _password_login(self, client: _ClientConnection, hs: FrontendHandshake,
                              startup: StartupReceived, info: ClientInfo) -> RelayConnection | None:
        """Relay the start-up and the server's own authentication exchange, watching the outcome."""
        user = startup.user
        try:
            backend = await self._open_leg(client)
        except BackendUnreachable as exc:
            self._record_unavailable(user, info, str(exc), "password")
            client.write(hs.fail(UNAVAILABLE, UNAVAILABLE_MESSAGE))
            return None
        pipelined = hs.take_rest()
        backend.write(startup.raw)
        from_backend = codec.MessageReader(8 * 1024 * 1024)
        from_client = codec.MessageReader()
        from_client.feed(pipelined)
        authenticated = False
        while True:
            from_backend.feed(await backend.read())
            while (msg := from_backend.next_message()) is not None:
                if msg.type != b"E":
                    client.write(codec.typed(msg.type, msg.body))
                else:
                    # the event first: a client that sees the error can read its event at once
                    failed = LoginFailed(codec.parse_fields(msg.body))
                    if failed.sqlstate == "28P01":
                        await self._record_password_refused(user, info, failed)
                    else:
                        self._record_backend_failure(user, info, "password", failed)
                    client.write(codec.typed(msg.type, msg.body))
                    backend.close()
                    return None
                if msg.type == b"Z":
                    if not authenticated:
                        raise ProtocolError("ReadyForQuery before authentication")
                    client.unread(from_client.take_rest())
                    backend.unread(from_backend.take_rest())
                    client.link(backend)
                    return backend
                if msg.type != b"R":
                    continue
                code = codec.parse_int32(msg.body)
                if code == codec.AUTH_OK:
                    authenticated = True
                    self.authenticator.record_password_login(
                        db_user=user, client=info, ok=True,
                        detail="password accepted by the server")
                elif code in (codec.AUTH_CLEARTEXT, codec.AUTH_MD5, codec.AUTH_SASL,
                              codec.AUTH_SASL_CONTINUE):
                    reply = from_client.next_message()
                    while reply is None:
                        from_client.feed(await client.read())
                        reply = from_client.next_message()
                    backend.write(codec.typed(reply.type, reply.body))

    async def _forward_cancel(self, event: CancelRequested) -> None:
        """Pass a CancelRequest to the backend; the server itself checks pid and key."""
        try:
            conn = await open_backend(self._route(), self.settings.backend_timeout)
        except BackendUnreachable:
            return
        conn.write(codec.cancel_request(event.pid, event.key))
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(self.settings.backend_timeout):
                await conn.read()  # the server closes without answering
        conn.close()


_HBA_REASONS = frozenset({Reason.TLS_REQUIRED, Reason.RESERVED_USER,
                          Reason.REPLICATION_NOT_ALLOWED})
"""Refusals PostgreSQL makes by its pg_hba.conf (no line matches) rather than by PAM."""

BACKEND_HINTS = {
    "3D000": "connect to a database that exists (CREATE DATABASE, or dbname=...)",
    "28000": "the server refused the role itself (e.g. NOLOGIN, or no pg_hba.conf line for it): "
             "ALTER ROLE ... LOGIN, or log in as another user",
    "28P01": "the endpoint's derived password for the IAM user was not accepted and could not "
             "be repaired: the role was changed outside the endpoint; re-GRANT rds_iam",
}
"""Hints for the server's own refusals of a session, by SQLSTATE."""


class _ClientConnection(RelayConnection):
    """A client-side RelayConnection that starts its serving task when the socket is accepted."""

    def __init__(self, on_connect: Callable[[_ClientConnection], None]) -> None:
        super().__init__()
        self._on_connect = on_connect
        self.legs: list[RelayConnection] = []
        """Backend connections opened for this client (normally at most one or two)."""

    @property
    def gone(self) -> bool:
        return self.closed.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._on_connect(self)

    def abort_unlinked_legs(self) -> None:
        """Abort the backend legs that are not relaying for this client (idempotent)."""
        for leg in self.legs:
            if not leg.linked:
                leg.abort()
