"""The MySQL/MariaDB endpoint of an emulated RDS instance: asyncio glue around sans-I/O machines.

Per client: open the backend first and greet the client with the backend's own greeting (version,
connection id, nonce) plus ``CLIENT_SSL``, so password logins can be relayed byte for byte and
``KILL <id>`` names the right backend thread. A backend connection held by a client that has not
authenticated takes a ``PreauthSlots`` slot (bounded in total and per client address, well below
the server's max_connections); without one (or beyond ``eager_backend_logins``) the greeting is the
endpoint's own and the backend is opened later: for an IAM user once the token is verified, for a
password login once a slot is free (waiting ``preauth_wait``, then ERROR 1040); password logins
are then re-asked with the backend's nonce.
The first client packets are read straight from the accepted socket with exact sizes, because a
MySQL client sends its TLS ClientHello right after the SSLRequest without waiting; TLS is then
layered on the untouched socket.

* IAM user (in the catalog, cached by ``mysql_admin.CatalogCache``): TLS required,
  AuthSwitchRequest to ``mysql_clear_password``, token verified by the authenticator, then a
  backend login as that user with the derived password; the client gets the backend's OK. A token
  failure: exactly RDS's ERROR 1045; a refusal by the server after that (1040, 1044, 1049, ...):
  the server's own error.
* anyone else: the client's HandshakeResponse goes to the backend (CLIENT_SSL cleared) and the auth
  exchange is relayed; caching_sha2 full auth is re-driven with RSA (see handshake.BackendLogin).

Afterwards bytes are relayed unchanged, except that client → server COM_CHANGE_USER and user DDL
(COM_QUERY) packets are intercepted (protocols.mysql.framing) and run by ``mysql_intercept``;
``mysql_relay`` has the connection objects and wire helpers, ``mysql_admin`` the catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import secrets
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from rdsiam_emulator.auth.authenticator import ClientInfo, IamAuthenticator, LoginDecision
from rdsiam_emulator.auth.login import AskToken, LogIn, LoginFacts, LoginStep, Refuse, RelayPassword
from rdsiam_emulator.auth.proxy import ProxyDoor
from rdsiam_emulator.auth.tokens import redact_secrets
from rdsiam_emulator.backends.mysql_catalog import CatalogVersion
from rdsiam_emulator.endpoint.backend import BackendAddress, EndpointSettings
from rdsiam_emulator.endpoint.mysql_admin import DEFAULT_CATALOG_MAX_AGE, AdminClient
from rdsiam_emulator.endpoint.mysql_intercept import (
    CATALOG_HINT,
    DERIVED_LOGIN_HINT,
    MISSING_ACCOUNT_HINT,
    CommandInterceptor,
    Session,
    account_missing,
    record_password_refusal,
)
from rdsiam_emulator.endpoint.mysql_relay import (
    FIRST_PACKET_MAX,
    NOT_SUPPORTED_AUTH_MODE,
    BackendSide,
    ClientSide,
    cleartext_password,
    drive_own_login,
    next_client_auth,
    read_packet,
    refusal_packet,
    relay_login_outcome,
    sock_send,
)
from rdsiam_emulator.endpoint.relay import ConnectionClosed, RelayConnection
from rdsiam_emulator.endpoint.tracking import TrackedEndpoint
from rdsiam_emulator.events import TEXT_CAP, clip
from rdsiam_emulator.protocols.mysql.constants import CLEAR_PASSWORD, Capability, ErrorCode
from rdsiam_emulator.protocols.mysql.framing import CommandFramer
from rdsiam_emulator.protocols.mysql.handshake import (
    BackendLogin,
    ClientHello,
    FrontendHandshake,
    LoginFailed,
    LoginSucceeded,
    SslRequested,
)
from rdsiam_emulator.protocols.mysql.messages import (
    ErrPacket,
    Greeting,
    HandshakeResponse,
    access_denied,
    as_seen_from,
    auth_switch_request,
)
from rdsiam_emulator.protocols.mysql.packets import (
    Packet,
    PacketDecoder,
    ProtocolError,
    encode_packet,
)
from rdsiam_emulator.protocols.need_data import NEED_DATA
from rdsiam_emulator.reasons import Reason

__all__ = ["BackendAddress", "IamAuthenticator", "MysqlEndpoint", "MysqlEndpointSettings"]

log = logging.getLogger(__name__)

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
"""MySQL's connect_timeout."""
ER_DBACCESS_DENIED = 1044
ER_BAD_DB = 1049


