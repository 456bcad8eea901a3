"""Packet framing (3-byte length + 1-byte sequence id) and the little-endian field codecs.

Payloads of 16 MB - 1 bytes continue in the next packet; ``PacketDecoder`` joins them and enforces a
maximum so a hostile peer cannot make the endpoint buffer without bound. Compressed-protocol packets
are never parsed here: after the handshake the endpoint relays bytes (see docs/mysql.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdsiam_emulator.protocols.mysql.constants import MAX_PACKET_CHUNK


class ProtocolError(ValueError):
    """Bytes that are not valid MySQL protocol; ``code`` is the server error to answer with."""

    def __init__(self, message: str, code: int = 1043, sqlstate: str = "08S01") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.sqlstate = sqlstate


@dataclass(frozen=True, slots=True)
class Packet:
    """One logical packet: the sequence id of its last physical packet and the joined payload."""

    seq: int
    payload: bytes


class PacketDecoder:
    """Incremental decoder: ``feed`` bytes, get whole logical packets back."""

    def __init__(self, max_payload: int = 16 * 1024 * 1024) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._parts_len = 0

    @property
    def buffered(self) -> int:
        """Bytes held that are not yet part of a returned packet."""
        return len(self._buf) + self._parts_len

    def take_buffer(self) -> bytes:
        """Hand back unparsed bytes (e.g. bytes that followed the handshake) and reset."""
        data = b"".join(self._parts) + bytes(self._buf)
        self._buf.clear()
        self._parts.clear()
        self._parts_len = 0
        return data

    def feed(self, data: bytes) -> list[Packet]:
        """Add bytes; returns the logical packets completed by them (16 MiB chunks joined), in
        order. Raises ``ProtocolError`` (code 1153) when a packet would exceed ``max_payload``
        bytes.
        """
        self._buf += data
        out: list[Packet] = []
        while len(self._buf) >= 4:
            length = int.from_bytes(self._buf[:3], "little")
            if self._parts_len + length > self.max_payload:
                raise ProtocolError(
                    f"packet of {self._parts_len + length} bytes exceeds {self.max_payload}",
                    code=1153,
                )
            if len(self._buf) < 4 + length:
                break
            seq = self._buf[3]
            chunk = bytes(self._buf[4 : 4 + length])
            del self._buf[: 4 + length]
            if length == MAX_PACKET_CHUNK:
                self._parts.append(chunk)
                self._parts_len += length
                continue
            if self._parts:
                self._parts.append(chunk)
                chunk = b"".join(self._parts)
                self._parts.clear()
                self._parts_len = 0
            out.append(Packet(seq, chunk))
        return out


def encode_packet(seq: int, payload: bytes) -> bytes:
    """Frame ``payload`` starting at sequence id ``seq`` (splitting at 16 MB - 1)."""
    return b"".join(encode_packets(seq, payload)[0])


def encode_packets(seq: int, payload: bytes) -> tuple[list[bytes], int]:
    """Frame ``payload``; return the frames and the next sequence id."""
    frames: list[bytes] = []
    view = memoryview(payload)
    while True:
        chunk = view[:MAX_PACKET_CHUNK]
        frames.append(len(chunk).to_bytes(3, "little") + bytes([seq & 0xFF]) + bytes(chunk))
        seq = (seq + 1) & 0xFF
        view = view[MAX_PACKET_CHUNK:]
        if len(chunk) < MAX_PACKET_CHUNK:
            return frames, seq


# ------------------------------------------------------------------------------- field codecs


def lenenc_int(value: int) -> bytes:
    """``value`` (0 ≤ value < 2**64) as a length-encoded integer (1, 3, 4 or 9 bytes)."""
    if value < 0xFB:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def lenenc_bytes(value: bytes) -> bytes:
    """``value`` prefixed with its length as a length-encoded integer."""
    return lenenc_int(len(value)) + value


class Reader:
    """A cursor over one payload; every read raises ``ProtocolError`` past the end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def remaining(self) -> int:
        """Bytes not yet read."""
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        """True when every byte was read."""
        return self.pos >= len(self.data)

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes. Raises ``ProtocolError`` if fewer remain or ``n`` is negative."""
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError("truncated packet")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        """The next ``n``-byte little-endian unsigned integer."""
        return int.from_bytes(self.take(n), "little")

    def nul_str(self) -> bytes:
        """The bytes up to the next NUL (which is consumed). Raises ``ProtocolError`` when there is
        none.
        """
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolError("unterminated string")
        out = self.data[self.pos : end]
        self.pos = end + 1
        return out

    def nul_str_or_rest(self) -> bytes:
        """A NUL-terminated string that some clients leave unterminated at the end of a packet."""
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            return self.rest()
        out = self.data[self.pos : end]
        self.pos = end + 1
        return out

    def lenenc_int(self) -> int:
        """The next length-encoded integer. Raises ``ProtocolError`` when truncated or for an
        invalid first byte.
        """
        first = self.uint(1)
        if first < 0xFB:
            return first
        if first == 0xFC:
            return self.uint(2)
        if first == 0xFD:
            return self.uint(3)
        if first == 0xFE:
            return self.uint(8)
        raise ProtocolError(f"invalid length-encoded integer prefix 0x{first:02x}")

    def lenenc_bytes(self) -> bytes:
        """The next length-encoded string."""
        return self.take(self.lenenc_int())

    def rest(self) -> bytes:
        """Every byte not yet read (possibly empty)."""
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out
