"""The server side of a PostgreSQL start-up handshake, as a sans-I/O state machine (h11 style).

The endpoint feeds client bytes with ``receive_data`` and pulls events with ``next_event``; the
reply methods return the bytes to write. The machine only knows the protocol: deciding IAM versus
password, TLS termination and talking to the real server are the glue's job.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from rdsiam_emulator.protocols.need_data import NEED_DATA
from rdsiam_emulator.protocols.need_data import NeedData as _NeedData
from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.protocols.postgres.codec import ProtocolError

__all__ = ["NEED_DATA"]


@dataclass(frozen=True, slots=True)
class SSLRequested:
    """The client asked for TLS; answer with ``accept_ssl()`` or ``refuse_ssl()``."""


@dataclass(frozen=True, slots=True)
class GSSEncRequested:
    """The client asked for GSSAPI encryption; RDS (no Kerberos here) answers ``N``."""


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """A CancelRequest packet: the connection carries nothing else and is closed afterwards."""

    pid: int
    key: int


@dataclass(frozen=True, slots=True)
class StartupReceived:
    """A v3 StartupMessage. ``raw`` is the packet as sent, for forwarding unchanged."""

    user: str
    database: str
    params: dict[str, str]
    protocol: int
    raw: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class PasswordReceived:
    """The client's PasswordMessage (for IAM: the token). Never log ``password``."""

    password: str = field(repr=False)


Event = SSLRequested | GSSEncRequested | CancelRequested | StartupReceived | PasswordReceived


class State(enum.Enum):
    """Where the handshake is; replies are only allowed in the state they answer (else
    ``RuntimeError``).
    """
    STARTUP = "startup"
    SSL_PENDING = "ssl_pending"
    """SSLRequest answered? Not yet: the glue must reply before more bytes are read."""
    GSS_PENDING = "gss_pending"
    AUTHENTICATING = "authenticating"
    AWAIT_PASSWORD = "await_password"
    DONE = "done"
    """Start-up finished (handed over, cancel received, or failed): nothing more to parse."""


