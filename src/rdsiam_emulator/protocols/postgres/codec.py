"""Framing and encoding of PostgreSQL protocol v3 messages (no I/O).

Two framings exist: start-up packets (``int32 length`` then body, no type byte: SSLRequest,
GSSENCRequest, CancelRequest, StartupMessage) and typed messages (``byte type, int32 length``).
Lengths include themselves. Both readers enforce a maximum size so a hostile length cannot make the
endpoint buffer gigabytes: PostgreSQL itself caps start-up packets at 10000 bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PROTOCOL_3_0 = 196608  # 3 << 16
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

MAX_STARTUP_PACKET = 10000
"""PostgreSQL's MAX_STARTUP_PACKET_LENGTH."""
MAX_AUTH_MESSAGE = 64 * 1024
"""Largest typed message accepted during authentication (passwords, tokens, SASL data)."""

# Authentication request codes (message 'R').
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_TYPED_HEADER = struct.Struct("!ci")


class ProtocolError(Exception):
    """Invalid bytes from the peer; ``sqlstate`` is what a server would report."""

    def __init__(self, message: str, sqlstate: str = "08P01", *, report: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.report = report
        """False where a real server only logs and closes (a garbled start-up packet)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One typed message: its type byte and body (without the length)."""

    type: bytes
    body: bytes


class _Buffered:
    """The byte buffer both readers share: feed bytes in, hand the unread rest over."""

    def __init__(self, max_size: int) -> None:
        self._buf = bytearray()
        self._max = max_size

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def take_rest(self) -> bytes:
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


class StartupReader(_Buffered):
    """Accumulates bytes and yields start-up packet bodies (without the length word)."""

    def __init__(self, max_size: int = MAX_STARTUP_PACKET) -> None:
        super().__init__(max_size)

    def next_packet(self) -> bytes | None:
        """The next start-up packet's body (protocol word onwards), or None until it is complete.

        Raises ``ProtocolError`` (``report=False``: a server closes without answering) for a
        length below 8 or above the reader's maximum (bytes).
        """
        if len(self._buf) < 4:
            return None
        (length,) = _I32.unpack_from(self._buf, 0)
        if length < 8 or length > self._max:
            raise ProtocolError("invalid length of startup packet", report=False)
        if len(self._buf) < length:
            return None
        body = bytes(self._buf[4:length])
        del self._buf[:length]
        return body


class MessageReader(_Buffered):
    """Accumulates bytes and yields typed messages; rejects lengths outside 4..max_size."""

    def __init__(self, max_size: int = MAX_AUTH_MESSAGE) -> None:
        super().__init__(max_size)

    def next_message(self) -> Message | None:
        """The next complete typed message, or None until it is complete. Raises
        ``ProtocolError`` when the length word is below 4 or above the reader's maximum
        (bytes).
        """
        if len(self._buf) < 5:
            return None
        mtype, length = _TYPED_HEADER.unpack_from(self._buf, 0)
        if length < 4 or length > self._max:
            raise ProtocolError(f"invalid message length {length} for message type {mtype!r}")
        total = length + 1
        if len(self._buf) < total:
            return None
        body = bytes(self._buf[5:total])
        del self._buf[:total]
        return Message(mtype, body)


# ------------------------------------------------------------------------------------ encoders


def typed(mtype: bytes, body: bytes = b"") -> bytes:
    """Frame ``body`` as a typed message."""
    return mtype + _I32.pack(len(body) + 4) + body


def cstr(text: str) -> bytes:
    """``text`` in UTF-8 with a terminating NUL (a protocol String)."""
    return text.encode("utf-8") + b"\0"


def ssl_request() -> bytes:
    """The 8-byte SSLRequest packet."""
    return _I32.pack(8) + _I32.pack(SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    """The 8-byte GSSENCRequest packet."""
    return _I32.pack(8) + _I32.pack(GSSENC_REQUEST_CODE)


def cancel_request(pid: int, key: int) -> bytes:
    """The 16-byte CancelRequest packet for backend ``pid`` and secret ``key`` (both unsigned
    32-bit).
    """
    return _I32.pack(16) + _I32.pack(CANCEL_REQUEST_CODE) + _U32.pack(pid) + _U32.pack(key)


def startup_message(params: Mapping[str, str], protocol: int = PROTOCOL_3_0) -> bytes:
    """A StartupMessage with ``params`` in the given order (protocol 3.0 unless ``protocol`` says
    otherwise, as ``major << 16 | minor``).
    """
    body = _I32.pack(protocol) + b"".join(cstr(k) + cstr(v) for k, v in params.items()) + b"\0"
    return _I32.pack(len(body) + 4) + body


def authentication(code: int, extra: bytes = b"") -> bytes:
    """An Authentication message (``R``) with request ``code`` and its extra bytes."""
    return typed(b"R", _I32.pack(code) + extra)


def auth_ok() -> bytes:
    """AuthenticationOk."""
    return authentication(AUTH_OK)


def auth_cleartext() -> bytes:
    """AuthenticationCleartextPassword: how RDS asks for the IAM token (PAM), see
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.Connecting.html
    """
    return authentication(AUTH_CLEARTEXT)


def auth_md5(salt: bytes) -> bytes:
    """AuthenticationMD5Password with its 4-byte ``salt``."""
    return authentication(AUTH_MD5, salt)


def auth_sasl(mechanisms: Iterable[str]) -> bytes:
    """AuthenticationSASL offering ``mechanisms`` in order."""
    return authentication(AUTH_SASL, b"".join(cstr(m) for m in mechanisms) + b"\0")


def password_message(password: str | bytes) -> bytes:
    """A PasswordMessage (``p``) carrying ``password`` NUL-terminated (str is sent as UTF-8)."""
    data = password.encode("utf-8") if isinstance(password, str) else password
    return typed(b"p", data + b"\0")


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    """SASLInitialResponse: the chosen ``mechanism`` and the client-first ``data``."""
    return typed(b"p", cstr(mechanism) + _I32.pack(len(data)) + data)


def sasl_response(data: bytes) -> bytes:
    """SASLResponse carrying ``data`` (the client-final message)."""
    return typed(b"p", data)


def parameter_status(name: str, value: str) -> bytes:
    """ParameterStatus (``S``) reporting ``name`` = ``value``."""
    return typed(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, key: int) -> bytes:
    """BackendKeyData (``K``): process ``pid`` and cancel ``key`` (unsigned 32-bit)."""
    return typed(b"K", _U32.pack(pid) + _U32.pack(key))


def ready_for_query(status: bytes = b"I") -> bytes:
    """ReadyForQuery (``Z``) with transaction ``status`` ``I`` idle, ``T`` in a transaction or ``E``
    failed transaction.
    """
    return typed(b"Z", status)


def negotiate_protocol_version(newest: int, unrecognized: Iterable[str]) -> bytes:
    """NegotiateProtocolVersion: the newest version we speak and the ``_pq_.`` options ignored."""
    names = list(unrecognized)
    return typed(b"v", _I32.pack(newest) + _I32.pack(len(names))
                 + b"".join(cstr(n) for n in names))


def terminate() -> bytes:
    """Terminate (``X``)."""
    return typed(b"X")


def error_response(fields: Mapping[str, str]) -> bytes:
    """``fields`` maps one-letter codes (S, V, C, M, D, H, R, ...) to values."""
    body = b"".join(code.encode("ascii") + cstr(value) for code, value in fields.items()) + b"\0"
    return typed(b"E", body)


def fatal(sqlstate: str, message: str, *, routine: str | None = None,
          detail: str | None = None, hint: str | None = None) -> bytes:
    """A FATAL ErrorResponse shaped like a real server's (S, V, C, M, [D], [H], [R])."""
    fields = {"S": "FATAL", "V": "FATAL", "C": sqlstate, "M": message}
    if detail is not None:
        fields["D"] = detail
    if hint is not None:
        fields["H"] = hint
    if routine is not None:
        fields["R"] = routine
    return error_response(fields)


# ------------------------------------------------------------------------------------ decoders


def split_cstrings(data: bytes) -> list[str]:
    """Split NUL-terminated strings; the data must end with a NUL."""
    if not data.endswith(b"\0"):
        raise ProtocolError("missing string terminator")
    try:
        return [p.decode("utf-8") for p in data[:-1].split(b"\0")]
    except UnicodeDecodeError as exc:
        raise ProtocolError("invalid UTF-8 in message", "22021") from exc


def parse_fields(body: bytes) -> dict[str, str]:
    """Decode an ErrorResponse/NoticeResponse body into {code: value}."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        code = chr(body[pos])
        end = body.find(b"\0", pos + 1)
        if end < 0:
            raise ProtocolError("unterminated error field")
        fields[code] = body[pos + 1 : end].decode("utf-8", "replace")
        pos = end + 1
    return fields


def parse_int32(body: bytes, offset: int = 0) -> int:
    """The signed big-endian 32-bit integer at ``offset``; raises ``ProtocolError`` if ``body``
    is too short.
    """
    if len(body) < offset + 4:
        raise ProtocolError("message too short")
    return int(_I32.unpack_from(body, offset)[0])


def parse_uint32(body: bytes, offset: int = 0) -> int:
    """The unsigned big-endian 32-bit integer at ``offset``; raises ``ProtocolError`` if
    ``body`` is too short.
    """
    if len(body) < offset + 4:
        raise ProtocolError("message too short")
    return int(_U32.unpack_from(body, offset)[0])


def parse_startup_params(body: bytes) -> dict[str, str]:
    """The name/value pairs of a StartupMessage body after the protocol word."""
    data = body[4:]
    if not data.endswith(b"\0"):
        raise ProtocolError("invalid startup packet layout: expected terminator as last byte")
    parts = split_cstrings(data[:-1]) if len(data) > 1 else []
    if len(parts) % 2:
        raise ProtocolError("invalid startup packet layout: expected terminator as last byte")
    params: dict[str, str] = {}
    for i in range(0, len(parts), 2):
        params[parts[i]] = parts[i + 1]
    return params
