"""Finding and rewriting the RDS IAM user DDL in a COM_QUERY text.

RDS enables IAM for a MySQL user with ``CREATE USER 'u'@'%' IDENTIFIED WITH AWSAuthenticationPlugin
AS 'RDS'`` (or ``ALTER USER``, or MariaDB's ``GRANT ... IDENTIFIED``). The real backend has no such
plugin, so the endpoint rewrites each such auth clause into a placeholder clause it chooses (never
anything derived from the instance secret: the rewritten text may be echoed by the server) and
reports which accounts became (or stopped being) IAM users so the emulator's catalog can follow.
``DROP USER``, ``RENAME USER`` and password changes (``ALTER``/``CREATE ... IDENTIFIED BY``, ``GRANT
... IDENTIFIED BY``, ``SET PASSWORD``) are reported too, so such a user stops being treated as IAM.

A small tokenizer (quotes, backticks, comments) does the work, so DDL-looking text inside string
literals is never touched. Anything the parser does not understand is passed through unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import Enum

IAM_PLUGIN = "awsauthenticationplugin"

Rewrite = Callable[["Account"], str]
"""``(account) -> auth clause`` put in place of an IAM auth clause, e.g. ``IDENTIFIED BY '...'``."""

_PREFILTER = re.compile(
    rb"(?i)(?:(?:create|alter|drop|rename)\b[\s\S]{0,40}?\buser\b"
    rb"|grant\b[\s\S]*?\bidentified\b|set\s+password\b)"
)
"""Cheap test on raw query bytes; only matches go through the tokenizer. No word boundary
before the keyword: query attributes (any bytes, e.g. a value ``1``) may come right before
the query text."""

def cannot_be_user_ddl(lowered: bytes) -> bool:
    """Fast negative test on a lower-cased query: none of the words every statement the
    prefilter matches contains (spelled out: this runs for every small query)."""
    return b"user" not in lowered and b"password" not in lowered and b"identified" not in lowered

MAX_INSPECTED_QUERY = 1024 * 1024
"""DDL is short; larger COM_QUERY packets (bulk inserts) are relayed without inspection."""


def might_be_user_ddl(query: bytes) -> bool:
    """True when the raw query (at most ``MAX_INSPECTED_QUERY`` bytes) may hold user DDL and must go
    through ``inspect``; False is certain.
    """
    return len(query) <= MAX_INSPECTED_QUERY and _PREFILTER.search(query) is not None


class Kind(Enum):
    """Token kinds of the small MySQL lexer."""
    WORD = "word"
    STRING = "string"
    QIDENT = "qident"
    PUNCT = "punct"


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token with its ``start``/``end`` offsets (characters) in the SQL text."""
    kind: Kind
    text: str
    """Words as written; strings and quoted identifiers unescaped."""
    start: int
    end: int

    @property
    def word(self) -> str:
        """Lower-cased text of an unquoted word ('' for anything else): for keyword matching."""
        return self.text.lower() if self.kind is Kind.WORD else ""


_WORD = re.compile(r"[A-Za-z0-9_$.\x80-\U0010ffff%]+")


@dataclass(frozen=True, slots=True)
class Dialect:
    """Which executable comments the server runs: ``/*!NNNNN ... */`` when ``version`` (e.g.
    80036 for 8.0.36) is at least NNNNN, or always without a version; ``/*M!...*/`` on MariaDB
    only. The default runs every ``/*!...*/`` and no ``/*M!...*/``."""

    version: int = 999999
    mariadb: bool = False


def server_dialect(server_version: bytes) -> Dialect:
    """The dialect of a server from its greeting's version string (``8.0.36``, MariaDB's
    ``5.5.5-10.11.6-MariaDB-...``); the default when the version does not parse."""
    text = server_version.decode("ascii", "replace")
    mariadb = "mariadb" in text.lower()
    if mariadb:
        text = text.removeprefix("5.5.5-")
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    if m is None:
        return Dialect(mariadb=mariadb)
    major, minor, patch = (int(g) for g in m.groups())
    return Dialect(major * 10000 + minor * 100 + patch, mariadb)


_EXEC_COMMENT = re.compile(r"/\*(M?)!(\d{5,6})?")


def _exec_comment(sql: str, i: int, dialect: Dialect) -> int:
    """The end of an executable comment's opener at ``i`` when the server runs its content as
    code; -1 for a plain comment."""
    m = _EXEC_COMMENT.match(sql, i)
    if m is None or (m.group(1) and not dialect.mariadb):
        return -1
    if m.group(2) is not None and int(m.group(2)) > dialect.version:
        return -1
    return m.end()


