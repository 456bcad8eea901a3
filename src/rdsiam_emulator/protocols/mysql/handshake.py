"""Login state machines: the endpoint as server (``FrontendHandshake``) and as client
(``BackendLogin``).

Both are sans-I/O. The frontend machine checks sequence ids and message order and says what the
client sent; the glue decides (IAM or password user) and calls the machine to answer. The backend
machine either performs a login itself with a known password (IAM users: the derived password) or
relays a client's own password exchange, re-driving only what cannot pass through unchanged
(caching_sha2_password full authentication and sha256_password, because the client speaks TLS to
us and the backend link is plain TCP: the cleartext the client sends is re-sent RSA-encrypted).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from enum import Enum, auto

from rdsiam_emulator.protocols.mysql import scramble
from rdsiam_emulator.protocols.mysql.constants import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    CACHING_SHA2_PASSWORD,
    CLEAR_PASSWORD,
    ERR_HEADER,
    OK_HEADER,
    SHA2_FAST_AUTH_OK,
    SHA2_PERFORM_FULL_AUTH,
    SHA2_REQUEST_PUBLIC_KEY,
    SHA256_PASSWORD,
    Capability,
    ErrorCode,
)
from rdsiam_emulator.protocols.mysql.messages import (
    AuthSwitch,
    ChangeUser,
    ErrPacket,
    Greeting,
    HandshakeResponse,
    auth_switch_request,
)
from rdsiam_emulator.protocols.mysql.packets import (
    Packet,
    PacketDecoder,
    ProtocolError,
    encode_packet,
)
from rdsiam_emulator.protocols.need_data import NEED_DATA, NeedData

SHA256_REQUEST_PUBLIC_KEY = 0x01
"""sha256_password: what a client on a link without TLS sends to get the server's RSA key."""

HANDSHAKE_MAX_PAYLOAD = 256 * 1024
"""No legitimate handshake packet comes near this (tokens are ~2 KB, attributes at most 64 KB)."""


# ---------------------------------------------------------------------------------- frontend


class FrontState(Enum):
    """Where ``FrontendHandshake`` is in the login; ``DECIDING`` waits for the glue's answer."""
    START = auto()
    AWAIT_FIRST = auto()
    AWAIT_TLS = auto()
    AWAIT_RESPONSE = auto()
    DECIDING = auto()
    AWAIT_AUTH_DATA = auto()
    DONE = auto()
    FAILED = auto()


@dataclass(frozen=True, slots=True)
class SslRequested:
    """The client sent an SSLRequest: the glue must start TLS, then call ``tls_started``."""

    request: HandshakeResponse


@dataclass(frozen=True, slots=True)
class ClientHello:
    """The client's HandshakeResponse41 (or COM_CHANGE_USER, see ``FrontendHandshake``)."""

    response: HandshakeResponse
    tls: bool


@dataclass(frozen=True, slots=True)
class AuthData:
    """The client's answer to an AuthSwitchRequest / AuthMoreData."""

    payload: bytes


FrontEvent = SslRequested | ClientHello | AuthData


