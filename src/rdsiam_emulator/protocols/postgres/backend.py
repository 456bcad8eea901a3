"""The endpoint logging in to the real PostgreSQL server, as a sans-I/O client state machine.

Used for IAM users after the token was verified: the endpoint logs in as that DB user with the
derived password (SCRAM-SHA-256, MD5 or cleartext — whatever the server asks for) and collects the
server's greeting (ParameterStatus, BackendKeyData, notices, ReadyForQuery) as raw bytes, to pass
on to the client unchanged. Channel binding (SCRAM-SHA-256-PLUS) is never used: the backend hop is
plain TCP on loopback. The SCRAM exchange is ``scramp.ScramClient`` (RFC 5802 / RFC 7677); its
PBKDF2 (the server's iteration count, 4096 by default) is computed once per (password, salt,
iteration count) and then taken from ``scram.SALTED_PASSWORDS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from scramp import ScramException

from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.protocols.postgres.codec import ProtocolError
from rdsiam_emulator.protocols.postgres.scram import (
    MECHANISM,
    SALTED_PASSWORDS,
    CachingScramClient,
    SaltedPasswordCache,
)

MAX_BACKEND_MESSAGE = 1024 * 1024
_SCRAM_USER = "*"


@dataclass(frozen=True, slots=True)
class LoginSucceeded:
    """Authenticated and ready. ``greeting`` holds every message after AuthenticationOk up to and
    including ReadyForQuery, byte for byte."""

    greeting: bytes = field(repr=False)
    parameters: dict[str, str]
    pid: int | None
    key: int | None
    status: bytes


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """The server (or the exchange) refused; ``fields`` are ErrorResponse fields (C = SQLSTATE)."""

    fields: dict[str, str]

    @property
    def sqlstate(self) -> str:
        """The SQLSTATE (``C`` field), e.g. ``28P01``; ``08P01`` when the exchange itself broke."""
        return self.fields.get("C", "")

    @property
    def message(self) -> str:
        """The primary message (``M`` field)."""
        return self.fields.get("M", "")


LoginEvent = LoginSucceeded | LoginFailed


def md5_password(password: str, user: str, salt: bytes) -> str:
    """PostgreSQL's ``md5`` response: md5(md5(password + user) + salt), hex, prefixed ``md5``."""
    inner = hashlib.md5((password + user).encode("utf-8"), usedforsecurity=False).hexdigest()
    outer = hashlib.md5(inner.encode("ascii") + salt, usedforsecurity=False).hexdigest()
    return "md5" + outer


