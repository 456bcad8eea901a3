"""Command-phase framing of the client → server stream, for the relay's cheap inspection.

The relay forwards bytes as they come; this framer only tracks packet boundaries so it can hold
back the few packets the endpoint must handle itself: COM_CHANGE_USER (must not bypass IAM) and
COM_QUERY texts that may be user DDL (the RDS ``AWSAuthenticationPlugin`` statements). Everything
else, including large packets, streams through without being buffered. Not used when the session
negotiated compression (packets are then opaque; see docs/mysql.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdsiam_emulator.protocols.mysql.constants import Command
from rdsiam_emulator.protocols.mysql.ddl import (
    MAX_INSPECTED_QUERY,
    cannot_be_user_ddl,
    might_be_user_ddl,
)
from rdsiam_emulator.protocols.mysql.packets import Packet

_QUERY = int(Command.QUERY)
_CHANGE_USER = int(Command.CHANGE_USER)


def _single_plain_packet(data: bytes, size: int) -> bool:
    """``data`` is exactly one packet that is not intercepted. The per-command fast path: small-
    query throughput through the endpoint is bound by per-packet Python work, so this avoids the
    buffer, copies and (for almost every query) the regex prefilter."""
    if 4 + (data[0] | data[1] << 8 | data[2] << 16) != size:
        return False
    if data[3] or size == 4:
        return True  # not a command (seq != 0) or an empty packet
    cmd = data[4]
    if cmd == _QUERY:
        return (size > 4 + MAX_INSPECTED_QUERY or cannot_be_user_ddl(data.lower())
                or not might_be_user_ddl(data[5:]))
    return cmd != _CHANGE_USER


@dataclass(frozen=True, slots=True)
class Intercept:
    """A whole command packet the endpoint handles itself; stop forwarding until done."""

    packet: Packet
    raw: bytes


class CommandFramer:
    """``feed`` client bytes; get back bytes to forward, possibly ending with one ``Intercept``.

    After an ``Intercept`` the rest of the input is returned unprocessed (``rest``): the caller
    keeps it while it handles the command (it may contain the client's next auth answer) and feeds
    whatever is left once done.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._passthrough = 0
        """Bytes of the current packet still to forward without looking."""

    def passes(self, data: bytes) -> bool:
        """True when ``data`` can be forwarded as it is (the usual case: one whole ordinary
        command, or more of a large packet already let through); the framer's state then
        already accounts for it. False: call ``feed`` with the same bytes."""
        if self._buf:
            return False
        size = len(data)
        if self._passthrough >= size:
            self._passthrough -= size
            return True
        return not self._passthrough and size >= 4 and _single_plain_packet(data, size)

    def feed(self, data: bytes) -> tuple[list[bytes | Intercept], bytes]:
        """Bytes to forward (in order, possibly ending with one ``Intercept``) and the input left
        unprocessed after that ``Intercept`` (empty without one).
        """
        if self.passes(data):
            return [data], b""
        self._buf += data
        return self._drain()

    def _drain(self) -> tuple[list[bytes | Intercept], bytes]:
        out: list[bytes | Intercept] = []
        buf = self._buf
        pos = 0
        while pos < len(buf):
            if self._passthrough:
                step = min(self._passthrough, len(buf) - pos)
                pos += step
                self._passthrough -= step
                continue
            if len(buf) - pos < 4:
                break
            length = int.from_bytes(buf[pos : pos + 3], "little")
            if length and len(buf) - pos < 5:
                break  # the command byte is still to come
            seq = buf[pos + 3]
            cmd = buf[pos + 4] if length else -1
            interesting = seq == 0 and (
                cmd == Command.CHANGE_USER
                or (cmd == Command.QUERY and length <= MAX_INSPECTED_QUERY)
            )
            if not interesting:
                self._passthrough = 4 + length
                continue
            if len(buf) - pos < 4 + length:
                break  # wait for the whole (small) packet
            raw = bytes(buf[pos : pos + 4 + length])
            if cmd == Command.QUERY and not might_be_user_ddl(raw[5:]):
                pos += 4 + length
                continue
            if pos:
                out.append(bytes(buf[:pos]))
            out.append(Intercept(Packet(seq, raw[4:]), raw))
            rest = bytes(buf[pos + 4 + length :])
            buf.clear()
            return out, rest
        if pos:
            out.append(bytes(buf[:pos]))
            del buf[:pos]
        return out, b""
