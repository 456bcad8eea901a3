"""``SHOW CREATE USER`` answered as RDS answers it for IAM accounts (sans-I/O).

The server knows an IAM account only by the derived password the endpoint gave it, so its own
answer names that password's plugin and hash. RDS MySQL 8.4 answers
``CREATE USER `u`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' REQUIRE ...``
(docs/mysql.md): the endpoint reads the whole result set (``ResultSetReader``), finds the account
in each row's text (``account_in``) and, for IAM accounts, swaps the authentication clause
(``rds_form``), keeping every other clause as the server printed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rdsiam_emulator.protocols.mysql.constants import EOF_HEADER, ERR_HEADER, OK_HEADER
from rdsiam_emulator.protocols.mysql.ddl import Account, Dialect, Kind, tokenize
from rdsiam_emulator.protocols.mysql.packets import Packet, ProtocolError, Reader, encode_packet

MYSQL_IAM_CLAUSE = b"IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS'"
"""RDS MySQL 8.4's clause, the plugin name quoted (docs/mysql.md, SHOW CREATE USER)."""
MARIADB_IAM_CLAUSE = b"IDENTIFIED VIA AWSAuthenticationPlugin USING 'RDS'"
"""MariaDB prints a plugin account as ``IDENTIFIED VIA <plugin> USING '<string>'``."""

_MARIADB_HASH = re.compile(rb"IDENTIFIED BY PASSWORD '\*[0-9A-F]{40}'")
_BACKQUOTED = re.compile(rb"`((?:[^`]|``)*)`")


def is_show_create_user(sql: str, dialect: Dialect | None = None) -> bool:
    """True for exactly one ``SHOW CREATE USER ...`` statement (a trailing ``;`` allowed);
    multi-statement text is never rewritten."""
    tokens = tokenize(sql, dialect)
    words = [t.word for t in tokens[:3]]
    if words != ["show", "create", "user"]:
        return False
    semis = [i for i, t in enumerate(tokens) if t.kind is Kind.PUNCT and t.text == ";"]
    return not semis or semis == [len(tokens) - 1]


def account_in(text: bytes) -> Account | None:
    """The account of a ``CREATE USER `u`@`h` ...`` text as both servers print it; None when
    the text has another shape."""
    found = _account_and_end(text)
    return None if found is None else found[0]


def _account_and_end(text: bytes) -> tuple[Account, int] | None:
    """The account of a ``CREATE USER `u`@`h` ...`` text and the offset just after it."""
    if not text.startswith(b"CREATE USER `"):
        return None
    user = _BACKQUOTED.match(text, len(b"CREATE USER "))
    if user is None or text[user.end():user.end() + 2] != b"@`":
        return None
    host = _BACKQUOTED.match(text, user.end() + 1)
    if host is None:
        return None
    return Account(_unquote(user), _unquote(host)), host.end()


def _unquote(m: re.Match[bytes]) -> str:
    return m.group(1).replace(b"``", b"`").decode("utf-8", "replace")


