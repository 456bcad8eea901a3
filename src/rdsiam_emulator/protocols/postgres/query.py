"""A minimal simple-query client (sans-I/O) for the endpoint's own admin connection.

The endpoint asks the real server a few questions (is this role a member of ``rds_iam``?) and sets
derived passwords; it needs text results of the simple query protocol, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.protocols.postgres.codec import ProtocolError

MAX_RESULT_MESSAGE = 1024 * 1024


def quote_literal(text: str) -> str:
    """A standard-conforming SQL string literal (the server runs standard_conforming_strings=on)."""
    if "\0" in text:
        raise ValueError("NUL in SQL literal")
    return "'" + text.replace("'", "''") + "'"


def is_iam_user_sql(user: str) -> str:
    """The one "is this an IAM user?" rule, as a query answering one boolean row.

    As on RDS: a role is an IAM user when it is a member of ``rds_iam``, directly or through other
    roles (superuser or not: membership decides, as it does for the RDS master user). Not
    ``pg_has_role`` (true for every superuser). A PostgreSQL 16+ grant with INHERIT FALSE and SET
    FALSE (the master's ADMIN OPTION, to administer ``rds_iam``) is not membership; the options
    are read through ``to_jsonb`` so the same text runs on 15, which has no such columns.
    Raises ``ValueError`` for a NUL in ``user``.
    """
    grant = ("COALESCE((to_jsonb(a) ->> 'inherit_option')::bool"
             " OR (to_jsonb(a) ->> 'set_option')::bool, true)")
    return (
        "WITH RECURSIVE m(roleid) AS ("  # noqa: S608 - the value is quote_literal()ed
        " SELECT a.roleid FROM pg_auth_members a JOIN pg_roles r ON a.member = r.oid"
        f" WHERE r.rolname = {quote_literal(user)} AND {grant}"
        " UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.roleid"
        f" WHERE {grant})"
        " SELECT EXISTS (SELECT 1 FROM m JOIN pg_roles g ON g.oid = m.roleid"
        " WHERE g.rolname = 'rds_iam')"
    )


def quote_ident(text: str) -> str:
    """``text`` as a double-quoted SQL identifier (quotes doubled). Raises ``ValueError`` on NUL."""
    if "\0" in text:
        raise ValueError("NUL in SQL identifier")
    return '"' + text.replace('"', '""') + '"'


def query_message(sql: str) -> bytes:
    """A simple Query message (``Q``) for ``sql``."""
    return codec.typed(b"Q", codec.cstr(sql))


@dataclass(slots=True)
class QueryResult:
    """One simple query's outcome: data rows as text (None for SQL NULL), the ErrorResponse fields
    if it failed, and the command tags in order.
    """
    rows: list[list[str | None]] = field(default_factory=list)
    error: dict[str, str] | None = None
    command_tags: list[str] = field(default_factory=list)


class SimpleQuery:
    """Collects one simple query's results; ``receive_data`` returns the result at ReadyForQuery."""

    def __init__(self) -> None:
        self._reader = codec.MessageReader(MAX_RESULT_MESSAGE)
        self._result = QueryResult()

    def receive_data(self, data: bytes) -> QueryResult | None:
        """Feed server bytes; returns the result at ReadyForQuery, else None. Raises
        ``ProtocolError`` for a malformed message.
        """
        self._reader.feed(data)
        while True:
            msg = self._reader.next_message()
            if msg is None:
                return None
            if msg.type == b"D":
                self._result.rows.append(_data_row(msg.body))
            elif msg.type == b"E":
                self._result.error = codec.parse_fields(msg.body)
            elif msg.type == b"C":
                self._result.command_tags.append(codec.split_cstrings(msg.body)[0])
            elif msg.type == b"Z":
                return self._result


def _data_row(body: bytes) -> list[str | None]:
    if len(body) < 2:
        raise ProtocolError("short DataRow")
    count = int.from_bytes(body[:2], "big")
    pos = 2
    values: list[str | None] = []
    for _ in range(count):
        length = codec.parse_int32(body, pos)
        pos += 4
        if length < 0:
            values.append(None)
            continue
        values.append(body[pos : pos + length].decode("utf-8", "replace"))
        pos += length
    return values