@dataclass
class MysqlEndpointSettings(EndpointSettings):
    """A MySQL endpoint's settings (times in seconds)."""

    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    catalog_max_age: float = DEFAULT_CATALOG_MAX_AGE
    """How stale the cached IAM-user catalog may get for writers outside this process."""
    max_pending_logins: int = 1000
    """Clients that may be logging in at once; more get ERROR 1040 at once."""
    eager_backend_logins: int = 32
    """Pending logins that get the backend's own greeting (its connection is opened at accept,
    so ``CONNECTION_ID()`` matches the greeting). Beyond this, clients get a greeting made by the
    endpoint and the backend is opened only once they have authenticated (IAM) or sent their
    login (password): silent clients then cost the server nothing."""
    max_preauth_backends: int = 32
    """Backend connections held by clients that have not authenticated yet (eager greetings and
    relayed password logins), in total. Keep it well below the server's max_connections (MariaDB
    default 151) so that authenticated sessions and IAM logins always find room."""
    max_preauth_backends_per_address: int = 8
    """The same bound per client IP address."""
    preauth_wait: float = 3.0
    """Seconds a password login waits for one of those backend connections before ERROR 1040."""


class MysqlEndpoint(TrackedEndpoint):
    """Listens for clients of one emulated MySQL/MariaDB instance and serves each connection."""

    def __init__(
        self,
        *,
        backend: BackendAddress,
        authenticator: IamAuthenticator,
        instance_secret: bytes,
        tls_context: ssl.SSLContext | None,
        settings: MysqlEndpointSettings | None = None,
        catalog_version: CatalogVersion | None = None,
        door: ProxyDoor | None = None,
    ) -> None:
        """``catalog_version``: the backend handle's (``MysqlHandle.catalog_version``), so that
        its catalog writes are seen by the next login; None: only this endpoint's own writes
        are (others once the cache is ``catalog_max_age`` old). ``door``: this endpoint is an
        RDS Proxy's (its rules and wire texts, ``auth.proxy``); ``instance_secret`` is then the
        target instance's."""
        super().__init__()
        self.door = door
        self.backend = backend
        self.backend_route: Callable[[], BackendAddress] | None = None
        """Where each new backend connection goes instead of ``backend`` (an RDS Proxy in front
        of an Aurora cluster: the current writer, or the next reader); the admin session stays
        on ``backend``."""
        self.authenticator = authenticator
        self._secret = instance_secret
        self._tls = tls_context  # EmulatorCA contexts send no session tickets, like the servers
        self.settings = settings or MysqlEndpointSettings()
        self.admin = AdminClient(backend, timeout=self.settings.backend_timeout,
                                 catalog_max_age=self.settings.catalog_max_age,
                                 catalog_version=catalog_version)
        self._interceptor = CommandInterceptor(self, instance_secret)
        self._sock: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._raw: set[socket.socket] = set()
        self._pending = 0
        self._eager = 0  # pending logins holding a backend connection opened at accept
        self._preauth = PreauthSlots(self.settings.max_preauth_backends,
                                     self.settings.max_preauth_backends_per_address)
        self._template: Greeting | None = None  # the last backend greeting, for deferred ones
        self._synthetic_ids = itertools.count(1 << 30)

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Bind and listen on ``settings.listen_host``/``listen_port``, set ``port`` (the bound one)
        and start accepting. Raises ``OSError`` when the address cannot be bound.
        """
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
        """Stop accepting, abort every connection and task, and close the admin session."""
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        await self._release_all()
        for raw in list(self._raw):
            raw.close()
        await self.admin.close()

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

    # ------------------------------------------------------------------------------ one client
    async def _serve(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        legs = _Legs(sock)
        self._raw.add(sock)
        self._pending += 1
        pending = True
        try:
            if self._pending > self.settings.max_pending_logins:
                # Refuse before any work, with the engine's own answer to a full server.
                busy = self._pending - 1
                self._refuse_overload(_no_login(addr), f"the endpoint already has {busy} "
                                      "clients logging in (max_pending_logins)", "", "unknown")
                await sock_send(sock, encode_packet(0, _too_many_connections().build()))
                return
            eager = False
            if self._eager < self.settings.eager_backend_logins:
                eager = legs.slot = self._preauth.try_acquire(addr[0])
            if self._template is None and not eager:  # no greeting to copy yet: wait for room
                eager = legs.slot = await self._preauth.acquire(
                    addr[0], self.settings.preauth_wait)
                if not eager:
                    self._refuse_overload(_no_login(addr), self._preauth.full(addr[0]), "",
                                          "unknown")
                    await sock_send(sock, encode_packet(0, _too_many_connections().build()))
                    return
            if eager:
                self._eager += 1
            try:
                async with asyncio.timeout(self.settings.handshake_timeout):
                    backend = await self._open_backend() if eager else None
                    if eager and backend is None:
                        self._refuse_unavailable(_no_login(addr))
                        await sock_send(sock, encode_packet(0, _server_gone().build()))
                        return
                    session = await self._handshake(legs, addr, backend)
            finally:
                if eager:
                    self._eager -= 1
                if legs.slot:
                    legs.slot = False
                    self._preauth.release(addr[0])
            self._pending -= 1
            pending = False
            if session is None:
                return
            await session.client.wait_closed()
            await session.backend.wait_closed()
        except (TimeoutError, ConnectionClosed, ssl.SSLError, ConnectionError, OSError,
                ProtocolError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("mysql endpoint: unexpected error")
        finally:
            if pending:
                self._pending -= 1
            legs.release(self._conns, self._raw)

    def _refuse_backend(self, err: ErrPacket, client: ClientInfo, user: str = "",
                        method: str = "unknown") -> None:
        """Record the backend's refusal to open a connection (its ERR instead of a greeting)."""
        if err.code == ErrorCode.ER_CON_COUNT_ERROR:
            self._refuse_overload(client, "the backend answered " + err.render(), user, method)
        else:
            self.authenticator.reject(
                db_user=user, client=client, reason=Reason.BACKEND_REFUSED, method=method,
                detail="the backend refused the connection: " + err.render(),
                hint="the server's own error reached the client unchanged; fix what it names "
                     "(e.g. FLUSH HOSTS for a blocked host)")

    def _refuse_unavailable(self, client: ClientInfo, user: str = "",
                            method: str = "unknown") -> None:
        """Record that the backend could not be reached (the client gets ERROR 1053)."""
        self.authenticator.reject(
            db_user=user, client=client, reason=Reason.BACKEND_UNAVAILABLE, method=method,
            detail=f"cannot reach the backend at {self.backend.describe()}; the client "
                   "was answered 1053 Server shutdown in progress",
            hint="the real MySQL/MariaDB server is down or unreachable: start it (or wait for "
                 "its restart) and retry")

    def _refuse_overload(self, client: ClientInfo, detail: str, user: str,
                         method: str, caller: LoginDecision | None = None) -> None:
        """Record a refusal for lack of room (the client gets ERROR 1040); ``user`` is empty
        and ``method`` "unknown" when the client was refused before it could name one;
        otherwise ``method`` is what the login is ("iam" / "password")."""
        self.authenticator.reject(
            db_user=user, client=client, reason=Reason.TOO_MANY_CONNECTIONS, detail=detail,
            method=method, caller=caller,
            hint="close idle connections or pool them; raise max_connections (or the "
                 "endpoint's max_pending_logins) if the load is expected")

    async def _open_deferred(
        self, legs: _Legs, front: FrontendHandshake, info: ClientInfo, user: str, method: str,
    ) -> tuple[BackendSide, Greeting] | None:
        """Open the backend for a client greeted by the endpoint; None once the refusal was
        sent and recorded."""
        assert legs.client is not None
        backend = await self._open_backend()
        if backend is None:
            self._refuse_unavailable(info, user, method)
            legs.client.write(front.fail(_server_gone()))
            return None
        legs.add_backend(backend, self._conns)
        first = await _read_greeting(backend)
        if isinstance(first, ErrPacket):
            self._refuse_backend(first, info, user, method)
            legs.client.write(front.fail(first))
            return None
        return backend, first

    async def _open_backend(self) -> BackendSide | None:
        loop = asyncio.get_running_loop()
        target = self.backend if self.backend_route is None else self.backend_route()
        try:
            async with asyncio.timeout(self.settings.backend_timeout):
                if target.unix_socket is not None:
                    _, proto = await loop.create_unix_connection(
                        BackendSide, target.unix_socket)
                else:
                    _, proto = await loop.create_connection(
                        BackendSide, target.host, target.port)
        except (OSError, TimeoutError):
            return None
        return proto

    async def _handshake(
        self, legs: _Legs, addr: tuple[str, int], backend: BackendSide | None
    ) -> Session | None:
        """Greet, take the client's login (after TLS) and authenticate it. ``backend`` None:
        deferred, the greeting is the endpoint's own and the backend is opened after the login
        arrived. Returns the linked session, or None once the refusal was sent."""
        loop = asyncio.get_running_loop()
        sock = legs.sock
        if backend is not None:
            legs.add_backend(backend, self._conns)
            first = await _read_greeting(backend)
            if isinstance(first, ErrPacket):  # e.g. 1040: the server is full; tell the client
                self._refuse_backend(first, _no_login(addr))
                await sock_send(sock, encode_packet(0, first.build()))
                return None
            self._template = first
            shown = first
        else:
            assert self._template is not None
            shown = replace(self._template, nonce=_nonce(),
                            connection_id=next(self._synthetic_ids) & 0xFFFFFFFF)
        greeting = replace(shown, capabilities=shown.capabilities | Capability.SSL)
        front = FrontendHandshake(greeting)
        await sock_send(sock, front.start())
        try:
            front.receive_data(await read_packet(sock))
            said = front.next_event()  # one whole packet was read: an event
            if isinstance(said, SslRequested):
                if self._tls is None:
                    raise ProtocolError("TLS is not configured on this endpoint")
                self._raw.discard(sock)  # the transport takes over (and closes it on failure)
                tls_side = ClientSide()
                legs.set_client(tls_side, self._conns)
                # the client's ClientHello may already wait in the socket: the transport
                # buffers it until start_tls feeds it to the handshake
                await loop.connect_accepted_socket(lambda: tls_side, sock)
                await tls_side.start_tls(self._tls, timeout=self.settings.handshake_timeout)
                front.tls_started()
                while (said := front.next_event()) is NEED_DATA:
                    front.receive_data(await tls_side.read())
            else:
                plain_side = ClientSide()
                legs.set_client(plain_side, self._conns)
                await loop.connect_accepted_socket(lambda: plain_side, sock)
            self._raw.discard(sock)  # the transport owns the socket now
            hello = said
            if not isinstance(hello, ClientHello):
                raise ProtocolError("expected a handshake response")
            assert legs.client is not None
            opened = None if backend is None else (backend, shown)
            linked = await self._authenticate(legs, opened, front, hello, addr)
        except ProtocolError as exc:
            err = front.fail(ErrPacket(exc.code, exc.sqlstate, _protocol_message(exc)))
            if legs.client is not None:
                legs.client.write(err)
            else:
                with contextlib.suppress(OSError):
                    await sock_send(sock, err)
            return None
        if linked is None:
            return None
        backend, bgreet = linked
        legs.keep(backend)
        caps = hello.response.capabilities & bgreet.capabilities
        session = Session(legs.client, backend, bgreet, caps,
                           self._client_info(legs.client, addr, hello), hello.response.user_text)
        self._link(session)
        return session

    def _client_info(self, client: ClientSide, addr: tuple[str, int], hello: ClientHello
                     ) -> ClientInfo:
        db = hello.response.database.decode("utf-8", "replace") if hello.response.database \
            else None
        return ClientInfo(address=addr[0], port=addr[1], tls=hello.tls, database=db)

    async def _authenticate(
        self, legs: _Legs, opened: tuple[BackendSide, Greeting] | None,
        front: FrontendHandshake, hello: ClientHello, addr: tuple[str, int],
    ) -> tuple[BackendSide, Greeting] | None:
        """Run the login; returns the backend session to relay to (and its greeting), or None
        after the refusal was sent and recorded (exactly one reason). ``opened`` None (the
        greeting was the endpoint's own): an IAM login opens the backend only once its token
        is verified; a password login first takes a pre-auth slot (``PreauthSlots``)."""
        client = legs.client
        assert client is not None
        response = hello.response
        user = response.user_text
        info = self._client_info(client, addr, hello)
        try:
            iam_user = await self.admin.is_iam_user(user)
        except Exception as exc:
            self.authenticator.reject(
                db_user=user, client=info, reason=Reason.INTERNAL_ERROR,
                detail=f"catalog lookup failed: {clip(repr(exc), TEXT_CAP)}",
                hint=CATALOG_HINT)
            client.write(front.fail(access_denied(user, addr[0])))
            return None
        sent = (response.auth_response if response.auth_plugin == CLEAR_PASSWORD else None)
        step = LoginStep(self.authenticator, LoginFacts(
            db_user=user, client=info, iam_user=iam_user, sent_token=sent,
            can_ask_token=bool(response.capabilities & Capability.PLUGIN_AUTH),
        ), secret=self._secret, door=self.door)
        command = step.start()
        if isinstance(command, RelayPassword):
            if opened is None:
                if not await self._preauth.acquire(addr[0], self.settings.preauth_wait):
                    self._refuse_overload(info, self._preauth.full(addr[0]), user, "password")
                    client.write(front.fail(_too_many_connections()))
                    return None
                legs.slot = True
                opened = await self._open_deferred(legs, front, info, user, "password")
                if opened is None:
                    return None
            backend, bgreet = opened
            ok = await self._password_login(client, backend, front, bgreet, hello, info,
                                            step.relays_iam_user)
            return (backend, bgreet) if ok else None
        if isinstance(command, AskToken):
            client.write(front.request_cleartext())
            try:
                command = step.receive_token(await next_client_auth(client, front))
            except ConnectionClosed:
                # libmysqlclient without the cleartext plugin enabled hangs up on the switch
                # (its error 2059 stays on the client side).
                step.client_left()
                return None
        if isinstance(command, Refuse):
            client.write(front.fail(refusal_packet(command.reason, user, addr[0], self.door)))
            return None
        assert isinstance(command, LogIn)
        if opened is None:
            opened = await self._open_deferred(legs, front, info, user, "iam")
            if opened is None:
                return None
        backend, bgreet = opened
        password = command.password
        login = BackendLogin.for_handshake(bgreet, response, password=password.encode())
        try:
            result = await drive_own_login(backend, login)
        except ConnectionClosed:
            # The connection opened at accept died while the client sent its token (server
            # killed or restarted): one fresh one, or 1053 and backend_unavailable, not a
            # silent close after an allow.
            opened = await self._open_deferred(legs, front, info, user, "iam")
            if opened is None:
                return None
            backend, bgreet = opened
            login = BackendLogin.for_handshake(bgreet, response, password=password.encode())
            result = await drive_own_login(backend, login)
        if (isinstance(result, LoginFailed) and result.error.code == ErrorCode.ER_ACCESS_DENIED
                and not command.repair):
            # a proxy secret the database refuses: the proxy's error, not the server's
            self.authenticator.reject(
                db_user=user, client=info, reason=Reason.PROXY_SECRET_REFUSED,
                caller=command.decision,
                detail="the database refused the proxy secret's credentials: "
                       + result.error.render(),
                hint="put the database user's current password in the proxy's secret "
                     "(describe_db_proxy_targets shows AUTH_FAILURE until then)")
            client.write(front.fail(refusal_packet(Reason.PROXY_SECRET_REFUSED, user, addr[0],
                                                   self.door)))
            return None
        if isinstance(result, LoginFailed) and result.error.code == ErrorCode.ER_ACCESS_DENIED:
            # The backend's password is not the derived one (a new instance secret with a reused
            # backend, or an ALTER USER that bypassed the endpoint): repair it once and retry on
            # a fresh backend connection (the failed one is closed by the server).
            retried = await self._repair_and_retry(legs, user, password, response)
            if retried is not None:
                new_backend, new_greeting, result = retried
                if isinstance(result, LoginSucceeded):
                    client.write(front.succeed(result.ok_payload))
                    return new_backend, new_greeting
        if isinstance(result, LoginSucceeded):
            client.write(front.succeed(result.ok_payload))
            return backend, bgreet
        if result.error.code == ErrorCode.ER_CON_COUNT_ERROR:
            self._refuse_overload(info, "the backend answered " + result.error.render(), user,
                                  "iam", command.decision)
            client.write(front.fail(result.error))
            return None
        if result.error.code != ErrorCode.ER_ACCESS_DENIED:
            # Not about the password (1044 no access to the database, 1049 unknown database,
            # ...): the server's own answer, as RDS passes it on once IAM accepted the token.
            self.authenticator.reject(
                db_user=user, client=info, reason=Reason.BACKEND_REFUSED, caller=command.decision,
                detail="IAM accepted the token; the database refused the session: "
                       + result.error.render(),
                hint=_backend_refused_hint(result.error.code))
            client.write(front.fail(as_seen_from(result.error, user, addr[0])))
            return None
        if await account_missing(self.admin, user):
            self.authenticator.reject(
                db_user=user, client=info, reason=Reason.IAM_ACCOUNT_MISSING,
                caller=command.decision,
                detail="IAM accepted the token, but the server has no account named exactly "
                       f"{user!r}: " + result.error.render(),
                hint=MISSING_ACCOUNT_HINT)
            client.write(front.fail(access_denied(user, addr[0])))
            return None
        log.warning("mysql endpoint: backend refused the derived login of %r: %s", clip(user),
                    clip(redact_secrets(result.error.render()), TEXT_CAP))
        self.authenticator.reject(
            db_user=user, client=info, reason=Reason.INTERNAL_ERROR, caller=command.decision,
            detail="the backend refused the derived-password login: " + result.error.render(),
            hint=DERIVED_LOGIN_HINT)
        client.write(front.fail(access_denied(user, addr[0])))
        return None

    async def _repair_and_retry(
        self, legs: _Legs, user: str, password: str, response: HandshakeResponse
    ) -> tuple[BackendSide, Greeting, LoginSucceeded | LoginFailed] | None:
        try:
            await self.admin.reset_iam_passwords(user, password)
        except Exception as exc:
            log.warning("mysql endpoint: cannot repair the backend password of %r: %s", clip(user),
                        clip(repr(exc), TEXT_CAP))
            return None
        backend = await self._open_backend()
        if backend is None:
            return None
        legs.add_backend(backend, self._conns)
        first = await _read_greeting(backend)
        if isinstance(first, ErrPacket):
            return None
        login = BackendLogin.for_handshake(first, response, password=password.encode())
        return backend, first, await drive_own_login(backend, login)

    async def _password_login(
        self, client: ClientSide, backend: BackendSide, front: FrontendHandshake,
        bgreet: Greeting, hello: ClientHello, info: ClientInfo, relays_iam_user: bool,
    ) -> bool:
        response = hello.response
        user = response.user_text
        if front.greeting.nonce != bgreet.nonce:
            # Deferred backend: the client scrambled with the endpoint's nonce. Ask it again, for
            # the same plugin, with the backend's (an ordinary AuthSwitchRequest).
            if not response.capabilities & Capability.PLUGIN_AUTH:
                self.authenticator.reject(
                    db_user=user, client=info, reason=Reason.AUTH_SWITCH_UNSUPPORTED,
                    method="password",
                    detail="the client cannot answer an auth switch (no CLIENT_PLUGIN_AUTH); it "
                           "scrambled with the endpoint's greeting, given while more than "
                           "eager_backend_logins clients were logging in",
                    hint="use a client with plugin authentication (MySQL 5.5+ / MariaDB client "
                         "libraries), or raise the endpoint's eager_backend_logins")
                client.write(front.fail(NOT_SUPPORTED_AUTH_MODE))
                return False
            plugin = response.auth_plugin or bgreet.auth_plugin or "mysql_native_password"
            client.write(front.send_auth(auth_switch_request(plugin, bgreet.nonce + b"\0")))
            response = response.with_auth(plugin, await next_client_auth(client, front))
        login = BackendLogin.for_handshake(bgreet, response, password=None,
                                           client_tls=hello.tls)
        outcome = await relay_login_outcome(client, backend, front, login, user, info.address,
                                            bool(response.auth_response))
        cleartext = cleartext_password(response.auth_plugin, response.auth_response)
        if outcome.error_code == ErrorCode.ER_CON_COUNT_ERROR:
            self._refuse_overload(info, "the backend answered 1040 Too many connections", user,
                                  "password")
        elif not outcome.ok:
            record_password_refusal(self.authenticator, user=user, info=info, via="login",
                                    error_code=outcome.error_code, cleartext=cleartext,
                                    iam_user=relays_iam_user)
        else:
            self.authenticator.record_password_login(
                db_user=user, client=info, ok=True,
                detail="password login relayed to the backend")
        client.write(outcome.final)
        return outcome.ok

    # ------------------------------------------------------------------------------ relay phase
    def _link(self, s: Session) -> None:
        s.client.link(s.backend)  # also sets the relay's write-buffer limits (relay.py)
        if s.capabilities & Capability.COMPRESS:
            return  # compressed packets are opaque: pure relay (docs/mysql.md)
        s.client.backend = s.backend
        s.client.framer = CommandFramer()
        s.client.on_intercept = lambda item: self._spawn(self._interceptor.handle(s, item))


