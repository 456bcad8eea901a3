"""What each fuzz target checks for one input: bytes in, ``AssertionError`` or an unexpected
exception out when the code under test misbehaves, nothing otherwise.

Shared by the atheris runners (``fuzz/fuzz_*.py``, coverage-guided, long campaigns) and the
hypothesis tests (``tests/fuzz/``, short and derandomized in CI), so both hold the code to the same
oracles. Only the project's documented rejections are clean: ``TokenFormatError`` /
a refused ``VerifyResult`` for tokens, ``ProtocolError`` for the wire machines, ``ConfigError`` for
the config loader, ``PolicyParseError`` results for policy documents; the DDL lexer and the policy
evaluator never raise.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from rdsiam_emulator.auth import sigv4
from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import TokenFormatError, parse_token
from rdsiam_emulator.auth.verifier import CheckContext, VerifyResult, run_checks, verify_token
from rdsiam_emulator.iam.evaluator import PolicyRef, Request, evaluate, statement_matches
from rdsiam_emulator.iam.policy_model import PolicyParseError, parse_policy
from rdsiam_emulator.protocols.mysql import ddl
from rdsiam_emulator.protocols.mysql import handshake as my
from rdsiam_emulator.protocols.mysql.constants import Capability
from rdsiam_emulator.protocols.mysql.messages import (
    ChangeUser,
    ErrPacket,
    Greeting,
    HandshakeResponse,
)
from rdsiam_emulator.protocols.mysql.packets import ProtocolError as MyProtocolError
from rdsiam_emulator.protocols.need_data import NEED_DATA
from rdsiam_emulator.protocols.postgres import codec as pgcodec
from rdsiam_emulator.protocols.postgres import frontend as pg
from rdsiam_emulator.server import config as server_config

__all__ = ["TARGETS", "Source", "VerifyResult"]


class Source:
    """Structured choices from fuzz bytes (what atheris's FuzzedDataProvider does, in pure Python,
    so hypothesis can drive the same checks). Reads past the end give zeros / empty values.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        """One byte 0..255 (0 when exhausted)."""
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def number(self, n: int) -> int:
        """An integer in ``0..n-1`` (``n`` at most 65536)."""
        return (self.byte() << 8 | self.byte()) % n if n > 256 else self.byte() % n

    def pick(self, options: list[Any] | tuple[Any, ...]) -> Any:
        """One of ``options``."""
        return options[self.number(len(options))]

    def flag(self) -> bool:
        """True or False."""
        return self.byte() & 1 == 1

    def blob(self, limit: int) -> bytes:
        """Up to ``limit`` bytes (length chosen by the input)."""
        n = min(self.number(limit + 1), len(self.data) - self.pos)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def text(self, limit: int) -> str:
        """Up to ``limit`` bytes decoded as UTF-8 (bad bytes replaced), as servers decode them."""
        return self.blob(limit).decode("utf-8", "replace")

    def rest(self) -> bytes:
        """Everything not consumed yet."""
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def chunks(self, data: bytes) -> list[bytes]:
        """``data`` split at input-chosen points (a network read can split anywhere)."""
        out, i = [], 0
        while i < len(data):
            step = 1 + self.number(64) if self.flag() else len(data) - i
            out.append(data[i:i + step])
            i += step
        return out


# ================================================================================== tokens

HOST = "fuzzdb.c0abcdefghij.us-east-1.rds.amazonaws.com"
PORT = 5432
REGION = "us-east-1"
SIGNED_AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NOW = SIGNED_AT + timedelta(seconds=30)
KEYS: dict[str, tuple[str, str | None]] = {
    "AKIAFUZZEXAMPLE00001": ("fuzz/secret+key=0123456789abcdefghijklm", None),
    "ASIAFUZZEXAMPLE00002": ("temp-secret-0123456789abcdefghijklmnopq",
                             "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJGMEQCIFake+Tok=="),
}
USERS = ("app_user", "App User+é", "u")
ENDPOINT = Endpoint(host=HOST, port=PORT, region=REGION)
CREDENTIALS = StaticCredentials(KEYS)