def rds_form(text: bytes, *, mariadb: bool, tls_required: bool = False) -> bytes | None:
    """``text`` with the derived password's authentication clause replaced by the IAM one;
    None when the clause is not where the server puts it.

    ``tls_required``: the account was given ``REQUIRE SSL``, which the server holds as
    ``REQUIRE NONE`` (MySQL prints that; MariaDB prints nothing): shown as ``REQUIRE SSL``.

    MySQL prints ``IDENTIFIED WITH '<plugin>' AS <hash>`` right after the account and follows
    it with ``DEFAULT ROLE ...`` (when the account has default roles) and always ``REQUIRE``;
    the hash (random salt, base64-like digest) is not parsed: the clause ends at the first
    `` DEFAULT ROLE `` or `` REQUIRE `` after it. MariaDB prints ``IDENTIFIED BY PASSWORD
    '*<40 hex>'`` for the derived password's stored hash. Both are looked for after the
    account (whose name may hold anything).
    """
    found = _account_and_end(text)
    if found is None:
        return None
    after_account = found[1]
    if mariadb:
        m = _MARIADB_HASH.search(text, after_account)
        if m is None:
            return None
        tls = b" REQUIRE SSL" if tls_required and not text[m.end():].startswith(b" REQUIRE ") \
            else b""
        return text[:m.start()] + MARIADB_IAM_CLAUSE + tls + text[m.end():]
    if not text.startswith(b" IDENTIFIED WITH '", after_account):
        return None
    start = after_account
    end = text.find(b" REQUIRE ", start)
    if end < 0:
        return None
    roles = text.find(b" DEFAULT ROLE `", start, end)
    if roles >= 0:  # the role names may hold anything too: read them
        end = _roles_end(text, roles + len(b" DEFAULT ROLE "))
        if end < 0 or not text.startswith(b" REQUIRE ", end):
            return None
    rest = text[end:]
    if tls_required and rest.startswith(b" REQUIRE NONE"):
        rest = b" REQUIRE SSL" + rest[len(b" REQUIRE NONE"):]
    return text[:start + 1] + MYSQL_IAM_CLAUSE + (text[roles:end] if roles >= 0 else b"") + rest


def _roles_end(text: bytes, pos: int) -> int:
    """The end of a ```r`@`h`,`r2`@`h2``` list at ``pos``; -1 when it is not one."""
    while True:
        role = _BACKQUOTED.match(text, pos)
        if role is None or text[role.end():role.end() + 2] != b"@`":
            return -1
        host = _BACKQUOTED.match(text, role.end() + 1)
        if host is None:
            return -1
        pos = host.end()
        if text[pos:pos + 1] != b",":
            return pos
        pos += 2 if text[pos + 1:pos + 2] == b" " else 1


@dataclass(slots=True)
class ResultSetReader:
    """Collects one single-result text response (OK, ERR, or a result set) packet by packet.

    ``deprecate_eof``: the session negotiated ``CLIENT_DEPRECATE_EOF`` (no EOF after the column
    definitions; the set ends with an OK packet whose header is 0xFE). ``rows`` holds the
    indexes (into ``packets``) of the row packets.
    """

    deprecate_eof: bool
    packets: list[Packet] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    done: bool = False
    _columns_left: int = -1
    _in_rows: bool = False

    def feed(self, packet: Packet) -> bool:
        """Consume one packet; True once the response is complete. Raises ``ProtocolError``
        for an empty packet."""
        p = packet.payload
        if not p:
            raise ProtocolError("empty packet in a result")
        self.packets.append(packet)
        if self._columns_left < 0:  # the first packet
            if p[0] in (OK_HEADER, ERR_HEADER):
                self.done = True
            else:
                self._columns_left = Reader(p).lenenc_int()
        elif self._columns_left > 0:
            self._columns_left -= 1
            if self._columns_left == 0 and self.deprecate_eof:
                self._in_rows = True
        elif not self._in_rows:  # the EOF after the column definitions
            self._in_rows = True
        elif p[0] == ERR_HEADER or (p[0] == EOF_HEADER and len(p) < 0xFFFFFF):
            self.done = True
        else:
            self.rows.append(len(self.packets) - 1)
        return self.done

    def encode(self) -> bytes:
        """The packets, as the wire had them (each with its own sequence id)."""
        return b"".join(encode_packet(p.seq, p.payload) for p in self.packets)


def single_text_value(payload: bytes) -> bytes | None:
    """The one column of a text-protocol row (None for NULL). Raises ``ProtocolError`` when the
    row is not exactly one value."""
    r = Reader(payload)
    if payload[:1] == b"\xfb":
        r.take(1)
        value = None
    else:
        value = r.lenenc_bytes()
    if r.pos != len(payload):
        raise ProtocolError("a SHOW CREATE USER row with more than one column")
    return value