def _backend_refused_hint(code: int) -> str:
    if code == ER_DBACCESS_DENIED:
        return "GRANT the user access to that database, or connect to one it may use"
    if code == ER_BAD_DB:
        return "create the database first, or fix the database name in the connection"
    return "see the server's error; the token itself was accepted"


def _protocol_message(exc: ProtocolError) -> str:
    if exc.code == ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER:
        return "Got packets out of order"
    if exc.code == ErrorCode.ER_NET_PACKET_TOO_LARGE:
        return "Got a packet bigger than 'max_allowed_packet' bytes"
    if exc.code == ErrorCode.ER_NOT_SUPPORTED_AUTH_MODE:
        return ("Client does not support authentication protocol requested by server; "
                "consider upgrading MariaDB client")
    return "Bad handshake"


@dataclass(eq=False)
class _Legs:
    """What one accepted client holds, so that every way out of ``_serve`` closes and forgets
    all of it (the raw socket, the client transport, every backend opened for it)."""

    sock: socket.socket
    client: ClientSide | None = None
    backends: list[BackendSide] = field(default_factory=list)
    slot: bool = False  # holds one of the endpoint's PreauthSlots

    def set_client(self, client: ClientSide, conns: set[RelayConnection]) -> None:
        self.client = client
        conns.add(client)

    def add_backend(self, backend: BackendSide, conns: set[RelayConnection]) -> None:
        self.backends.append(backend)
        conns.add(backend)

    def keep(self, backend: BackendSide) -> None:
        """The session relays to ``backend``: any other one (a failed login) closes now."""
        for other in self.backends:
            if other is not backend:
                other.close()

    def release(self, conns: set[RelayConnection], raw: set[socket.socket]) -> None:
        for leg in (self.client, *self.backends):
            if leg is None:
                continue
            leg.close()
            if leg.transport is None or leg.closed.done():
                conns.discard(leg)
            else:  # e.g. a TLS shutdown still running: tracked so that endpoint close aborts it
                leg.closed.add_done_callback(functools.partial(_forget, conns, leg))
        if self.sock in raw:  # no transport took the socket over
            raw.discard(self.sock)
            self.sock.close()