@cache
def genuine_tokens() -> tuple[str, ...]:
    """Tokens from botocore's own ``generate_db_auth_token`` (signed at ``SIGNED_AT``): the seeds
    the structured mode mutates. Built once, on first use (botocore is slow to import)."""
    import boto3

    from rdsiam_emulator.aws.clock import aws_clock
    from rdsiam_emulator.clock import ManualClock

    out = []
    with aws_clock(ManualClock(SIGNED_AT)):
        for key, (secret, session) in KEYS.items():
            client = boto3.client("rds", region_name=REGION, aws_access_key_id=key,
                                  aws_secret_access_key=secret, aws_session_token=session)
            for user in USERS:
                for host in (HOST, HOST.upper()):
                    out.append(client.generate_db_auth_token(
                        DBHostname=host, Port=PORT, DBUsername=user))
    return tuple(out)


def _meaning(token: str) -> tuple[Any, ...]:
    """What a signature vouches for: the decoded parameters and the host (case-insensitive)."""
    parsed = parse_token(token)
    return (parsed.host.lower().rstrip("."), parsed.port, tuple(sorted(parsed.params)))


@cache
def _genuine_meanings() -> dict[str, tuple[Any, ...]]:
    return {parse_token(t).signature: _meaning(t) for t in genuine_tokens()}


_MUTATION_TEXT = ("%", "%2", "%25", "&", "=", "?", "/", "+", " ", "%20", ":", ":443", "é",
                  "\0", "X-Amz-Signature=", "&X-Amz-Expires=900", "&DBUser=app_user", "0", "f",
                  "%0", "%C3", "%FF", "\ud800", "9" * 30, "A")


def _mutate(src: Source, token: str) -> str:
    for _ in range(1 + src.number(4)):
        op = src.number(7)
        at = src.number(len(token) + 1)
        if op == 0:  # insert
            token = token[:at] + src.pick(_MUTATION_TEXT) + token[at:]
        elif op == 1:  # delete a run
            token = token[:at] + token[at + 1 + src.number(8):]
        elif op == 2:  # flip case of one character
            token = token[:at] + token[at:at + 1].swapcase() + token[at + 1:]
        elif op == 3:  # reorder query items
            head, _, query = token.partition("?")
            items = query.split("&")
            i, j = src.number(len(items)), src.number(len(items))
            items[i], items[j] = items[j], items[i]
            token = head + "?" + "&".join(items)
        elif op == 4:  # duplicate a query item
            head, _, query = token.partition("?")
            items = query.split("&")
            items.insert(src.number(len(items) + 1), src.pick(items))
            token = head + "?" + "&".join(items)
        elif op == 5:  # percent-encode one character (same meaning for unreserved ones)
            ch = token[at:at + 1]
            if ch:
                token = token[:at] + "".join(f"%{b:02X}" for b in ch.encode(
                    "utf-8", "surrogatepass")) + token[at + 1:]
        else:  # replace one character with input text
            token = token[:at] + src.text(3) + token[at + 1:]
    return token


def _resigned(src: Source) -> tuple[str, str]:
    """A well-formed token for a known key, signed with a secret the input chose; and that
    secret."""
    key = src.pick(list(KEYS))
    secret = src.text(48)
    amz_date = SIGNED_AT.strftime("%Y%m%dT%H%M%SZ")
    params = [("Action", "connect"), ("DBUser", src.pick(USERS)),
              ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
              ("X-Amz-Credential", f"{key}/{amz_date[:8]}/{REGION}/rds-db/aws4_request"),
              ("X-Amz-Date", amz_date), ("X-Amz-Expires", str(src.number(1000))),
              ("X-Amz-SignedHeaders", "host")]
    session = KEYS[key][1]
    if session is not None:
        params.append(("X-Amz-Security-Token", session if src.flag() else src.text(40)))
    host_text = f"{HOST}:{PORT}"
    signature = sigv4.presign(host_text=host_text, params=params, secret=secret,
                              amz_date=amz_date, scope_date=amz_date[:8], region=REGION,
                              signed_host=host_text.lower())
    query = "&".join(f"{sigv4.uri_encode(k)}={sigv4.uri_encode(v)}"
                     for k, v in [*params, ("X-Amz-Signature", signature)])
    return f"{host_text}/?{query}", secret