def tokenize(sql: str, dialect: Dialect | None = None) -> list[Token]:
    """Split MySQL text into tokens (comments and whitespace dropped; the content of the
    executable comments ``dialect`` runs is code). Lenient: an unterminated string or quoted
    identifier runs to the end of the text.
    """
    dialect = dialect or Dialect()
    tokens: list[Token] = []
    i, n = 0, len(sql)
    in_code_comment = False
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif in_code_comment and sql.startswith("*/", i):
            in_code_comment = False
            i += 2
        elif not in_code_comment and sql.startswith("/*", i) and (
                (opened := _exec_comment(sql, i, dialect)) >= 0):
            in_code_comment = True
            i = opened
        elif ch == "#" or sql.startswith("-- ", i) or sql.startswith("--\t", i) or (
            sql.startswith("--", i) and i + 2 == n
        ):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch in "'\"`":
            j, buf = i + 1, []
            while j < n:
                c = sql[j]
                if c == "\\" and ch != "`" and j + 1 < n:
                    buf.append(_unescape(sql[j + 1]))
                    j += 2
                elif c == ch:
                    if j + 1 < n and sql[j + 1] == ch:
                        buf.append(ch)
                        j += 2
                    else:
                        break
                else:
                    buf.append(c)
                    j += 1
            kind = Kind.QIDENT if ch == "`" else Kind.STRING
            tokens.append(Token(kind, "".join(buf), i, min(j + 1, n)))
            i = j + 1
        else:
            m = _WORD.match(sql, i)
            if m:
                tokens.append(Token(Kind.WORD, m.group(), i, m.end()))
                i = m.end()
            else:
                tokens.append(Token(Kind.PUNCT, ch, i, i + 1))
                i += 1
    return tokens


def _unescape(c: str) -> str:
    return {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "Z": "\x1a", "b": "\b"}.get(c, c)


class Op(Enum):
    """The kind of account statement."""
    CREATE = "create"
    ALTER = "alter"
    DROP = "drop"
    RENAME = "rename"
    GRANT = "grant"
    SET_PASSWORD = "set password"


@dataclass(frozen=True, slots=True)
class Account:
    """A MySQL account ``'user'@'host'`` (host ``%`` when not given)."""
    user: str
    host: str = "%"

    def sql(self) -> str:
        """The account as SQL text: ``'user'@'host'`` with both parts quoted."""
        return f"{quote(self.user)}@{quote(self.host)}"


@dataclass(frozen=True, slots=True)
class UserChange:
    """What one account clause does to IAM-ness: True = becomes IAM, False = stops, None = same."""

    account: Account
    iam: bool | None
    renamed_to: Account | None = None


@dataclass(slots=True)
class Statement:
    """One account statement (``CREATE``/``ALTER``/``DROP``/``RENAME USER``, ``GRANT … IDENTIFIED``,
    ``SET PASSWORD``) and what it does to each account's IAM-ness.
    """
    op: Op
    if_not_exists: bool = False
    or_replace: bool = False
    changes: list[UserChange] = field(default_factory=list)
    current_user: bool = False
    """``SET PASSWORD = ...`` without ``FOR``, ``ALTER USER CURRENT_USER()/USER() IDENTIFIED BY``:
    the session's own account becomes a password account."""
    current_user_iam: bool = False
    """``ALTER USER CURRENT_USER() IDENTIFIED WITH AWSAuthenticationPlugin``: the session's own
    account becomes an IAM account."""
    require_ssl: bool | None = None
    """``CREATE``/``ALTER USER``: True for exactly ``REQUIRE SSL``, False for ``REQUIRE NONE``,
    None without a ``REQUIRE`` clause or with other TLS options (``X509``, ``ISSUER``, ...)."""
    require_span: tuple[int, int] | None = None
    """Where the ``REQUIRE SSL`` clause is (character offsets), when ``require_ssl`` is True."""

    @property
    def uses_iam_plugin(self) -> bool:
        """True when some account becomes ``IDENTIFIED WITH AWSAuthenticationPlugin``. See
        https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.DBAccounts.html
        """
        return any(c.iam for c in self.changes)


@dataclass(frozen=True, slots=True)
class Edit:
    """One rewritten auth clause: ``original`` (sql[start:end]) became ``replacement``."""

    start: int
    end: int
    original: str
    replacement: str