class FrontendHandshake:
    """The client-facing side of a login: greeting → [SSLRequest → TLS] → response → [switches]."""

    def __init__(self, greeting: Greeting, *, max_payload: int = HANDSHAKE_MAX_PAYLOAD) -> None:
        self.greeting = greeting
        self.state = FrontState.START
        self.tls = False
        self._decoder = PacketDecoder(max_payload)
        self._packets: deque[Packet] = deque()
        self._seq = 0
        self.response: HandshakeResponse | None = None

    # outgoing ---------------------------------------------------------------------------------
    def start(self) -> bytes:
        """The greeting (sequence id 0)."""
        self._expect(FrontState.START)
        self.state = FrontState.AWAIT_FIRST
        return self._send(self.greeting.build())

    def tls_started(self) -> None:
        """Record that the TLS handshake after an ``SslRequested`` finished; the client's
        HandshakeResponse comes next. Raises ``RuntimeError`` in any other state.
        """
        self._expect(FrontState.AWAIT_TLS)
        self.tls = True
        self.state = FrontState.AWAIT_RESPONSE

    def request_cleartext(self) -> bytes:
        """AuthSwitchRequest to ``mysql_clear_password`` (how RDS asks for the token)."""
        return self.send_auth(auth_switch_request(CLEAR_PASSWORD, b""))

    def send_auth(self, payload: bytes) -> bytes:
        """Any auth packet that expects an answer (a relayed switch / more-data)."""
        self._expect(FrontState.DECIDING)
        self.state = FrontState.AWAIT_AUTH_DATA
        return self._send(payload)

    def notify(self, payload: bytes) -> bytes:
        """An auth packet the client reads without answering (caching_sha2 fast-auth success)."""
        self._expect(FrontState.DECIDING)
        return self._send(payload)

    def succeed(self, ok_payload: bytes) -> bytes:
        """The final OK packet (``ok_payload``) with the right sequence id; the login is done.

        Raises ``RuntimeError`` unless the machine is ``DECIDING``.
        """
        self._expect(FrontState.DECIDING)
        self.state = FrontState.DONE
        return self._send(ok_payload)

    def fail(self, err: ErrPacket) -> bytes:
        """An ERR packet with the right sequence id; usable from any state (then close)."""
        self.state = FrontState.FAILED
        return self._send(err.build())

    # incoming ---------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Client bytes in; read what they say with ``next_event``. Raises ``ProtocolError``
        for a packet over the size limit."""
        self._packets.extend(self._decoder.feed(data))

    def next_event(self) -> FrontEvent | NeedData:
        """The next event, or ``NEED_DATA``. Raises ``ProtocolError`` for a packet out of
        order or sequence, and for bytes sent after an SSLRequest before TLS started."""
        if not self._packets:
            return NEED_DATA
        event = self._on_packet(self._packets.popleft())
        if self.state is FrontState.AWAIT_TLS and (self._packets or self._decoder.buffered):
            raise ProtocolError("bytes after SSLRequest before the TLS handshake")
        return event

    def _on_packet(self, packet: Packet) -> FrontEvent:
        if packet.seq != self._seq:
            raise ProtocolError(
                f"got packet with sequence id {packet.seq}, expected {self._seq}",
                code=1156,
            )
        self._seq = (self._seq + 1) & 0xFF
        state = self.state
        if state in (FrontState.AWAIT_FIRST, FrontState.AWAIT_RESPONSE):
            response = HandshakeResponse.parse(packet.payload)
            if response.is_ssl_request:
                if state is FrontState.AWAIT_RESPONSE or not response.capabilities & Capability.SSL:
                    raise ProtocolError("unexpected SSLRequest")
                self.state = FrontState.AWAIT_TLS
                return SslRequested(response)
            if response.capabilities & Capability.SSL and not self.tls:
                raise ProtocolError("client set CLIENT_SSL but did not start TLS")
            self.response = response
            self.state = FrontState.DECIDING
            return ClientHello(response, self.tls)
        if state is FrontState.AWAIT_AUTH_DATA:
            self.state = FrontState.DECIDING
            return AuthData(packet.payload)
        raise ProtocolError(f"unexpected packet in state {state.name}", code=1156)

    def _send(self, payload: bytes) -> bytes:
        out = encode_packet(self._seq, payload)
        self._seq = (self._seq + len(payload) // 0xFFFFFF + 1) & 0xFF
        return out

    def _expect(self, state: FrontState) -> None:
        if self.state is not state:
            raise RuntimeError(f"FrontendHandshake is in {self.state.name}, not {state.name}")

    @classmethod
    def for_change_user(cls, greeting: Greeting, change_user_seq: int) -> FrontendHandshake:
        """A machine for the client side of COM_CHANGE_USER (already received, packet seq given)."""
        machine = cls(greeting)
        machine.state = FrontState.DECIDING
        machine.tls = True
        machine._seq = (change_user_seq + 1) & 0xFF
        return machine


# ----------------------------------------------------------------------------------- backend


class BackState(Enum):
    """Where ``BackendLogin`` is; ``WAIT_CLIENT``/``EXPECT_CLIENT_CLEARTEXT``: relay mode waits for
    the client's answer (``from_client``).
    """
    READY = auto()
    AUTHENTICATING = auto()
    AWAIT_PUBLIC_KEY = auto()
    EXPECT_CLIENT_CLEARTEXT = auto()
    WAIT_CLIENT = auto()
    DONE = auto()
    FAILED = auto()


@dataclass(frozen=True, slots=True)
class SendBackend:
    """Bytes (a whole framed packet) to write to the backend."""
    data: bytes


@dataclass(frozen=True, slots=True)
class ForwardToClient:
    """A backend auth packet the client must answer (relay mode only)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class NotifyClient:
    """A backend auth packet the client reads but does not answer (fast-auth success)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class LoginSucceeded:
    """The backend's OK payload: the login succeeded (no further events)."""
    ok_payload: bytes


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """The backend refused the login: its parsed ERR packet and the raw payload (to relay as is)."""
    error: ErrPacket
    payload: bytes


BackEvent = SendBackend | ForwardToClient | NotifyClient | LoginSucceeded | LoginFailed