def check_token(data: bytes) -> None:
    """Parser + verifier: never raises, one reason exactly when refused, the fast path and the
    ordered checks agree, and nothing is accepted unless its signature was made with the key's
    secret over the same content (no accepted forgery)."""
    src = Source(data)
    mode = src.number(3)
    forged_secret: str | None = None
    if mode == 0:
        token = src.rest().decode("utf-8", "replace")
    elif mode == 1:
        token = _mutate(src, src.pick(genuine_tokens()))
    else:
        token, forged_secret = _resigned(src)
    user = src.pick(USERS)
    result = verify_token(token, endpoint=ENDPOINT, db_user=user, credentials=CREDENTIALS,
                          now=NOW)
    assert result.ok == (result.reason is None), result
    if not result.ok:
        assert result.detail, result  # (a missing hint gets the reason's general one later)
    try:
        parsed = parse_token(token)
    except TokenFormatError as exc:
        assert not result.ok, token
        assert result.reason == exc.reason, (result.reason, exc.reason)
        return
    ordered = None
    for outcome in run_checks(CheckContext(parsed, ENDPOINT, user, CREDENTIALS, NOW),
                              stop_at_first=True):
        if outcome.rejection is not None:
            ordered = outcome.rejection.reason
            break
    assert ordered == result.reason, (token, ordered, result.reason)
    if result.ok:
        real_secret = KEYS[parsed.access_key_id][0]
        assert forged_secret is None or forged_secret == real_secret, ("forgery accepted", token)
        if forged_secret is None:
            vouched = _genuine_meanings().get(parsed.signature)
            assert vouched == _meaning(token), ("accepted a token nobody signed", token)


# ========================================================================= PostgreSQL start-up

_PG_PIECES = (
    pgcodec.ssl_request(), pgcodec.gssenc_request(), pgcodec.cancel_request(1, 2),
    pgcodec.startup_message({"user": "app_user", "database": "db"}),
    pgcodec.startup_message({"user": "u", "_pq_.x": "1"}, protocol=0x00030001),
    pgcodec.password_message("token"), pgcodec.typed(b"X"), b"\0\0\0\x08", b"\0\0\0\0",
    b"\xff\xff\xff\xff", b"user\0", b"\0",
)


def _pg_piece(src: Source) -> bytes:
    """A well-formed client message, sometimes damaged: cut short or one byte changed."""
    piece: bytes = src.pick(_PG_PIECES)
    how = src.number(4)
    if how == 1:
        piece = piece[:src.number(len(piece) + 1)]
    elif how == 2:
        at = src.number(len(piece))
        piece = piece[:at] + bytes([src.byte()]) + piece[at + 1:]
    return piece


def check_pg_frontend(data: bytes) -> None:
    """The start-up machine fed any bytes, split anywhere, in every state: only
    ``ProtocolError``, after which the machine is ``DONE``; events are well-formed."""
    src = Source(data)
    stream = b"".join(_pg_piece(src) if src.number(3) else src.blob(40)
                      for _ in range(src.number(6))) + src.rest()
    machine = pg.FrontendHandshake(max_auth_message=src.pick((64, 2048, pgcodec.MAX_AUTH_MESSAGE)))
    for chunk in src.chunks(stream) or [b""]:
        machine.receive_data(chunk)
        try:
            _drain_pg(machine, src)
        except pgcodec.ProtocolError as exc:
            assert machine.state is pg.State.DONE, (machine.state, exc)
            assert str(exc)
            return
        if machine.state is pg.State.DONE:
            return