def _forget(conns: set[RelayConnection], leg: RelayConnection, _: object) -> None:
    conns.discard(leg)


async def _read_greeting(backend: BackendSide) -> Greeting | ErrPacket:
    """The backend's first packet: its greeting, or the ERR it sends instead (1040 when full)."""
    decoder = PacketDecoder(FIRST_PACKET_MAX)
    packets: list[Packet] = []
    while not packets:
        packets = decoder.feed(await backend.read())
    payload = packets[0].payload
    if payload[:1] == b"\xff":
        return ErrPacket.parse(payload)
    return Greeting.parse(payload)


def _nonce() -> bytes:
    """A fresh 20-byte scramble of printable bytes, as servers send (no NUL, no '$')."""
    alphabet = bytes(c for c in range(0x21, 0x7F) if c != 0x24)
    return bytes(secrets.choice(alphabet) for _ in range(20))


def _server_gone() -> ErrPacket:
    return ErrPacket(ErrorCode.ER_SERVER_SHUTDOWN, "08S01", "Server shutdown in progress")


def _no_login(addr: tuple[str, int]) -> ClientInfo:
    """Who a client is before it has sent a login (no user, no TLS yet)."""
    return ClientInfo(address=addr[0], port=addr[1], tls=False)


def _too_many_connections() -> ErrPacket:
    return ErrPacket(ErrorCode.ER_CON_COUNT_ERROR, "08004", "Too many connections")


