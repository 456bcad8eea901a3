"""Commands the MySQL endpoint runs itself during a relayed session.

* user DDL (COM_QUERY): the RDS ``IDENTIFIED WITH AWSAuthenticationPlugin`` clauses are rewritten to
  the derived password (``protocols.mysql.ddl``) and, once the server has answered, the IAM-user
  catalog follows (create/alter/drop/rename);
* COM_CHANGE_USER: to an IAM user it needs a valid token (it must not bypass IAM); to anyone else
  the password exchange is relayed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Protocol

from rdsiam_emulator.auth.authenticator import ClientInfo, IamAuthenticator
from rdsiam_emulator.auth.login import AskToken, LogIn, LoginFacts, LoginStep, Refuse, RelayPassword
from rdsiam_emulator.auth.proxy import ProxyDoor
from rdsiam_emulator.endpoint.mysql_admin import AdminClient
from rdsiam_emulator.endpoint.mysql_relay import (
    NOT_IAM_USER_HINT,
    BackendSide,
    ClientSide,
    cleartext_password,
    drive_own_login,
    looks_like_token,
    next_client_auth,
    refusal_packet,
    relay_login_outcome,
)
from rdsiam_emulator.events import TEXT_CAP, clip
from rdsiam_emulator.protocols.mysql import ddl, show_create
from rdsiam_emulator.protocols.mysql.constants import CLEAR_PASSWORD, Capability, ErrorCode
from rdsiam_emulator.protocols.mysql.framing import Intercept
from rdsiam_emulator.protocols.mysql.handshake import (
    BackendLogin,
    FrontendHandshake,
    LoginSucceeded,
)
from rdsiam_emulator.protocols.mysql.messages import (
    ChangeUser,
    ErrPacket,
    Greeting,
    access_denied,
    split_query,
)
from rdsiam_emulator.protocols.mysql.packets import (
    Packet,
    PacketDecoder,
    ProtocolError,
    encode_packet,
    lenenc_bytes,
)
from rdsiam_emulator.protocols.mysql.results import DdlOutcomes, QueryError
from rdsiam_emulator.reasons import Reason
from rdsiam_emulator.secrets import derived_password

log = logging.getLogger(__name__)

ER_PARSE_ERROR = 1064
ER_CANNOT_USER = 1396
_REPLAY_NAME = "`rdsiam_emulator replay`"
"""Named so that it cannot clash with a client's prepared statement (a failed PREPARE drops any
statement of the same name)."""


def _is_mariadb(greeting: Greeting) -> bool:
    return b"mariadb" in greeting.server_version.lower()


@dataclass(frozen=True, slots=True)
class _DdlContext:
    """What the endpoint needs, once the server has answered, about user DDL it inspected."""

    inspection: ddl.Inspection
    skip: set[ddl.Account]
    """``CREATE ... IF NOT EXISTS`` accounts that existed before: the statement left them alone."""
    text: str
    """The query as the client wrote it (without its query attributes)."""
    prefix: bytes
    """COM_QUERY prefix (empty query attributes) to use for the endpoint's own statements."""
    tls_off: frozenset[int]
    """Statements whose ``REQUIRE SSL`` the server got as ``REQUIRE NONE`` (``_tls_off``)."""
    mariadb: bool
    """The server is MariaDB (else Oracle MySQL)."""


def _aligned(inspection: ddl.Inspection, outcomes: DdlOutcomes) -> bool:
    """Whether the answers are one per statement: only user DDL may answer with a result set
    (``IDENTIFIED BY RANDOM PASSWORD``); a ``SELECT`` or ``CALL`` (several results) in the
    query could shift them."""
    statements = inspection.statements
    return len(outcomes.outcomes) <= len(statements) and all(
        not o.rows or statements[i] is not None for i, o in enumerate(outcomes.outcomes))


class InterceptorHost(Protocol):
    """The endpoint, read on every command (its authenticator may be replaced at run time)."""

    authenticator: IamAuthenticator
    admin: AdminClient
    door: ProxyDoor | None
    """An RDS Proxy's rules (``auth.proxy``), or None for an instance endpoint."""


@dataclass
class Session:
    """What the endpoint keeps about an authenticated session (for intercepted commands)."""

    client: ClientSide
    backend: BackendSide
    greeting: Greeting
    capabilities: int
    info: ClientInfo
    user: str