class FrontendHandshake:
    """Parses what a client sends before authentication completes."""

    def __init__(self, *, max_auth_message: int = codec.MAX_AUTH_MESSAGE) -> None:
        self.state = State.STARTUP
        self.tls = False
        self._startup = codec.StartupReader()
        self._messages = codec.MessageReader(max_auth_message)
        self._ssl_asked = False
        self._gss_asked = False

    # -------------------------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> None:
        """Buffer client bytes (any split); nothing is parsed until ``next_event``."""
        if self.state in (State.STARTUP, State.SSL_PENDING, State.GSS_PENDING):
            self._startup.feed(data)
        else:
            self._messages.feed(data)

    def next_event(self) -> Event | _NeedData:
        """The next event, or NEED_DATA. Raises ProtocolError on invalid input."""
        if self.state == State.STARTUP:
            return self._next_startup()
        if self.state == State.AWAIT_PASSWORD:
            try:
                msg = self._messages.next_message()
            except ProtocolError:
                self.state = State.DONE
                raise
            if msg is None:
                return NEED_DATA
            if msg.type != b"p":
                self.state = State.DONE
                raise ProtocolError(
                    f"expected password response, got message type {msg.type[0]}"
                )
            self.state = State.AUTHENTICATING
            data = msg.body[:-1] if msg.body.endswith(b"\0") else msg.body
            if b"\0" in data:
                self.state = State.DONE
                raise ProtocolError("invalid password packet size")
            return PasswordReceived(data.decode("utf-8", "replace"))
        return NEED_DATA

    def _next_startup(self) -> Event | _NeedData:
        try:
            body = self._startup.next_packet()
        except ProtocolError:
            self.state = State.DONE
            raise
        if body is None:
            return NEED_DATA
        code = codec.parse_int32(body)
        if code == codec.SSL_REQUEST_CODE and len(body) == 4:
            if self._ssl_asked or self.tls:
                self.state = State.DONE
                raise ProtocolError("unsupported frontend protocol 1234.5679: server "
                                        "supports 3.0 to 3.0", "0A000")
            self._ssl_asked = True
            self.state = State.SSL_PENDING
            return SSLRequested()
        if code == codec.GSSENC_REQUEST_CODE and len(body) == 4:
            if self._gss_asked or self.tls:
                self.state = State.DONE
                raise ProtocolError("unsupported frontend protocol 1234.5680: server "
                                        "supports 3.0 to 3.0", "0A000")
            self._gss_asked = True
            self.state = State.GSS_PENDING
            return GSSEncRequested()
        if code == codec.CANCEL_REQUEST_CODE and len(body) == 12:
            self.state = State.DONE
            return CancelRequested(codec.parse_uint32(body, 4), codec.parse_uint32(body, 8))
        major, minor = code >> 16, code & 0xFFFF
        if major != 3:
            self.state = State.DONE
            raise ProtocolError(
                f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0",
                "0A000",
            )
        try:
            params = codec.parse_startup_params(body)
        except ProtocolError:
            self.state = State.DONE  # a malformed start-up packet ends the handshake too
            raise
        user = params.get("user", "")
        if not user:
            self.state = State.DONE
            raise ProtocolError("no PostgreSQL user name specified in startup packet", "28000")
        database = params.get("database") or user
        self.state = State.AUTHENTICATING
        # Anything already buffered belongs to the typed-message phase (pipelined clients).
        self._messages.feed(self._startup.take_rest())
        raw = (len(body) + 4).to_bytes(4, "big") + body
        return StartupReceived(user, database, params, code, raw)

    # -------------------------------------------------------------------------------- replies

    def accept_ssl(self) -> bytes:
        """Answer ``S``. Plaintext buffered after an SSLRequest is an attack (CVE-2021-23214)."""
        self._expect(State.SSL_PENDING)
        if self._startup.buffered:
            self.state = State.DONE
            raise ProtocolError("received unencrypted data after SSL request")
        self.state = State.STARTUP
        return b"S"

    def tls_established(self) -> None:
        """Record that the glue finished the TLS handshake: a further SSLRequest or GSSENCRequest is
        then a protocol violation.
        """
        self.tls = True

    def refuse_ssl(self) -> bytes:
        """Answer an SSLRequest with ``N`` (the client may go on in plaintext). ``RuntimeError``
        unless an SSLRequest is pending.
        """
        self._expect(State.SSL_PENDING)
        self.state = State.STARTUP
        return b"N"

    def refuse_gssenc(self) -> bytes:
        """Answer a GSSENCRequest with ``N``, as RDS (no Kerberos here) does. ``RuntimeError``
        unless one is pending.
        """
        self._expect(State.GSS_PENDING)
        self.state = State.STARTUP
        return b"N"

    def negotiate_protocol_version(self, startup: StartupReceived) -> bytes:
        """What a server speaking 3.0 sends when the client asked for 3.x (x > 0) or sent
        ``_pq_.`` options; empty when not needed. The endpoint's own replies are plain 3.0."""
        options = [name for name in startup.params if name.startswith("_pq_.")]
        if startup.protocol == codec.PROTOCOL_3_0 and not options:
            return b""
        return codec.negotiate_protocol_version(codec.PROTOCOL_3_0, options)

    def request_cleartext_password(self) -> bytes:
        """AuthenticationCleartextPassword, after which ``next_event`` yields ``PasswordReceived``:
        how RDS asks for an IAM token. ``RuntimeError`` unless a StartupMessage was just
        received.
        """
        self._expect(State.AUTHENTICATING)
        self.state = State.AWAIT_PASSWORD
        return codec.auth_cleartext()

    def fail(self, sqlstate: str, message: str, *, routine: str | None = None) -> bytes:
        """A FATAL error; the connection must be closed after writing it."""
        self.state = State.DONE
        return codec.fatal(sqlstate, message, routine=routine)

    def take_rest(self) -> bytes:
        """Leave the handshake (relay starts); returns client bytes already buffered."""
        self.state = State.DONE
        return self._messages.take_rest() + self._startup.take_rest()

    def _expect(self, state: State) -> None:
        if self.state != state:
            raise RuntimeError(f"not allowed in state {self.state.value}")
