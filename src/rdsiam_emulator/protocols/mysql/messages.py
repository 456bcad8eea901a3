"""Handshake-phase messages: parse and build, byte-exact.

Fields the endpoint does not interpret (MariaDB extended capabilities in reserved bytes, connection
attributes, trailing extensions) are kept raw so a re-built message carries everything the client
asked for to the backend unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rdsiam_emulator.protocols.mysql.constants import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    EOF_HEADER,
    ERR_HEADER,
    OK_HEADER,
    Capability,
)
from rdsiam_emulator.protocols.mysql.packets import ProtocolError, Reader, lenenc_bytes, lenenc_int

SSL_REQUEST_LENGTH = 32


@dataclass(frozen=True, slots=True)
class Greeting:
    """Protocol v10 initial handshake (server → client)."""

    server_version: bytes
    connection_id: int
    nonce: bytes
    """The 20-byte auth plugin data (scramble), without the trailing NUL."""
    capabilities: int
    charset: int
    status: int
    auth_plugin: str
    reserved: bytes = b"\0" * 10
    """Raw reserved bytes; MariaDB puts its extended capabilities in the last four."""
    protocol_version: int = 10

    @classmethod
    def parse(cls, payload: bytes) -> Greeting:
        """Decode a server greeting payload. Raises ``ProtocolError`` for an ERR packet instead (its
        text in the message), a protocol version other than 10, or a truncated payload.
        """
        r = Reader(payload)
        proto = r.uint(1)
        if proto == ERR_HEADER:
            raise ProtocolError("server sent an error instead of a greeting: " + _err_text(payload))
        if proto != 10:
            raise ProtocolError(f"unsupported protocol version {proto}")
        version = r.nul_str()
        conn_id = r.uint(4)
        part1 = r.take(8)
        r.take(1)
        caps = r.uint(2)
        charset, status, caps_hi = 0, 0, 0
        data_len = 0
        reserved = b"\0" * 10
        if not r.at_end():
            charset = r.uint(1)
            status = r.uint(2)
            caps_hi = r.uint(2)
            data_len = r.uint(1)
            reserved = r.take(10)
        caps |= caps_hi << 16
        part2 = b""
        if caps & Capability.SECURE_CONNECTION:
            part2 = r.take(max(13, data_len - 8))
            if part2.endswith(b"\0"):
                part2 = part2[:-1]
        plugin = b""
        if caps & Capability.PLUGIN_AUTH:
            plugin = r.nul_str_or_rest()
        return cls(
            server_version=version,
            connection_id=conn_id,
            nonce=part1 + part2,
            capabilities=caps,
            charset=charset,
            status=status,
            auth_plugin=plugin.decode("ascii", "replace"),
            reserved=reserved,
            protocol_version=proto,
        )

    def build(self) -> bytes:
        """The greeting payload as a server sends it (fields present according to
        ``capabilities``).
        """
        caps = self.capabilities
        nonce = self.nonce
        return b"".join(
            (
                bytes([self.protocol_version]),
                self.server_version + b"\0",
                self.connection_id.to_bytes(4, "little"),
                nonce[:8],
                b"\0",
                (caps & 0xFFFF).to_bytes(2, "little"),
                bytes([self.charset]),
                self.status.to_bytes(2, "little"),
                ((caps >> 16) & 0xFFFF).to_bytes(2, "little"),
                bytes([len(nonce) + 1 if caps & Capability.PLUGIN_AUTH else 0]),
                self.reserved,
                nonce[8:] + b"\0" if caps & Capability.SECURE_CONNECTION else b"",
                self.auth_plugin.encode() + b"\0" if caps & Capability.PLUGIN_AUTH else b"",
            )
        )


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """HandshakeResponse41 (client → server); also the SSLRequest, which is its 32-byte prefix."""

    capabilities: int
    max_packet: int
    charset: int
    filler: bytes
    """23 raw bytes; MariaDB clients put extended capabilities in the last four."""
    user: bytes = b""
    auth_response: bytes = b""
    database: bytes | None = None
    auth_plugin: str | None = None
    attributes: bytes | None = None
    """The raw key/value block of connection attributes (without its length prefix)."""
    tail: bytes = b""
    """Anything after the known fields (e.g. MySQL 8's zstd level), kept verbatim."""
    is_ssl_request: bool = False

    @property
    def user_text(self) -> str:
        """The user name decoded as UTF-8 (invalid bytes replaced), for messages and events."""
        return self.user.decode("utf-8", "replace")

    @classmethod
    def parse(cls, payload: bytes) -> HandshakeResponse:
        """Decode a HandshakeResponse41 or its 32-byte SSLRequest prefix. Raises ``ProtocolError``
        when too short or truncated, and with 1251/08004 for a client without protocol 4.1.
        """
        if len(payload) < SSL_REQUEST_LENGTH:
            raise ProtocolError("handshake response too short")
        r = Reader(payload)
        caps = r.uint(4)
        if not caps & Capability.PROTOCOL_41:
            raise ProtocolError("client does not speak protocol 4.1", code=1251, sqlstate="08004")
        max_packet = r.uint(4)
        charset = r.uint(1)
        filler = r.take(23)
        if r.at_end():
            return cls(caps, max_packet, charset, filler, is_ssl_request=True)
        user = r.nul_str()
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = r.lenenc_bytes()
        elif caps & Capability.SECURE_CONNECTION:
            auth = r.take(r.uint(1))
        else:
            auth = r.nul_str_or_rest()
        database = None
        if caps & Capability.CONNECT_WITH_DB and not r.at_end():
            database = r.nul_str_or_rest()
        plugin = None
        if caps & Capability.PLUGIN_AUTH and not r.at_end():
            plugin = r.nul_str_or_rest().decode("ascii", "replace")
        attributes = None
        if caps & Capability.CONNECT_ATTRS and not r.at_end():
            attributes = r.lenenc_bytes()
        return cls(caps, max_packet, charset, filler, user, auth, database, plugin, attributes,
                   r.rest())

    def build(self) -> bytes:
        """The payload as a client sends it, fields present according to ``capabilities``."""
        caps = self.capabilities
        head = (
            caps.to_bytes(4, "little")
            + self.max_packet.to_bytes(4, "little")
            + bytes([self.charset])
            + self.filler
        )
        if self.is_ssl_request:
            return head
        parts = [head, self.user + b"\0"]
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            parts.append(lenenc_bytes(self.auth_response))
        elif caps & Capability.SECURE_CONNECTION:
            if len(self.auth_response) > 255:
                raise ValueError("auth response longer than 255 bytes needs LENENC_CLIENT_DATA")
            parts.append(bytes([len(self.auth_response)]) + self.auth_response)
        else:
            parts.append(self.auth_response + b"\0")
        if caps & Capability.CONNECT_WITH_DB:
            parts.append((self.database or b"") + b"\0")
        if caps & Capability.PLUGIN_AUTH:
            parts.append((self.auth_plugin or "").encode() + b"\0")
        if caps & Capability.CONNECT_ATTRS:
            parts.append(lenenc_bytes(self.attributes or b""))
        parts.append(self.tail)
        return b"".join(parts)

    def with_auth(self, plugin: str, auth_response: bytes) -> HandshakeResponse:
        """A copy naming ``plugin`` with ``auth_response`` (to log in to the backend with other
        credentials).
        """
        return replace(self, auth_plugin=plugin, auth_response=auth_response)

    def attribute_pairs(self) -> dict[str, str]:
        """Decode the connection attributes (for events and tests; lenient on bad input)."""
        out: dict[str, str] = {}
        if not self.attributes:
            return out
        r = Reader(self.attributes)
        try:
            while not r.at_end():
                key = r.lenenc_bytes().decode("utf-8", "replace")
                out[key] = r.lenenc_bytes().decode("utf-8", "replace")
        except ProtocolError:
            pass
        return out


@dataclass(frozen=True, slots=True)
class ChangeUser:
    """COM_CHANGE_USER: the fields the endpoint needs to decide whether IAM applies."""

    user: bytes
    auth_response: bytes
    database: bytes
    charset: int | None
    auth_plugin: str | None
    attributes: bytes | None

    @classmethod
    def parse(cls, payload: bytes, capabilities: int) -> ChangeUser:
        """Decode a COM_CHANGE_USER payload (command byte included) under the session's
        ``capabilities``. Raises ``ProtocolError`` when truncated.
        """
        r = Reader(payload, 1)
        user = r.nul_str()
        if capabilities & Capability.SECURE_CONNECTION:
            auth = r.take(r.uint(1))
        else:
            auth = r.nul_str_or_rest()
        database = r.nul_str_or_rest() if not r.at_end() else b""
        charset = r.uint(2) if r.remaining >= 2 else None
        plugin = None
        if capabilities & Capability.PLUGIN_AUTH and not r.at_end():
            plugin = r.nul_str_or_rest().decode("ascii", "replace")
        attributes = None
        if capabilities & Capability.CONNECT_ATTRS and not r.at_end():
            attributes = r.lenenc_bytes()
        return cls(user, auth, database, charset, plugin, attributes)

    def build(self, capabilities: int) -> bytes:
        """The COM_CHANGE_USER payload (command byte ``0x11`` first) under ``capabilities``."""
        parts = [b"\x11", self.user + b"\0"]
        if capabilities & Capability.SECURE_CONNECTION:
            parts.append(bytes([len(self.auth_response)]) + self.auth_response)
        else:
            parts.append(self.auth_response + b"\0")
        parts.append(self.database + b"\0")
        if self.charset is not None:
            parts.append(self.charset.to_bytes(2, "little"))
            if capabilities & Capability.PLUGIN_AUTH:
                parts.append((self.auth_plugin or "").encode() + b"\0")
            if capabilities & Capability.CONNECT_ATTRS:
                parts.append(lenenc_bytes(self.attributes or b""))
        return b"".join(parts)


# ----------------------------------------------------------------------- generic response packets


@dataclass(frozen=True, slots=True)
class ErrPacket:
    """An ERR packet: MySQL error ``code`` (e.g. 1045), five-character ``sqlstate`` and
    ``message``.
    """
    code: int
    sqlstate: str
    message: str

    def build(self) -> bytes:
        """The ERR payload (``0xff``, code, ``#``, SQLSTATE padded/cut to 5, message in UTF-8)."""
        return (
            bytes([ERR_HEADER])
            + self.code.to_bytes(2, "little")
            + b"#"
            + self.sqlstate.encode("ascii")[:5].ljust(5, b"0")
            + self.message.encode("utf-8")
        )

    @classmethod
    def parse(cls, payload: bytes) -> ErrPacket:
        """Decode an ERR payload; SQLSTATE ``HY000`` when the packet has no ``#`` marker. Raises
        ``ProtocolError`` when truncated.
        """
        r = Reader(payload, 1)
        code = r.uint(2)
        state = "HY000"
        if r.remaining >= 6 and payload[r.pos : r.pos + 1] == b"#":
            r.take(1)
            state = r.take(5).decode("ascii", "replace")
        return cls(code, state, r.rest().decode("utf-8", "replace"))

    def render(self) -> str:
        """As the mysql/mariadb command-line clients print it."""
        return f"ERROR {self.code} ({self.sqlstate}): {self.message}"


def _err_text(payload: bytes) -> str:
    try:
        return ErrPacket.parse(payload).render()
    except ProtocolError:
        return "unreadable error packet"


def ok_packet(status: int = 0x0002, warnings: int = 0, affected: int = 0,
              last_insert_id: int = 0) -> bytes:
    """An OK payload with the given server ``status`` flags, ``warnings`` count, affected rows and
    last insert id.
    """
    return (
        bytes([OK_HEADER]) + lenenc_int(affected) + lenenc_int(last_insert_id)
        + status.to_bytes(2, "little") + warnings.to_bytes(2, "little")
    )


def eof_packet(status: int = 0x0002, warnings: int = 0) -> bytes:
    """An EOF payload (``0xfe``) with ``warnings`` and server ``status`` flags."""
    return bytes([EOF_HEADER]) + warnings.to_bytes(2, "little") + status.to_bytes(2, "little")


def ok_status(payload: bytes) -> int:
    """The server status flags of an OK packet (0 if unreadable)."""
    try:
        r = Reader(payload, 1)
        r.lenenc_int()
        r.lenenc_int()
        return r.uint(2)
    except ProtocolError:
        return 0


def auth_switch_request(plugin: str, data: bytes) -> bytes:
    """An AuthSwitchRequest payload: switch the client to ``plugin`` with plugin ``data`` (e.g. the
    nonce). RDS switches IAM logins to ``mysql_clear_password``.
    """
    return bytes([AUTH_SWITCH_HEADER]) + plugin.encode() + b"\0" + data


@dataclass(frozen=True, slots=True)
class AuthSwitch:
    """A parsed AuthSwitchRequest (server → client): the plugin to use and its data."""
    plugin: str
    data: bytes

    @classmethod
    def parse(cls, payload: bytes) -> AuthSwitch:
        """Decode an AuthSwitchRequest. Raises ``ProtocolError`` (1251/08004) for the old one-byte
        form (pre-4.1 passwords).
        """
        if len(payload) == 1:
            raise ProtocolError("old-style auth switch (pre-4.1 passwords) is not supported",
                                code=1251, sqlstate="08004")
        r = Reader(payload, 1)
        plugin = r.nul_str_or_rest().decode("ascii", "replace")
        data = r.rest()
        if data.endswith(b"\0"):
            data = data[:-1]
        return cls(plugin, data)


def auth_more_data(data: bytes) -> bytes:
    """An AuthMoreData payload (``0x01`` + ``data``), e.g. caching_sha2's fast-auth result."""
    return bytes([AUTH_MORE_DATA_HEADER]) + data


def is_ok(payload: bytes) -> bool:
    """True when ``payload`` is an OK packet (first byte ``0x00``)."""
    return bool(payload) and payload[0] == OK_HEADER


def is_err(payload: bytes) -> bool:
    """True when ``payload`` is an ERR packet (first byte ``0xff``)."""
    return bool(payload) and payload[0] == ERR_HEADER


NAMES_CONNECTING_HOST = frozenset({3118})
"""Login errors whose ``'user'@'host'`` is the address the connection came from (3118 account
locked); 1044 names the account's host pattern (``'%'``) and is left alone."""


def as_seen_from(err: ErrPacket, user: str, client_ip: str) -> ErrPacket:
    """``err`` (if in ``NAMES_CONNECTING_HOST``) with every ``'user'@'host'`` naming ``user``
    made to name ``client_ip``: the server names the endpoint's address, RDS the client's."""
    if err.code not in NAMES_CONNECTING_HOST:
        return err
    named = re.compile(re.escape(f"'{user}'@'") + "[^']*'")
    message = named.sub(lambda _: f"'{user}'@'{client_ip}'", err.message)
    return err if message == err.message else replace(err, message=message)


def access_denied(user: str, client_ip: str, *, using_password: bool = True) -> ErrPacket:
    """The exact message RDS (and MySQL) sends for a refused login."""
    yes = "YES" if using_password else "NO"
    return ErrPacket(1045, "28000",
                     f"Access denied for user '{user}'@'{client_ip}' (using password: {yes})")


_FIXED_SIZE = {0x01: 1, 0x02: 2, 0x03: 4, 0x04: 4, 0x05: 8, 0x06: 0, 0x08: 8, 0x09: 4, 0x0D: 2}
"""Binary-protocol value sizes of the fixed-size types (TINY, SHORT, LONG, FLOAT, DOUBLE, NULL,
LONGLONG, INT24, YEAR)."""
_LENGTH_BYTE = frozenset({0x07, 0x0A, 0x0B, 0x0C})
"""TIMESTAMP, DATE, TIME, DATETIME: a length byte, then that many bytes."""
_LENENC = frozenset({0x00, 0x0F, 0x10, *range(0xF5, 0x100)})
"""DECIMAL, VARCHAR, BIT, JSON ... GEOMETRY: a length-encoded string."""


def split_query(payload: bytes, query_attributes: bool) -> tuple[bytes, bytes]:
    """A COM_QUERY ``payload`` as ``(head, query text)``: ``head`` is the command byte and, when
    the session negotiated ``CLIENT_QUERY_ATTRIBUTES``, the attributes (MySQL 8.0.23+: parameter
    count, parameter set count, null bitmap, bind flag, each parameter's type and name, the
    non-NULL values). Raises ``ProtocolError`` when the attributes do not parse."""
    if not query_attributes:
        return payload[:1], payload[1:]
    r = Reader(payload, 1)
    count = r.lenenc_int()
    r.lenenc_int()  # parameter set count (always 1)
    if count:
        nulls = r.take((count + 7) // 8)
        if r.take(1) != b"\x01":
            raise ProtocolError("query attributes without their types")
        types: list[int] = []
        for _ in range(count):
            types.append(r.take(2)[0])
            r.lenenc_bytes()  # the name
        for index, kind in enumerate(types):
            if nulls[index // 8] & (1 << (index % 8)):
                continue
            if kind in _FIXED_SIZE:
                r.take(_FIXED_SIZE[kind])
            elif kind in _LENGTH_BYTE:
                r.take(r.take(1)[0])
            elif kind in _LENENC:
                r.lenenc_bytes()
            else:
                raise ProtocolError(f"query attribute of unknown type {kind:#04x}")
    return payload[:r.pos], payload[r.pos:]
