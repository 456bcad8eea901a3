"""Reading command responses the endpoint itself needs: its admin queries' text result sets and
the OK/ERR outcomes of user DDL it rewrote.

The admin connection never sets CLIENT_DEPRECATE_EOF, so a result set is: column count, column
definitions, EOF, rows, EOF (or ERR). Client sessions may set it; DDL outcomes are OK/ERR or
the result set of a generated password (``DdlOutcomes``).
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
    rows: bool = False
    """The statement answered with a result set."""


@dataclass(slots=True)
class DdlOutcomes:
    """Reads the response to a (possibly multi-statement) query made of OK/ERR results and of
    the result sets account DDL may answer with (``IDENTIFIED BY RANDOM PASSWORD``: user, host,
    generated password; a successful statement's outcome).

    ``deprecate_eof``: the session negotiated ``CLIENT_DEPRECATE_EOF`` (no EOF after the column
    definitions; a result set ends with an OK packet whose header is 0xFE). ``unknown`` becomes
    True for a response of another shape: the caller then changes nothing.
    """

    deprecate_eof: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    unknown: bool = False
    done: bool = False
    _columns_left: int = -1
    """-1 between results; else column definitions still to come (0: in the rows)."""
    _eof_pending: bool = False
    """The EOF after the column definitions is still to come (no ``deprecate_eof``)."""

    def feed(self, packet: Packet) -> bool:
        """Consume one packet; True when the last result was read (no ``MORE_RESULTS_EXISTS`` flag),
        or as soon as ``unknown`` is set.
        """
        p = packet.payload
        if self.done:
            return True
        if not p:
            self.unknown = self.done = True
        elif self._columns_left > 0:
            self._columns_left -= 1
            self._eof_pending = self._columns_left == 0 and not self.deprecate_eof
        elif self._columns_left == 0:
            self._in_result(p)
        elif p[0] == ERR_HEADER:
            self.outcomes.append(Outcome(False, ErrPacket.parse(p)))
            self.done = True
        elif p[0] == OK_HEADER:
            self.outcomes.append(Outcome(True))
            self.done = not ok_status(p) & SERVER_MORE_RESULTS_EXISTS
        elif p[0] == EOF_HEADER or p[0] == 0xFB:  # not a column count (0xFB: LOCAL INFILE)
            self.unknown = self.done = True
        else:
            try:
                self._columns_left = Reader(p).lenenc_int()
            except ProtocolError:
                self.unknown = self.done = True
        return self.done

    def _in_result(self, p: bytes) -> None:
        if self._eof_pending:
            self._eof_pending = False
            if p[0] != EOF_HEADER:
                self.unknown = self.done = True
        elif p[0] == ERR_HEADER:
            self.outcomes.append(Outcome(False, ErrPacket.parse(p)))
            self.done = True
        elif p[0] == EOF_HEADER and len(p) < 0xFFFFFF:
            self.outcomes.append(Outcome(True, rows=True))
            self._columns_left = -1
            # status: after the warning count in an EOF, after two lenenc ints in an OK
            status = ok_status(p) if self.deprecate_eof else int.from_bytes(p[3:5], "little")
            self.done = not status & SERVER_MORE_RESULTS_EXISTS