class CommandInterceptor:
    """Runs intercepted commands for one endpoint."""

    def __init__(self, host: InterceptorHost, instance_secret: bytes) -> None:
        self._host = host
        self._secret = instance_secret

    async def handle(self, s: Session, item: Intercept) -> None:
        """Run one intercepted command of session ``s`` (COM_CHANGE_USER or user DDL) on the
        diverted backend, then resume relaying.

        When it fails (logged, not raised) or the command ends the session, both sides are closed.
        """
        try:
            s.backend.diverted = True
            if item.packet.payload[0] == 0x11:
                keep = await self._change_user(s, item)
                if keep:  # the session's user from now on (SET PASSWORD without FOR acts for it)
                    s.user = ChangeUser.parse(item.packet.payload, s.capabilities).user.decode(
                        "utf-8", "replace")
            else:
                keep = await self._user_ddl(s, item)
        except Exception as exc:
            log.warning("mysql endpoint: intercepted command failed: %s", clip(repr(exc), TEXT_CAP))
            keep = False
        if not keep:
            s.client.close()
            s.backend.close()
            return
        rest = s.backend.undivert()
        if rest:
            s.client.write(rest)
        s.client.release()

    async def _user_ddl(self, s: Session, item: Intercept) -> bool:
        payload = item.packet.payload
        attributes = bool(s.capabilities & Capability.QUERY_ATTRIBUTES)
        try:
            head, query = split_query(payload, attributes)
        except ProtocolError as exc:  # the server judges it: relayed as it came
            log.info("mysql endpoint: query attributes not understood: %s", exc)
            s.backend.write(item.raw)
            return await self._forward_response(s, None)
        # the endpoint's own statements carry no attributes (count 0, one set)
        prefix = b"\x00\x01" if attributes else b""
        text = query.decode("utf-8", "surrogateescape")
        mariadb = _is_mariadb(s.greeting)
        dialect = ddl.server_dialect(s.greeting.server_version)

        def placeholder(_account: ddl.Account) -> str:
            return ddl.placeholder_clause(mariadb)

        inspection = ddl.inspect(text, placeholder, dialect=dialect)
        if not inspection.user_ddl:
            s.backend.write(item.raw)
            if show_create.is_show_create_user(text, dialect):
                return await self._show_create_user(s, mariadb)
            return await self._forward_response(s, None)
        if inspection.uses_iam_plugin and not self._host.authenticator.iam_enabled:
            s.client.write(encode_packet(1, ErrPacket(
                ErrorCode.ER_PLUGIN_IS_NOT_LOADED, "HY000",
                "Plugin 'AWSAuthenticationPlugin' is not loaded").build()))
            return True
        skip: set[ddl.Account] = set()
        for stmt in inspection.user_ddl:
            if stmt.op is ddl.Op.CREATE and stmt.if_not_exists:
                skip |= await self._host.admin.existing_accounts(c.account for c in stmt.changes)
        tls_off = await self._tls_off(inspection)
        if tls_off:
            inspection = ddl.inspect(text, placeholder, tls_off, dialect)
        raw = item.raw
        if inspection.rewritten is not None:
            raw = encode_packet(0, head + inspection.rewritten.encode("utf-8", "surrogateescape"))
        s.backend.write(raw)
        return await self._forward_response(
            s, _DdlContext(inspection, skip, text, prefix, tls_off, mariadb))

    async def _tls_off(self, inspection: ddl.Inspection) -> frozenset[int]:
        """Indexes of the ``REQUIRE SSL`` statements all of whose accounts are (or become) IAM
        accounts: the server gets ``REQUIRE NONE``, the catalog keeps the requirement. The
        endpoint's link to the server has no TLS, so the server would refuse the derived
        login; the client's TLS to the endpoint, required for every IAM login, satisfies it as
        the client's TLS to RDS does. Statements mixing IAM and password accounts are left as
        written (docs/mysql.md)."""
        found: set[int] = set()
        for index, stmt in enumerate(inspection.statements):
            if stmt is None or not stmt.require_ssl or not stmt.changes:
                continue
            for change in stmt.changes:
                if change.iam is False or (
                        change.iam is None
                        and not await self._host.admin.is_iam_account(change.account)):
                    break
            else:
                found.add(index)
        return frozenset(found)

    async def _forward_response(self, s: Session, ctx: _DdlContext | None) -> bool:
        decoder = PacketDecoder(1 << 30)
        outcomes = DdlOutcomes(bool(s.capabilities & Capability.DEPRECATE_EOF))
        chunks: list[bytes] = []
        packets: list[Packet] = []
        while not outcomes.done:
            data = await s.backend.read_tap()
            chunks.append(data)
            for packet in decoder.feed(data):
                packets.append(packet)
                if outcomes.feed(packet):
                    break
        if ctx is not None and (outcomes.unknown or not _aligned(ctx.inspection, outcomes)):
            ctx = None  # which answer is which statement's is not known: change nothing
        if ctx is not None:
            await self._apply_catalog(s, ctx, outcomes)
        reply = b"".join(chunks)
        if ctx is not None and ctx.inspection.rewritten is not None and outcomes.outcomes:
            last = outcomes.outcomes[-1]
            if last.error is not None:
                # The server's error is about the rewritten text: answer what it would have said
                # about the statement as the client wrote it (RDS's answer).
                error = await self._error_for_original(s, ctx, len(outcomes.outcomes) - 1,
                                                       last.error)
                reply = b"".join(encode_packet(p.seq, p.payload) for p in packets[:-1])
                reply += encode_packet(packets[-1].seq, error.build()) + decoder.take_buffer()
        s.client.write(reply)
        return True

    async def _show_create_user(self, s: Session, mariadb: bool) -> bool:
        """Relay the answer to ``SHOW CREATE USER`` with each IAM account's authentication
        clause as RDS prints it (``show_create.rds_form``) instead of the derived password's."""
        decoder = PacketDecoder(1 << 30)
        reader = show_create.ResultSetReader(bool(s.capabilities & Capability.DEPRECATE_EOF))
        while not reader.done:
            for packet in decoder.feed(await s.backend.read_tap()):
                if reader.feed(packet):
                    break
        for index in reader.rows:
            packet = reader.packets[index]
            text = show_create.single_text_value(packet.payload)
            account = show_create.account_in(text or b"")
            if text is None or account is None:
                continue
            if not await self._host.admin.is_iam_account(account):
                continue
            shown = show_create.rds_form(
                text, mariadb=mariadb, tls_required=await self._host.admin.requires_tls(account))
            if shown is not None:
                reader.packets[index] = Packet(packet.seq, lenenc_bytes(shown))
        s.client.write(reader.encode() + decoder.take_buffer())
        return True

    async def _error_for_original(
        self, s: Session, ctx: _DdlContext, index: int, error: ErrPacket
    ) -> ErrPacket:
        """The error for statement ``index`` as originally written.

        A syntax error names the text after the failing point: the endpoint has the server parse
        the original text again with PREPARE (which never executes anything), so the answer -
        and the session's diagnostics area that SHOW WARNINGS/SHOW ERRORS/GET DIAGNOSTICS read -
        hold the client's text. Other errors get each placeholder clause put back as written.
        """
        if error.code == ER_PARSE_ERROR and index < len(ctx.inspection.starts):
            # the server skips the white space after a ';' before it parses the next statement
            original = ctx.text[ctx.inspection.starts[index]:].lstrip()
            again = await self._run_on_session(
                s, ctx.prefix, f"PREPARE {_REPLAY_NAME} FROM "
                + await self._string_literal(s, ctx, original))
            if again is not None and again.code == ER_PARSE_ERROR:
                return again
            if again is None:  # it parsed after all: nothing ran, drop the prepared statement
                await self._run_on_session(s, ctx.prefix, f"DEALLOCATE PREPARE {_REPLAY_NAME}")
        return replace(error, message=ctx.inspection.unrewrite(error.message))

    async def _string_literal(self, s: Session, ctx: _DdlContext, text: str) -> str:
        """``text`` as a string literal PREPARE takes. MariaDB takes a hex literal (any bytes,
        whatever the session's SQL mode); Oracle MySQL's grammar does not, so it gets a quoted
        string, its backslashes escaped unless the session's ``sql_mode`` has
        ``NO_BACKSLASH_ESCAPES``."""
        if ctx.mariadb:
            return "X'" + text.encode("utf-8", "surrogateescape").hex() + "'"
        if "\\" in text and b"NO_BACKSLASH_ESCAPES" in await self._value_on_session(
                s, ctx.prefix, "SELECT @@SESSION.sql_mode"):
            return "'" + text.replace("'", "''") + "'"
        return ddl.quote(text)

    async def _value_on_session(self, s: Session, prefix: bytes, sql: str) -> bytes:
        """The one value of a one-row, one-column query run on the client's backend session."""
        s.backend.write(encode_packet(0, b"\x03" + prefix + sql.encode()))
        decoder = PacketDecoder(1 << 24)
        reader = show_create.ResultSetReader(bool(s.capabilities & Capability.DEPRECATE_EOF))
        while not reader.done:
            for packet in decoder.feed(await s.backend.read_tap()):
                if reader.feed(packet):
                    break
        if decoder.buffered or len(reader.rows) != 1:
            raise ConnectionError("unexpected answer to the endpoint's own query")
        return show_create.single_text_value(reader.packets[reader.rows[0]].payload) or b""

    async def _run_on_session(self, s: Session, prefix: bytes, sql: str) -> ErrPacket | None:
        """Run a statement that answers OK or ERR on the client's backend session (diverted)."""
        s.backend.write(encode_packet(0, b"\x03" + prefix
                                      + sql.encode("utf-8", "surrogateescape")))
        decoder = PacketDecoder(1 << 24)
        outcomes = DdlOutcomes()
        while not outcomes.done:
            for packet in decoder.feed(await s.backend.read_tap()):
                if outcomes.feed(packet):
                    break
        if decoder.buffered or outcomes.unknown:
            raise ConnectionError("unexpected answer to the endpoint's own statement")
        return outcomes.outcomes[-1].error if outcomes.outcomes else None

    async def _apply_catalog(self, s: Session, ctx: _DdlContext, outcomes: DdlOutcomes) -> None:
        """Follow the statements in order, each seeing the catalog as the ones before left it
        (``RENAME USER a TO b, b TO c``; ``CREATE USER a ...; RENAME USER a TO b``). The derived
        passwords are set once all ran: an account's name may change after its IAM clause ran."""
        admin = self._host.admin
        pending: list[ddl.Account] = []
        """Accounts to give the derived password, by their latest names."""
        # A failed account statement: Oracle MySQL (8.0+) changed nothing, its account
        # management statements are atomic; MariaDB changed every account its 1396 does not name.
        partial = _is_mariadb(s.greeting)
        for index, (stmt, outcome) in enumerate(
                zip(ctx.inspection.statements, outcomes.outcomes, strict=False)):
            if stmt is None:
                continue
            failed: set[ddl.Account] = set()
            if not outcome.ok:
                if (not partial or outcome.error is None
                        or outcome.error.code != ER_CANNOT_USER):
                    continue
                failed = ddl.failed_accounts(outcome.error.message)
            own = ddl.Account(s.user)  # an IAM user's account is 'user'@'%'
            if ctx.mariadb and stmt.op is ddl.Op.ALTER:
                pass  # MariaDB answers OK to ALTER USER CURRENT_USER() but changes nothing
            elif stmt.current_user:
                # SET PASSWORD / ALTER USER CURRENT_USER() ... for the session's own account
                await admin.set_iam(own, False)
                pending = [p for p in pending if p != own]
            elif stmt.current_user_iam:
                await admin.set_iam(own, True)
                pending.append(own)
            for change in stmt.changes:
                acc = change.account
                if acc in failed or acc in ctx.skip:
                    continue
                if stmt.op is ddl.Op.RENAME and change.renamed_to is not None:
                    # IAM-ness and the TLS requirement follow the name (the derived password
                    # depends on it: set below)
                    new = change.renamed_to
                    iam = await admin.is_iam_account(acc)
                    tls = iam and await admin.requires_tls(acc)
                    await admin.set_iam(acc, False)
                    await admin.set_iam(new, iam)
                    if iam:
                        await admin.set_requires_tls(new, tls)
                    pending = [p for p in pending if p not in (acc, new)]
                    if iam:
                        pending.append(new)
                elif change.iam:
                    # the server ran a placeholder clause: the real (derived) password below
                    await admin.set_iam(acc, True)
                    await self._follow_tls(stmt, acc, index in ctx.tls_off)
                    if acc not in pending:
                        pending.append(acc)
                elif change.iam is None:
                    if index in ctx.tls_off or (
                            stmt.require_ssl is False and await admin.is_iam_account(acc)):
                        await admin.set_requires_tls(acc, index in ctx.tls_off)
                else:
                    if (stmt.op is not ddl.Op.DROP and stmt.require_ssl is None
                            and await admin.requires_tls(acc)):
                        # a password account again: the server enforces the requirement itself
                        await admin.set_server_require(acc, True)
                    await admin.set_iam(acc, False)
                    pending = [p for p in pending if p != acc]
        for acc in pending:
            if not await self._set_derived_password(acc):
                await admin.set_iam(acc, False)  # ALTER USER IF EXISTS on a missing one

    async def _follow_tls(self, stmt: ddl.Statement, acc: ddl.Account, tls_off: bool) -> None:
        """Keep a new IAM account's TLS requirement in the catalog, not on the server."""
        admin = self._host.admin
        if tls_off or stmt.require_ssl is False:
            await admin.set_requires_tls(acc, tls_off)
        elif stmt.op is ddl.Op.CREATE:
            await admin.set_requires_tls(acc, False)  # forget an account of the same name
        elif await admin.server_requires_ssl(acc):
            # a password account with REQUIRE SSL made an IAM one: move the requirement over
            await admin.set_server_require(acc, False)
            await admin.set_requires_tls(acc, True)

    async def _set_derived_password(self, account: ddl.Account) -> bool:
        """False if the account does not exist (``ALTER USER IF EXISTS`` on a missing one)."""
        try:
            await self._host.admin.set_password(
                account, derived_password(self._secret, account.user))
        except QueryError as exc:
            if exc.error.code == ER_CANNOT_USER:
                return False
            raise
        return True

    async def _change_user(self, s: Session, item: Intercept) -> bool:
        """Carry out the login step's commands for one COM_CHANGE_USER (``login.LoginStep``)."""
        change = ChangeUser.parse(item.packet.payload, s.capabilities)
        user = change.user.decode("utf-8", "replace")
        info = replace(s.info, database=change.database.decode("utf-8", "replace") or None)
        front = FrontendHandshake.for_change_user(s.greeting, item.packet.seq)
        front.tls = s.info.tls
        try:
            iam_user = await self._host.admin.is_iam_user(user)
        except Exception as exc:
            self._host.authenticator.reject(
                db_user=user, client=info, reason=Reason.INTERNAL_ERROR,
                detail=f"COM_CHANGE_USER: catalog lookup failed: {clip(repr(exc), TEXT_CAP)}",
                hint=CATALOG_HINT)
            s.client.write(front.fail(access_denied(user, s.info.address)))
            return False
        sent = change.auth_response if change.auth_plugin == CLEAR_PASSWORD else None
        step = LoginStep(self._host.authenticator, LoginFacts(
            db_user=user, client=info, iam_user=iam_user, via="COM_CHANGE_USER: ",
            sent_token=sent), secret=self._secret, door=self._host.door)
        command = step.start()
        if isinstance(command, RelayPassword):
            return await self._relay_change_user(s, change, front, info, step.relays_iam_user)
        if isinstance(command, AskToken):
            s.client.write(front.request_cleartext())
            command = step.receive_token(await next_client_auth(s.client, front, held=True))
        if isinstance(command, Refuse):
            s.client.write(front.fail(refusal_packet(command.reason, user, s.info.address,
                                                     self._host.door)))
            return False
        assert isinstance(command, LogIn)
        login = BackendLogin.for_change_user(
            s.greeting.nonce, change, s.capabilities, password=command.password.encode(),
            default_plugin=s.greeting.auth_plugin)
        result = await drive_own_login(s.backend, login, tap=True)
        if isinstance(result, LoginSucceeded):
            s.client.write(front.succeed(result.ok_payload))
            return True
        # answered before the lookup below: the server closes the connection after a failed
        # COM_CHANGE_USER, and the client's side is closed with it
        s.client.write(front.fail(access_denied(user, s.info.address)))
        if await account_missing(self._host.admin, user):
            self._host.authenticator.reject(
                db_user=user, client=info, reason=Reason.IAM_ACCOUNT_MISSING,
                caller=command.decision,
                detail="COM_CHANGE_USER: IAM accepted the token, but the server has no account "
                       f"named exactly {user!r}: " + result.error.render(),
                hint=MISSING_ACCOUNT_HINT)
            return False
        self._host.authenticator.reject(
            db_user=user, client=info, reason=Reason.INTERNAL_ERROR,
            detail="COM_CHANGE_USER: the backend refused the derived-password login: "
                   + result.error.render(),
            hint=DERIVED_LOGIN_HINT)
        return False

    async def _relay_change_user(self, s: Session, change: ChangeUser,
                                 front: FrontendHandshake, info: ClientInfo,
                                 relays_iam_user: bool) -> bool:
        """A password COM_CHANGE_USER: the server decides; its verdict is the one event."""
        user = change.user.decode("utf-8", "replace")
        login = BackendLogin.for_change_user(
            s.greeting.nonce, change, s.capabilities, password=None,
            default_plugin=s.greeting.auth_plugin, client_tls=s.info.tls)
        outcome = await relay_login_outcome(s.client, s.backend, front, login, user,
                                            s.info.address, bool(change.auth_response),
                                            tap=True)
        if outcome.ok:
            self._host.authenticator.record_password_login(
                db_user=user, client=info, ok=True, detail="COM_CHANGE_USER relayed")
        else:
            record_password_refusal(
                self._host.authenticator, user=user, info=info, via="COM_CHANGE_USER",
                error_code=outcome.error_code, iam_user=relays_iam_user,
                cleartext=cleartext_password(change.auth_plugin, change.auth_response))
        s.client.write(outcome.final)
        return outcome.ok


