"""Reading command responses the endpoint itself needs: its admin queries' text result sets and
the OK/ERR outcomes of user DDL it rewrote.

The admin connection never sets CLIENT_DEPRECATE_EOF, so a result set is: column count, column
definitions, EOF, rows, EOF (or ERR). Client sessions may set it; DDL outcomes only look at OK/ERR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto

from rdsiam_emulator.protocols.mysql.constants import (
    EOF_HEADER,
    ERR_HEADER,
    OK_HEADER,
    SERVER_MORE_RESULTS_EXISTS,
)
from rdsiam_emulator.protocols.mysql.messages import ErrPacket, ok_status
from rdsiam_emulator.protocols.mysql.packets import Packet, ProtocolError, Reader


class QueryError(Exception):
    """The server answered a query with ERR."""

    def __init__(self, error: ErrPacket) -> None:
        super().__init__(error.render())
        self.error = error


class _Phase(Enum):
    FIRST = auto()
    COLUMNS = auto()
    ROWS = auto()
    DONE = auto()


@dataclass(slots=True)
class TextResult:
    """Incrementally reads one (single) text-protocol response."""

    rows: list[list[bytes | None]] = field(default_factory=list)
    columns: int = 0
    error: ErrPacket | None = None
    _phase: _Phase = _Phase.FIRST

    @property
    def done(self) -> bool:
        """True once the whole response (OK, ERR, or result set up to its final EOF/OK) was read."""
        return self._phase is _Phase.DONE

    def feed(self, packet: Packet) -> bool:
        """Consume one packet; True when the response is complete."""
        p = packet.payload
        if not p:
            raise ProtocolError("empty packet in a result")
        if self._phase is _Phase.FIRST:
            if p[0] == ERR_HEADER:
                self.error = ErrPacket.parse(p)
                self._phase = _Phase.DONE
            elif p[0] == OK_HEADER:
                self._phase = _Phase.DONE
            else:
                self.columns = Reader(p).lenenc_int()
                self._phase = _Phase.COLUMNS
        elif self._phase is _Phase.COLUMNS:
            if p[0] == EOF_HEADER and len(p) < 9:
                self._phase = _Phase.ROWS
        elif self._phase is _Phase.ROWS:
            if p[0] == EOF_HEADER and len(p) < 9:
                self._phase = _Phase.DONE
            elif p[0] == ERR_HEADER:
                self.error = ErrPacket.parse(p)
                self._phase = _Phase.DONE
            else:
                self.rows.append(_row(p, self.columns))
        return self.done


def _row(payload: bytes, columns: int) -> list[bytes | None]:
    r = Reader(payload)
    out: list[bytes | None] = []
    for _ in range(columns):
        if r.data[r.pos : r.pos + 1] == b"\xfb":
            r.take(1)
            out.append(None)
        else:
            out.append(r.lenenc_bytes())
    return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one statement of a multi-statement DDL query."""

    ok: bool
    error: ErrPacket | None = None


@dataclass(slots=True)
class DdlOutcomes:
    """Reads the response to a (possibly multi-statement) query made only of OK/ERR results.

    ``unknown`` becomes True if a result set shows up: the caller then changes nothing.
    """

    outcomes: list[Outcome] = field(default_factory=list)
    unknown: bool = False
    done: bool = False

    def feed(self, packet: Packet) -> bool:
        """Consume one packet; True when the last result was read (no ``MORE_RESULTS_EXISTS`` flag),
        or as soon as ``unknown`` is set.
        """
        p = packet.payload
        if self.done:
            return True
        if not p:
            self.unknown = self.done = True
        elif p[0] == ERR_HEADER:
            self.outcomes.append(Outcome(False, ErrPacket.parse(p)))
            self.done = True
        elif p[0] == OK_HEADER:
            self.outcomes.append(Outcome(True))
            self.done = not ok_status(p) & SERVER_MORE_RESULTS_EXISTS
        else:
            self.unknown = self.done = True
        return self.done