@dataclass(slots=True)
class Inspection:
    """The statements of one query (in order) and, if needed, the rewritten text."""

    statements: list[Statement | None]
    """One entry per statement in the query; None for statements that are not user DDL."""
    rewritten: str | None = None
    starts: list[int] = field(default_factory=list)
    """Per statement: its offset in the original text (just after the previous ``;``)."""
    edits: list[Edit] = field(default_factory=list)

    def unrewrite(self, text: str) -> str:
        """``text`` (e.g. a server message) with every replacement clause put back as written."""
        for edit in self.edits:
            text = text.replace(edit.replacement, edit.original)
        return text

    @property
    def user_ddl(self) -> list[Statement]:
        """The statements that are user DDL, in order."""
        return [s for s in self.statements if s is not None]

    @property
    def uses_iam_plugin(self) -> bool:
        """True when any statement makes an account an IAM user."""
        return any(s.uses_iam_plugin for s in self.user_ddl)


def quote(text: str) -> str:
    """``text`` as a single-quoted MySQL string literal (backslashes and quotes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


_END_OF_SPEC = frozenset({
    "require", "with", "password", "account", "comment", "attribute", "default",
    "failed_login_attempts", "password_lock_time", "resource", "max_queries_per_hour",
})


REQUIRE_NONE = "REQUIRE NONE"


def inspect(sql: str, rewrite: Rewrite | None = None,
            tls_off: Collection[int] = (), dialect: Dialect | None = None) -> Inspection:
    """Parse ``sql``; with ``rewrite`` set, put ``rewrite(account)`` for every IAM auth clause.

    ``tls_off``: indexes of statements whose ``REQUIRE SSL`` (``Statement.require_span``) the
    server gets as ``REQUIRE NONE`` (IAM accounts: the endpoint enforces TLS itself).
    ``dialect``: the server's (executable comments; both flavours lower-case host parts).
    """
    lower_hosts = dialect is not None
    tokens = tokenize(sql, dialect)
    statements: list[Statement | None] = []
    edits: list[tuple[int, int, str]] = []
    chunks, starts = _split(tokens)
    for index, chunk in enumerate(chunks):
        stmt = _parse_statement(chunk, rewrite, edits)
        if stmt is not None and lower_hosts:
            stmt.changes = [_lower_host(c) for c in stmt.changes]
        statements.append(stmt)
        if index in tls_off and stmt is not None and stmt.require_span is not None:
            edits.append((*stmt.require_span, REQUIRE_NONE))
    rewritten = None
    done: list[Edit] = []
    if edits:
        out, last = [], 0
        for start, end, text in sorted(edits):
            out.append(sql[last:start])
            out.append(text)
            done.append(Edit(start, end, sql[start:end], text))
            last = end
        out.append(sql[last:])
        rewritten = "".join(out)
    return Inspection(statements, rewritten, starts, done)


def _lower_host(change: UserChange) -> UserChange:
    """The server stores (and matches) host parts in lower case: the catalog follows."""
    def low(acc: Account) -> Account:
        return Account(acc.user, acc.host.lower())
    return UserChange(low(change.account), change.iam,
                      None if change.renamed_to is None else low(change.renamed_to))


def _split(tokens: list[Token]) -> tuple[list[list[Token]], list[int]]:
    chunks: list[list[Token]] = [[]]
    starts = [0]
    for tok in tokens:
        if tok.kind is Kind.PUNCT and tok.text == ";":
            chunks.append([])
            starts.append(tok.end)
        else:
            chunks[-1].append(tok)
    if not chunks[-1] and len(chunks) > 1:
        chunks.pop()
        starts.pop()
    return chunks, starts


def _is_word(tok: Token | None, *words: str) -> bool:
    return tok is not None and tok.word in words


class _Cursor:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> Token | None:
        tok = self.peek()
        self.i += 1
        return tok

    def accept(self, *words: str) -> bool:
        if _is_word(self.peek(), *words):
            self.i += 1
            return True
        return False

    def accept_seq(self, *words: str) -> bool:
        for k, word in enumerate(words):
            if not _is_word(self.peek(k), word):
                return False
        self.i += len(words)
        return True

    def punct(self, ch: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind is Kind.PUNCT and tok.text == ch:
            self.i += 1
            return True
        return False


def _parse_statement(
    tokens: list[Token], rewrite: Rewrite | None, edits: list[tuple[int, int, str]]
) -> Statement | None:
    cur = _Cursor(tokens)
    first = cur.next()
    if first is None or first.kind is not Kind.WORD:
        return None
    if first.word == "grant":
        return _parse_grant(cur, rewrite, edits)
    if first.word == "set" and cur.accept("password"):
        return _parse_set_password(cur)
    try:
        op = Op(first.word)
    except ValueError:
        return None
    stmt = Statement(op)
    if op is Op.CREATE and cur.accept_seq("or", "replace"):
        stmt.or_replace = True
    if not cur.accept("user"):
        return None
    if op is Op.CREATE and cur.accept_seq("if", "not", "exists"):
        stmt.if_not_exists = True
    elif op in (Op.ALTER, Op.DROP) and cur.accept_seq("if", "exists"):
        pass
    while True:
        if op is Op.ALTER and _own_account(cur):
            # the session's own account (ALTER USER USER()/CURRENT_USER[()] IDENTIFIED ...)
            iam = _auth_clause(cur, Account(""), op, rewrite, edits)
            stmt.current_user |= iam is False
            stmt.current_user_iam |= iam is True
            if not cur.punct(","):
                _require_clause(cur, stmt)
                return stmt
            continue
        account = _account(cur)
        if account is None:
            return stmt if stmt.changes or stmt.current_user or stmt.current_user_iam else None
        if op is Op.RENAME:
            if not cur.accept("to"):
                return None
            target = _account(cur)
            if target is None:
                return None
            stmt.changes.append(UserChange(account, None, target))
        elif op is Op.DROP:
            stmt.changes.append(UserChange(account, False))
        else:
            stmt.changes.append(UserChange(account, _auth_clause(cur, account, op, rewrite, edits)))
        if not cur.punct(","):
            if op in (Op.CREATE, Op.ALTER):
                _require_clause(cur, stmt)
            return stmt


_TLS_OPTIONS = frozenset({"ssl", "x509", "issuer", "subject", "cipher", "and"})


def _require_clause(cur: _Cursor, stmt: Statement) -> None:
    """Find the statement's ``REQUIRE`` clause (after the accounts, before ``WITH`` and the
    password options) and note whether it is exactly ``SSL`` or ``NONE``."""
    while (tok := cur.next()) is not None:
        if tok.word != "require":
            continue
        what = cur.next()
        if what is None:
            return
        after = cur.peek()
        if what.word == "none":
            stmt.require_ssl = False
        elif what.word == "ssl" and (after is None or (
                after.kind is Kind.WORD and after.word not in _TLS_OPTIONS)):
            stmt.require_ssl = True
            stmt.require_span = (tok.start, what.end)
        return


def _parse_grant(
    cur: _Cursor, rewrite: Rewrite | None, edits: list[tuple[int, int, str]]
) -> Statement | None:
    """``GRANT <privileges|roles> [ON ...] TO account [IDENTIFIED ...], ...``: only accounts with
    an auth clause change (MariaDB makes them password accounts, or IAM ones with our plugin)."""
    depth = 0
    while True:  # skip to the top-level TO (column lists may hold anything in parentheses)
        tok = cur.next()
        if tok is None:
            return None
        if tok.kind is Kind.PUNCT and tok.text in "()":
            depth += 1 if tok.text == "(" else -1
        elif depth == 0 and tok.word == "to":
            break
    stmt = Statement(Op.GRANT)
    while True:
        account = _account(cur)
        if account is None:
            break
        iam = _auth_clause(cur, account, Op.GRANT, rewrite, edits)
        if iam is not None:
            stmt.changes.append(UserChange(account, iam))
        if not cur.punct(","):
            break
    return stmt if stmt.changes else None


def _parse_set_password(cur: _Cursor) -> Statement | None:
    """``SET PASSWORD [FOR account] = ...``: the account becomes a password account."""
    stmt = Statement(Op.SET_PASSWORD)
    if cur.accept("for"):
        account = _account(cur)
        if account is None:
            # FOR CURRENT_USER[()]: the session's own account
            stmt.current_user = True
        else:
            stmt.changes.append(UserChange(account, False))
    else:
        stmt.current_user = True
    # ... = 'pw' / = PASSWORD('pw'), or MySQL 8's ... TO RANDOM
    return stmt if cur.punct("=") or cur.accept("to") else None


def _own_account(cur: _Cursor) -> bool:
    """Consume ``CURRENT_USER``, ``CURRENT_USER()`` or ``USER()`` (the session's own account)."""
    tok, after = cur.peek(), cur.peek(1)
    paren = after is not None and after.kind is Kind.PUNCT and after.text == "("
    if _is_word(tok, "current_user") or (_is_word(tok, "user") and paren):
        cur.next()
        if paren:
            cur.next()
            cur.punct(")")
        return True
    return False


def _account(cur: _Cursor) -> Account | None:
    tok = cur.peek()
    if tok is None or tok.kind is Kind.PUNCT:
        return None
    if tok.word in _END_OF_SPEC or tok.word in ("identified", "to"):
        return None
    cur.next()
    user, host = tok.text, "%"
    if tok.word == "current_user":
        if cur.punct("("):
            cur.punct(")")
        return None
    if cur.punct("@"):
        htok = cur.next()
        if htok is None:
            return None
        host = htok.text
    return Account(user, host)


def _auth_clause(
    cur: _Cursor,
    account: Account,
    op: Op,
    rewrite: Rewrite | None,
    edits: list[tuple[int, int, str]],
) -> bool | None:
    start_tok = cur.peek()
    if not cur.accept("identified"):
        # CREATE without an auth clause makes a user with no password (not IAM); ALTER/GRANT
        # keep it.
        return False if op is Op.CREATE else None
    assert start_tok is not None
    end = start_tok.end
    if cur.accept("with", "via"):
        plugin_tok = cur.next()
        if plugin_tok is None:
            return None
        end = plugin_tok.end
        if plugin_tok.kind is Kind.PUNCT or plugin_tok.text.lower() != IAM_PLUGIN:
            _skip_auth_value(cur)
            return False
        if cur.accept("as", "using", "by"):
            value = cur.next()
            if value is not None:
                end = value.end
        if rewrite is not None:
            edits.append((start_tok.start, end, rewrite(account)))
        return True
    _skip_auth_value(cur)
    return False


def _skip_auth_value(cur: _Cursor) -> None:
    cur.accept("by", "as", "using")
    cur.accept("password", "random")  # BY PASSWORD '<hash>' (MariaDB), BY RANDOM PASSWORD
    cur.accept("password")
    tok = cur.peek()
    if tok is not None and tok.kind is Kind.STRING:
        cur.next()
    while cur.accept("or"):  # MariaDB: IDENTIFIED VIA a USING 'x' OR b ...
        cur.next()
        if cur.accept("using", "as", "by"):
            cur.next()


_FAILED_ACCOUNT = re.compile(r"'((?:[^'\\]|\\.|'')*)'@'((?:[^'\\]|\\.|'')*)'")


def failed_accounts(message: str) -> set[Account]:
    """Accounts named in an ER_CANNOT_USER (1396) message: 'Operation X failed for 'a'@'%',...'."""
    return {Account(u.replace("''", "'"), h.replace("''", "'"))
            for u, h in _FAILED_ACCOUNT.findall(message)}


def native_password_hash(password: str) -> str:
    """The ``mysql_native_password`` stored form (``*`` + 40 hex digits) of ``password``: it
    cannot be used to log in, so SQL that carries it reveals no credential."""
    stage1 = hashlib.sha1(password.encode("utf-8")).digest()  # noqa: S324 - the format's hash
    return "*" + hashlib.sha1(stage1).hexdigest().upper()  # noqa: S324


def placeholder_clause(mariadb: bool) -> str:
    """An auth clause nobody can log in with, fresh for each use: what an IAM clause becomes in
    the statement the server runs (and may echo back) until the endpoint sets the real password.
    MariaDB takes a random stored hash; MySQL (no ``BY PASSWORD``) a random password, with an
    upper-case letter, a digit and a special character so that validate_password accepts it."""
    if mariadb:
        return f"IDENTIFIED BY PASSWORD '*{os.urandom(20).hex().upper()}'"
    return f"IDENTIFIED BY '{os.urandom(24).hex()}Z9-'"


def set_password_sql(account: Account, password: str, mariadb: bool) -> str:
    """``ALTER USER`` giving ``account`` ``password``; on MariaDB only its stored hash is sent, so
    neither the server's process list nor its logs ever hold the password itself."""
    if mariadb:
        stored = quote(native_password_hash(password))
        return f"ALTER USER {account.sql()} IDENTIFIED BY PASSWORD {stored}"
    return f"ALTER USER {account.sql()} IDENTIFIED BY {quote(password)}"