def _drain_pg(machine: pg.FrontendHandshake, src: Source) -> None:
    while True:
        event = machine.next_event()
        if event is NEED_DATA:
            return
        if isinstance(event, pg.SSLRequested):
            if src.flag():
                machine.accept_ssl()
                machine.tls_established()
            else:
                assert machine.refuse_ssl() == b"N"
        elif isinstance(event, pg.GSSEncRequested):
            assert machine.refuse_gssenc() == b"N"
        elif isinstance(event, pg.StartupReceived):
            assert event.user, event
            assert event.raw[4:] and int.from_bytes(event.raw[:4], "big") == len(event.raw)
            machine.negotiate_protocol_version(event)
            if src.flag():
                machine.request_cleartext_password()
            else:
                machine.take_rest()
                return
        elif isinstance(event, pg.PasswordReceived):
            assert "\0" not in event.password
            machine.take_rest()
            return
        else:
            assert isinstance(event, pg.CancelRequested), event
            assert machine.state is pg.State.DONE
            return


# ============================================================================ MySQL handshakes

NONCE = bytes(range(1, 21))
_CAPS = (Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH
         | Capability.SSL | Capability.CONNECT_WITH_DB | Capability.CONNECT_ATTRS
         | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA)
GREETING = Greeting(b"8.0.36", 42, NONCE, int(_CAPS), 255, 2, "caching_sha2_password")
_CLIENT = HandshakeResponse.parse(HandshakeResponse(
    capabilities=int(_CAPS & ~Capability.SSL), max_packet=1 << 24, charset=255,
    filler=b"\0" * 23, user=b"app_user", auth_response=b"x" * 20, database=b"db",
    auth_plugin="caching_sha2_password", attributes=b"").build())


def check_mysql_handshake(data: bytes) -> None:
    """Both MySQL machines: the client-facing handshake fed any bytes in any split, and the
    backend login (password and relay mode) fed any server bytes: only ``ProtocolError``."""
    src = Source(data)
    if src.number(3) == 0:
        _mysql_backend(src)
        return
    machine = my.FrontendHandshake(GREETING, max_payload=src.pick((64, 4096,
                                                                   my.HANDSHAKE_MAX_PAYLOAD)))
    machine.start()
    for chunk in src.chunks(src.rest()) or [b""]:
        try:
            machine.receive_data(chunk)
            while True:
                event = machine.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, my.SslRequested):
                    assert machine.state is my.FrontState.AWAIT_TLS
                    machine.tls_started()
                elif isinstance(event, my.ClientHello):
                    assert machine.state is my.FrontState.DECIDING
                    assert isinstance(event.response.user_text, str)  # what the glue reads next
                    event.response.attribute_pairs()
                    if src.flag():
                        machine.request_cleartext()
                    else:
                        machine.succeed(b"\0\0\0\2\0\0\0")
                        return
                else:
                    assert isinstance(event, my.AuthData)
                    machine.send_auth(b"\x01more") if src.flag() else machine.fail(
                        ErrPacket(1045, "28000", "denied"))
                    if machine.state is my.FrontState.FAILED:
                        return
        except MyProtocolError as exc:
            assert str(exc) and isinstance(exc.code, int)
            return


def _mysql_backend(src: Source) -> None:
    password = b"derived-password" if src.flag() else None
    if src.flag():
        change = ChangeUser.parse(ChangeUser(b"app_user", b"", b"db", 255, "", b"").build(
            int(_CAPS)), int(_CAPS))
        login = my.BackendLogin.for_change_user(NONCE, change, int(_CAPS), password=password,
                                                default_plugin=src.pick(
                                                    ("mysql_native_password",
                                                     "caching_sha2_password")),
                                                client_tls=src.flag())
    else:
        login = my.BackendLogin.for_handshake(GREETING, _CLIENT, password=password,
                                              client_tls=src.flag())
    login.start()
    try:
        for chunk in src.chunks(src.rest()) or [b""]:
            login.receive_data(chunk)
            while True:
                event = login.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, my.LoginSucceeded | my.LoginFailed):
                    return
                if isinstance(event, my.ForwardToClient):
                    assert password is None
                    login.from_client(b"client answer" if src.flag() else b"\x02")
    except MyProtocolError as exc:
        assert str(exc)
    for parse in (Greeting.parse, HandshakeResponse.parse, ErrPacket.parse,
                  lambda b: ChangeUser.parse(b, int(_CAPS))):
        with contextlib.suppress(MyProtocolError):  # parsers the glue also runs on raw bytes
            parse(src.data)