class BackendLogin:
    """Drives one login; feed server bytes, send ``data_to_send()``, stop at the first event.

    ``params`` are further StartupMessage parameters (``user``/``database`` in it are ignored);
    ``scram_nonce`` fixes the SCRAM client nonce (tests only; default: random);
    ``salted_passwords`` is the SCRAM SaltedPassword cache (default: the process-wide
    ``scram.SALTED_PASSWORDS``; None: PBKDF2 on every login). Server input never
    makes it raise: a malformed or unexpected message, or a SCRAM failure (wrong server signature,
    foreign nonce, iteration count above 10,000,000), ends in ``LoginFailed`` with SQLSTATE 08P01.
    """

    def __init__(
        self,
        *,
        user: str,
        database: str,
        password: str,
        params: Mapping[str, str] | None = None,
        scram_nonce: str | None = None,
        salted_passwords: SaltedPasswordCache | None = SALTED_PASSWORDS,
    ) -> None:
        self.user = user
        self._password = password
        startup = {"user": user, "database": database}
        for name, value in (params or {}).items():
            if name not in ("user", "database"):
                startup[name] = value
        self._out = bytearray(codec.startup_message(startup))
        self._reader = codec.MessageReader(MAX_BACKEND_MESSAGE)
        self._scram: CachingScramClient | None = None
        self._scram_nonce = scram_nonce
        self._salted_passwords = salted_passwords
        self._authenticated = False
        self._greeting = bytearray()
        self._parameters: dict[str, str] = {}
        self._pid: int | None = None
        self._key: int | None = None
        self.result: LoginEvent | None = None

    def data_to_send(self) -> bytes:
        """The bytes to write to the server now (StartupMessage first, then password responses);
        empties the buffer, so each byte is returned once.
        """
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> LoginEvent | None:
        """Process server bytes; returns the outcome once known (then stays fixed)."""
        if self.result is not None:
            return self.result
        self._reader.feed(data)
        try:
            while self.result is None:
                msg = self._reader.next_message()
                if msg is None:
                    break
                self._handle(msg)
        except (ProtocolError, ScramException) as exc:
            self.result = LoginFailed(_local_error(f"backend login failed: {exc}"))
        return self.result

    def take_rest(self) -> bytes:
        """Server bytes received after ReadyForQuery (normally none)."""
        return self._reader.take_rest()

    def _handle(self, msg: codec.Message) -> None:
        if msg.type == b"E":
            self.result = LoginFailed(codec.parse_fields(msg.body))
            return
        if not self._authenticated:
            if msg.type == b"R":
                self._authentication(msg.body)
                return
            if msg.type == b"N":  # notices may precede authentication
                return
            if msg.type == b"v":  # NegotiateProtocolVersion: we only ask for 3.0 plain
                return
            raise ProtocolError(f"unexpected message {msg.type!r} during authentication")
        self._greeting += codec.typed(msg.type, msg.body)
        if msg.type == b"S":
            parts = codec.split_cstrings(msg.body)
            if len(parts) >= 2:
                self._parameters[parts[0]] = parts[1]
        elif msg.type == b"K":
            self._pid = codec.parse_uint32(msg.body, 0)
            self._key = codec.parse_uint32(msg.body, 4)
        elif msg.type == b"Z":
            self.result = LoginSucceeded(
                bytes(self._greeting), dict(self._parameters), self._pid, self._key, msg.body[:1]
            )

    def _authentication(self, body: bytes) -> None:
        code = codec.parse_int32(body)
        if code == codec.AUTH_OK:
            self._authenticated = True
        elif code == codec.AUTH_CLEARTEXT:
            self._out += codec.password_message(self._password)
        elif code == codec.AUTH_MD5:
            salt = body[4:8]
            if len(salt) != 4:
                raise ProtocolError("MD5 request without a 4-byte salt")
            self._out += codec.password_message(md5_password(self._password, self.user, salt))
        elif code == codec.AUTH_SASL:
            mechanisms = [m for m in codec.split_cstrings(body[4:]) if m]
            if MECHANISM not in mechanisms:
                raise ProtocolError(f"no supported SASL mechanism in {mechanisms}")
            # PostgreSQL ignores the SCRAM user name (the StartupMessage names the role); libpq
            # sends an empty one, which scramp refuses, and a role name might fail SASLprep.
            self._scram = CachingScramClient([MECHANISM], _SCRAM_USER, self._password,
                                             c_nonce=self._scram_nonce,
                                             cache=self._salted_passwords)
            first = str(self._scram.get_client_first()).encode("utf-8")
            self._out += codec.sasl_initial_response(MECHANISM, first)
        elif code == codec.AUTH_SASL_CONTINUE:
            if self._scram is None:
                raise ProtocolError("SASLContinue without SASL")
            self._scram.set_server_first(_sasl_text(body[4:], "server-first-message"))
            final = self._scram.get_client_final().encode("utf-8")
            self._out += codec.sasl_response(final)
        elif code == codec.AUTH_SASL_FINAL:
            if self._scram is None:
                raise ProtocolError("SASLFinal without SASL")
            self._scram.set_server_final(_sasl_text(body[4:], "server-final-message"))
        else:
            raise ProtocolError(f"unsupported authentication request {code}")


def _sasl_text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not UTF-8") from exc


def _local_error(message: str) -> dict[str, str]:
    return {"S": "FATAL", "V": "FATAL", "C": "08P01", "M": message}