class PreauthSlots:
    """Counts backend connections held by clients that have not authenticated yet, in total and
    per client IP address, so that such clients cannot fill the server's ``max_connections``.
    Plain counters plus waiters woken on release; one event loop only."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self.held = 0
        self._by_address: dict[str, int] = {}
        self._waiters: list[asyncio.Future[None]] = []

    def try_acquire(self, address: str) -> bool:
        """Take a slot for ``address`` if one is free at once."""
        if self.held >= self.total or self._by_address.get(address, 0) >= self.per_address:
            return False
        self.held += 1
        self._by_address[address] = self._by_address.get(address, 0) + 1
        return True

    async def acquire(self, address: str, timeout: float) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds; False if none came free."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.try_acquire(address):
            left = deadline - loop.time()
            if left <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), left)
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        return True

    def release(self, address: str) -> None:
        self.held -= 1
        left = self._by_address[address] - 1
        if left:
            self._by_address[address] = left
        else:
            del self._by_address[address]
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:  # each re-checks its own address's room
            if not waiter.done():
                waiter.set_result(None)

    def full(self, address: str) -> str:
        """Why a login found no slot (an event detail)."""
        return (f"{self.held} backend connections are held by clients not yet authenticated "
                f"({self._by_address.get(address, 0)} from {address}); the limits are "
                f"{self.total} in all and {self.per_address} per address "
                "(max_preauth_backends, max_preauth_backends_per_address)")