# ============================================================================ MySQL DDL

_DDL_PIECES = (
    "CREATE USER ", "ALTER USER ", "DROP USER ", "RENAME USER ", "GRANT ALL ON *.* TO ",
    "SET PASSWORD FOR ", "SET PASSWORD = ", "IF NOT EXISTS ", "OR REPLACE ", "'app'@'%' ",
    "`app` ", "app ", "'a''b'@localhost ", "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
    "IDENTIFIED WITH awsauthenticationplugin ", "IDENTIFIED BY 'pw' ", "IDENTIFIED VIA ",
    "BY PASSWORD '*AB' ", ", ", "; ", " TO ", "REQUIRE SSL ", "/* c */", "-- c\n", "# c\n",
    "'", "\"", "`", "\\", "/*!80000 ", "*/", "PASSWORD('x') ", "CURRENT_USER() ", "ON ",
)


def check_mysql_ddl(data: bytes) -> None:
    """The account-DDL lexer/rewriter: never raises; edits are in order, inside the text and
    only over IAM auth clauses; ``unrewrite`` gives the client's text back; and the byte-level
    prefilters never say "no" to text the parser finds user DDL in."""
    src = Source(data)
    sql = "".join(src.pick(_DDL_PIECES) if src.number(3) else src.text(12)
                  for _ in range(src.number(24))) + src.rest().decode("utf-8", "surrogateescape")
    mariadb = src.flag()
    found = ddl.inspect(sql, lambda _account: ddl.placeholder_clause(mariadb))
    plain = ddl.inspect(sql)
    assert [s is None for s in plain.statements] == [s is None for s in found.statements]
    assert plain.rewritten is None and not plain.edits
    assert len(found.starts) == len(found.statements)
    last = 0
    for edit in found.edits:
        assert last <= edit.start < edit.end <= len(sql), edit
        assert sql[edit.start:edit.end] == edit.original
        assert "awsauthenticationplugin" in edit.original.lower(), edit
        last = edit.end
    assert (found.rewritten is not None) == bool(found.edits)
    if found.edits:
        assert found.uses_iam_plugin
        assert found.rewritten is not None
        assert found.unrewrite(found.rewritten) == sql
    if found.user_ddl:
        raw = sql.encode("utf-8", "surrogateescape")
        assert ddl.might_be_user_ddl(raw), sql
        assert not ddl.cannot_be_user_ddl(raw.lower()), sql


# ======================================================================== IAM policy evaluator

RESOURCE = "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/app_user"
_ACTIONS = ("rds-db:connect", "rds-db:*", "rds-db:Connect", "rds:*", "*", "rds-db:conn?ct",
            "s3:GetObject", "rds-db:connect*", "")
_RESOURCES = (RESOURCE, "*", "arn:aws:rds-db:*:*:dbuser:*/*", "arn:aws:rds-db:us-east-1:*:dbuser:*",
              "arn:aws:rds-db:us-east-1:123456789012:dbuser:mydb/app_user",
              "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-*/${aws:username}",
              "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/*",
              "arn:aws:rds-db:?s-east-1:123456789012:dbuser:*", "${aws:", "arn:*", "")
_OPERATORS = ("StringEquals", "StringLike", "StringNotEquals", "StringEqualsIgnoreCase",
              "IpAddress", "NotIpAddress", "DateLessThan", "DateGreaterThan", "Bool", "Null",
              "NumericLessThan", "ArnLike", "ArnEquals", "ForAnyValue:StringLike",
              "ForAllValues:StringEquals", "StringLikeIfExists", "BinaryEquals", "Bogus",
              "StringEquals ")
_KEYS = ("aws:SourceIp", "aws:CurrentTime", "aws:username", "aws:PrincipalTag/team",
         "aws:SecureTransport", "aws:userid", "aws:MultiFactorAuthPresent", "rds-db:x", "x",
         "aws:PrincipalArn", "aws:EpochTime")