# ---------------------------------------------------------------------------------- helpers
PASSWORD_MISMATCH_HINT = (
    "check the password; if an IAM token was sent as the password, the user is not IAM-enabled: "
    "ALTER USER ... IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' (then it logs in with "
    "tokens only)")
CATALOG_HINT = ("the endpoint could not tell whether the user is an IAM user: check that the "
                "backend is up; if it is, this is a bug: please report it")
DERIVED_LOGIN_HINT = "the user was dropped or its password changed outside the endpoint"
MISSING_ACCOUNT_HINT = ("the server has no account of that exact name: create it again with "
                        "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' through the endpoint "
                        "(or log in with its exact name)")
_REFUSED_HINTS = {
    1044: "grant the user access to that database, or connect to another one",
    1049: "connect to a database that exists (CREATE DATABASE, or leave the database out)",
}


async def account_missing(admin: AdminClient, user: str) -> bool:
    """Whether the server has no account named exactly ``user`` (after the derived login was
    refused); False when that cannot be told (the refusal is then the derived login's)."""
    try:
        return not await admin.has_account(user)
    except Exception as exc:
        log.warning("mysql endpoint: cannot look up the account %r: %s", clip(user),
                    clip(repr(exc), TEXT_CAP))
        return False


def record_password_refusal(
    auth: IamAuthenticator, *, user: str, info: ClientInfo, via: str,
    error_code: int | None, cleartext: str | None, iam_user: bool,
) -> None:
    """Record a relayed password login the server refused (not for lack of room: the caller
    records 1040). ``iam_user``: an IAM user's login relayed because IAM is off
    (``LoginStep.relays_iam_user``): ``iam_disabled``. A scrambled password cannot be looked
    at, so only a cleartext one that parses as a token is ``not_iam_user``; other 1045s are
    ``password_mismatch``."""
    if iam_user:
        auth.reject(db_user=user, client=info, reason=Reason.IAM_DISABLED,
                    detail=f"{via}: IAM database authentication is disabled on this instance, "
                           "so the IAM user's login went to the server as a password login",
                    hint="enable it (EnableIAMDatabaseAuthentication / iam_enabled=True) or log "
                         "in with a password user")
    elif looks_like_token(cleartext):
        auth.reject(db_user=user, client=info, reason=Reason.NOT_IAM_USER, method="password",
                    detail=f"{via}: an IAM token was sent as the password of a password user",
                    hint=NOT_IAM_USER_HINT)
    elif error_code == ErrorCode.ER_ACCESS_DENIED:
        seen = ("it was sent in clear and is not an IAM token" if cleartext is not None
                else "it was scrambled, so the endpoint cannot tell whether it was an IAM token")
        auth.reject(db_user=user, client=info, reason=Reason.PASSWORD_MISMATCH, method="password",
                    detail=f"{via}: the server refused the password with 1045 ({seen})",
                    hint=PASSWORD_MISMATCH_HINT)
    else:
        auth.reject(db_user=user, client=info, reason=Reason.BACKEND_REFUSED, method="password",
                    detail=f"{via}: the server refused the login with error {error_code}",
                    hint=_REFUSED_HINTS.get(error_code or 0,
                                            "the server's own error reached the client "
                                            "unchanged; fix what it names"))