class BackendLogin:
    """The endpoint logging in to the real server.

    ``password`` set: the endpoint answers every challenge itself (IAM users, derived password).
    ``password`` None: relay mode, the client answers challenges; ``client_tls`` tells whether the
    client believes its link is secure (then it answers a full-auth request in cleartext, which the
    endpoint re-sends RSA-encrypted, since the backend link has no TLS).
    """

    def __init__(
        self,
        nonce: bytes,
        first_packet: bytes,
        *,
        first_seq: int,
        plugin: str,
        password: bytes | None,
        client_tls: bool = False,
        max_payload: int = HANDSHAKE_MAX_PAYLOAD,
    ) -> None:
        self.nonce = nonce
        self.plugin = plugin
        self.password = password
        self.client_tls = client_tls
        self.state = BackState.READY
        self._first = first_packet
        self._seq = first_seq
        self._decoder = PacketDecoder(max_payload)
        self._packets: deque[Packet] = deque()
        self._events: deque[BackEvent] = deque()
        self._pending_cleartext: bytes | None = None

    @classmethod
    def for_handshake(
        cls,
        greeting: Greeting,
        client: HandshakeResponse,
        *,
        password: bytes | None,
        client_tls: bool = False,
    ) -> BackendLogin:
        """Log in with the client's own capabilities, charset, database and attributes."""
        caps = client.capabilities & ~(Capability.SSL | Capability.SSL_VERIFY_SERVER_CERT)
        response = replace(client, capabilities=caps)
        plugin = client.auth_plugin or greeting.auth_plugin or "mysql_native_password"
        if password is not None:
            plugin = greeting.auth_plugin or "mysql_native_password"
            auth = scramble.scramble_for(plugin, password, greeting.nonce)
            if auth is None:
                plugin, auth = "mysql_native_password", scramble.native_password(
                    password, greeting.nonce)
            caps |= Capability.PLUGIN_AUTH | Capability.SECURE_CONNECTION
            if len(auth) > 250:
                caps |= Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
            response = replace(response, capabilities=caps, auth_plugin=plugin,
                               auth_response=auth)
        return cls(greeting.nonce, response.build(), first_seq=1, plugin=plugin,
                   password=password, client_tls=client_tls)

    @classmethod
    def for_change_user(
        cls,
        nonce: bytes,
        change: ChangeUser,
        capabilities: int,
        *,
        password: bytes | None,
        default_plugin: str,
        client_tls: bool = False,
    ) -> BackendLogin:
        """Log in again on an open backend connection with COM_CHANGE_USER (sequence id 0).

        ``change`` is rebuilt for ``capabilities``; with ``password`` set the auth response is
        recomputed for ``default_plugin`` against ``nonce``.
        """
        plugin = change.auth_plugin or default_plugin
        if password is not None:
            plugin = default_plugin
            auth = scramble.scramble_for(plugin, password, nonce) or b""
            change = replace(change, auth_plugin=plugin, auth_response=auth)
        return cls(nonce, change.build(capabilities), first_seq=0, plugin=plugin,
                   password=password, client_tls=client_tls)

    def start(self) -> bytes:
        """The first packet to send to the backend; raises ``RuntimeError`` if already started."""
        if self.state is not BackState.READY:
            raise RuntimeError("BackendLogin already started")
        self.state = BackState.AUTHENTICATING
        return self._send(self._first)

    def receive_data(self, data: bytes) -> None:
        """Backend bytes in; read what to do with ``next_event``."""
        self._packets.extend(self._decoder.feed(data))

    def next_event(self) -> BackEvent | NeedData:
        """The next event, or ``NEED_DATA``. Raises ``ProtocolError`` for packets out of
        sequence or order, and for anything the backend sends after the login result."""
        while not self._events:
            if not self._packets:
                return NEED_DATA
            if self.state in (BackState.DONE, BackState.FAILED):
                raise ProtocolError("backend sent data after the login result")
            self._events.extend(self._on_packet(self._packets.popleft()))
        event = self._events.popleft()
        if isinstance(event, LoginSucceeded | LoginFailed) and (self._packets or self._events):
            raise ProtocolError("backend sent data after the login result")
        return event

    def from_client(self, payload: bytes) -> None:
        """Relay mode: the client's answer to a forwarded challenge; what goes to the backend
        comes out of ``next_event`` (``SendBackend``). Raises ``ProtocolError`` when nothing
        was asked."""
        ask_key = bytes([SHA256_REQUEST_PUBLIC_KEY if self.plugin == SHA256_PASSWORD
                         else SHA2_REQUEST_PUBLIC_KEY])
        # an empty password (b"\0") needs no secrecy and the server takes it as is
        if self.state is BackState.EXPECT_CLIENT_CLEARTEXT and payload not in (
                ask_key, b"", b"\0"):
            self._pending_cleartext = payload[:-1] if payload.endswith(b"\0") else payload
            self.state = BackState.AWAIT_PUBLIC_KEY
            self._events.append(SendBackend(self._send(ask_key)))
            return
        if self.state not in (BackState.WAIT_CLIENT, BackState.EXPECT_CLIENT_CLEARTEXT):
            raise ProtocolError("client sent auth data nobody asked for", code=1156)
        self.state = BackState.AUTHENTICATING
        self._events.append(SendBackend(self._send(payload)))

    # ------------------------------------------------------------------------------------------
    def _on_packet(self, packet: Packet) -> list[BackEvent]:
        if packet.seq != self._seq:
            raise ProtocolError(
                f"backend packet sequence id {packet.seq}, expected {self._seq}", code=1156)
        self._seq = (self._seq + 1) & 0xFF
        payload = packet.payload
        if not payload:
            raise ProtocolError("empty packet from backend")
        head = payload[0]
        if self.state is BackState.AWAIT_PUBLIC_KEY:
            if head != AUTH_MORE_DATA_HEADER:
                return self._result(payload)
            secret = self._secret()
            try:
                encrypted = scramble.rsa_encrypt_password(secret, self.nonce, payload[1:])
            except scramble.PasswordTooLongForRsa:
                # what the server would answer a wrong password (a libmysqlclient client on a
                # plain link refuses such a password itself); an IAM token sent to a password
                # user lands here
                self.state = BackState.FAILED
                error = ErrPacket(ErrorCode.ER_ACCESS_DENIED, "28000",
                                  "Access denied (password too long for the RSA exchange)")
                return [LoginFailed(error, error.build())]
            self.state = BackState.AUTHENTICATING
            return [SendBackend(self._send(encrypted))]
        if head in (OK_HEADER, ERR_HEADER):
            return self._result(payload)
        if head == AUTH_SWITCH_HEADER:
            switch = AuthSwitch.parse(payload)
            self.plugin = switch.plugin
            self.nonce = switch.data or self.nonce
            if self.password is None:
                # a client on TLS answers sha256_password with its password in clear
                self.state = (BackState.EXPECT_CLIENT_CLEARTEXT
                              if switch.plugin == SHA256_PASSWORD and self.client_tls
                              else BackState.WAIT_CLIENT)
                return [ForwardToClient(payload)]
            if switch.plugin == SHA256_PASSWORD:
                # (Oracle MySQL also switches a login for an unknown account to it) no TLS to
                # the server: ask for its RSA key, then send the password encrypted
                self.state = BackState.AWAIT_PUBLIC_KEY
                return [SendBackend(self._send(bytes([SHA256_REQUEST_PUBLIC_KEY])))]
            answer = scramble.scramble_for(switch.plugin, self.password, self.nonce)
            if answer is None:
                raise ProtocolError(f"backend asked for unsupported auth plugin {switch.plugin}")
            return [SendBackend(self._send(answer))]
        if head == AUTH_MORE_DATA_HEADER:
            return self._more_data(payload)
        raise ProtocolError(f"unexpected backend packet 0x{head:02x} during login")

    def _more_data(self, payload: bytes) -> list[BackEvent]:
        data = payload[1:]
        sha2 = self.plugin == CACHING_SHA2_PASSWORD
        if self.password is None:
            if sha2 and data == bytes([SHA2_FAST_AUTH_OK]):
                return [NotifyClient(payload)]
            if sha2 and data == bytes([SHA2_PERFORM_FULL_AUTH]) and self.client_tls:
                self.state = BackState.EXPECT_CLIENT_CLEARTEXT
                return [ForwardToClient(payload)]
            self.state = BackState.WAIT_CLIENT
            return [ForwardToClient(payload)]
        if sha2 and data == bytes([SHA2_FAST_AUTH_OK]):
            return []
        if sha2 and data == bytes([SHA2_PERFORM_FULL_AUTH]):
            self.state = BackState.AWAIT_PUBLIC_KEY
            return [SendBackend(self._send(bytes([SHA2_REQUEST_PUBLIC_KEY])))]
        raise ProtocolError("unexpected AuthMoreData from backend")

    def _secret(self) -> bytes:
        if self.password is not None:
            return self.password
        if self._pending_cleartext is None:
            raise ProtocolError("backend sent a public key nobody asked for")
        secret, self._pending_cleartext = self._pending_cleartext, None
        return secret

    def _result(self, payload: bytes) -> list[BackEvent]:
        if payload[0] == OK_HEADER:
            self.state = BackState.DONE
            return [LoginSucceeded(payload)]
        if payload[0] == ERR_HEADER:
            self.state = BackState.FAILED
            return [LoginFailed(ErrPacket.parse(payload), payload)]
        raise ProtocolError(f"unexpected backend packet 0x{payload[0]:02x} during login")

    def _send(self, payload: bytes) -> bytes:
        out = encode_packet(self._seq, payload)
        self._seq = (self._seq + 1) & 0xFF
        return out