_VALUES = ("127.0.0.1", "10.0.0.0/8", "::1/128", "2024-05-01T12:00:00Z", "true", "false", "1",
           "alice", "*", "a?c", "${aws:username}", "", "not an ip", "1e400", "arn:aws:iam::*")
_CONTEXT = {"aws:sourceip": ("127.0.0.1",), "aws:currenttime": ("2024-05-01T12:00:30Z",),
            "aws:username": ("alice",), "aws:securetransport": ("true",),
            "aws:principaltag/team": ("db",), "aws:epochtime": ("1714564830",)}


def _one_or_list(src: Source, options: tuple[str, ...]) -> Any:
    values = [src.pick(options) for _ in range(1 + src.number(3))]
    return values[0] if len(values) == 1 and src.flag() else values


def _statement(src: Source) -> dict[str, Any]:
    stmt: dict[str, Any] = {"Effect": src.pick(("Allow", "Deny", "Allow", "Deny", "allow", ""))}
    stmt["NotAction" if src.number(5) == 0 else "Action"] = _one_or_list(src, _ACTIONS)
    stmt["NotResource" if src.number(5) == 0 else "Resource"] = _one_or_list(src, _RESOURCES)
    if src.flag():
        stmt["Condition"] = {src.pick(_OPERATORS): {src.pick(_KEYS): _one_or_list(src, _VALUES)}
                             for _ in range(1 + src.number(2))}
    if src.number(8) == 0:
        stmt["Sid"] = src.text(8)
    if src.number(16) == 0:
        stmt[src.text(6)] = src.text(6)  # an unknown element
    return stmt


def _document(src: Source) -> str | dict[str, Any]:
    if src.number(6) == 0:
        return src.text(200)  # raw text: must parse or be a PolicyParseError
    doc: dict[str, Any] = {"Version": src.pick(("2012-10-17", "2012-10-17", "2008-10-17", "x")),
                           "Statement": [_statement(src) for _ in range(1 + src.number(3))]}
    if src.number(6) == 0:
        doc["Statement"] = doc["Statement"][0]
    return json.dumps(doc) if src.flag() else doc


_DENY_ALL = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
_ALLOW_ALL = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def check_policy(data: bytes) -> None:
    """Random documents and requests: never raises; an explicit Deny that matches wins in any
    layer; an allow needs a matching Allow in identity (and boundary/session when present); a
    Deny-all added anywhere denies; an Allow-all added to identity never undoes an explicit deny;
    the decision is deterministic."""
    src = Source(data)
    identity = [PolicyRef(f"id{i}", _document(src)) for i in range(src.number(4))]
    boundary = [PolicyRef("b", _document(src), "boundary")] if src.number(3) == 0 else None
    session = [PolicyRef("s", _document(src), "session")] if src.number(3) == 0 else None
    context = {k: v for k, v in _CONTEXT.items() if src.flag()}
    request = Request(src.pick(("rds-db:connect", "rds-db:Connect")),
                      src.pick((RESOURCE, RESOURCE.replace("app_user", "other"))), context)

    decision = evaluate(identity, request, session=session, boundary=boundary)
    assert decision.outcome in ("allow", "not_authorized", "explicit_deny")
    assert decision.detail
    assert evaluate(identity, request, session=session, boundary=boundary) == decision

    every = [*identity, *(boundary or ()), *(session or ())]
    matching_deny = matching_allow = False
    for ref in every:
        parsed = parse_policy(ref.document)
        if isinstance(parsed, PolicyParseError):
            assert parsed.message
            continue
        for stmt in parsed.statements:
            if statement_matches(stmt, parsed, request):
                if stmt.effect == "Deny":
                    matching_deny = True
                elif ref.layer == "identity":
                    matching_allow = True
    if matching_deny:
        assert decision.outcome == "explicit_deny", decision
        assert decision.deciding is not None and decision.deciding.statement.effect == "Deny"
    if decision.outcome == "allow":
        assert matching_allow and not decision.malformed, decision
    if decision.outcome == "explicit_deny":
        assert matching_deny, decision

    deny_all = PolicyRef("deny-all", _DENY_ALL)
    where = src.number(3)
    denied = evaluate(
        [*identity, deny_all] if where == 0 else identity, request,
        session=[*(session or ()), deny_all] if where == 1 else session,
        boundary=[*(boundary or ()), deny_all] if where == 2 else boundary)
    assert denied.outcome == "explicit_deny", denied
    widened = evaluate([*identity, PolicyRef("allow-all", _ALLOW_ALL)], request,
                       session=session, boundary=boundary)
    if decision.outcome == "explicit_deny":
        assert widened.outcome == "explicit_deny", widened


# ============================================================================ server config

_TOML_LINES = (
    "[server]", "[iam]", "[[instances]]", "[[iam.users]]", "[[iam.roles]]", "[[iam.policies]]",
    "[[iam.users.access_keys]]", "[[iam.groups]]", "identifier = \"db1\"",
    "engine = \"postgres\"", "engine = \"mysql\"", "listen = \"127.0.0.1:15432\"",
    "listen = \"[::1]:1\"", "port = 4566", "host = \"127.0.0.1\"", "region = \"us-east-1\"",
    "account_id = \"123456789012\"", "name = \"alice\"", "iam_db_users = [\"app_user\"]",
    "document = '{\"Version\":\"2012-10-17\",\"Statement\":[]}'", "policies = [\"p\"]",
    "access_key_id = \"AKIAFUZZEXAMPLE00001\"", "secret_access_key = \"0123456789\"",
    "backend = \"external\"", "url = \"postgresql://u:p@127.0.0.1:5432/db\"",
    "max_instances = 0", "state_dir = \"/nonexistent\"", "inline_policies = { a = \"{\" }",
    "version = 15", "iam_enabled = true", "x = " + "[" * 40 + "]" * 40,
    "dns_label = \"abc\"", "create_listen_host = \"0.0.0.0\"", "groups = [\"g\"]",
)
_ENV_NAMES = ("RDSIAM_PORT", "RDSIAM_HOST", "RDSIAM_REGION", "RDSIAM_ACCOUNT_ID",
              "RDSIAM_STATE_DIR", "RDSIAM_DNS_LABEL", "RDSIAM_MAX_INSTANCES",
              "RDSIAM_CREATE_LISTEN_HOST", "RDSIAM_OTHER")


@cache
def _config_dir() -> Path:
    shm = Path("/dev/shm")  # noqa: S108 - a private mkdtemp below it; tmpfs: opens cost µs, not ms
    path = Path(tempfile.mkdtemp(prefix="rdsiam-fuzz-config-", dir=shm if shm.is_dir() else None))
    atexit.register(shutil.rmtree, path, True)
    return path


def check_config(data: bytes) -> None:
    """``config.load`` on any file bytes and environment overrides: a ``Config`` or a one-line
    ``ConfigError`` naming a key; nothing else."""
    src = Source(data)
    if src.flag():
        body = "\n".join(src.pick(_TOML_LINES) if src.number(4) else src.text(24)
                         for _ in range(src.number(20))).encode("utf-8", "surrogateescape")
    else:
        body = b""
    body += src.blob(4096)
    environ = {src.pick(_ENV_NAMES): src.text(12) for _ in range(src.number(3))}
    path = _config_dir() / f"c{os.getpid()}.toml"
    path.write_bytes(body + src.rest())
    try:
        loaded = server_config.load(path, environ)
    except server_config.ConfigError as exc:
        assert exc.key and exc.problem, exc
        assert str(exc) == f"{exc.key}: {exc.problem}"

        return
    assert isinstance(loaded, server_config.Config)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "token": check_token,
    "pg_handshake": check_pg_frontend,
    "mysql_handshake": check_mysql_handshake,
    "mysql_ddl": check_mysql_ddl,
    "policy": check_policy,
    "config": check_config,
}
"""Every target by the name its runner (``fuzz/fuzz_<name>.py``) and the tests use."""
