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

from rdsiam_emulator.authenticator import ClientInfo, IamAuthenticator
from rdsiam_emulator.endpoint.mysql_admin import AdminConnection
from rdsiam_emulator.endpoint.mysql_relay import (
    NOT_IAM_USER_HINT,
    BackendSide,
    ClientSide,
    cleartext_password,
    drive_own_login,
    looks_like_token,
    next_client_auth,
    relay_login,
)
from rdsiam_emulator.protocols.mysql import ddl
from rdsiam_emulator.protocols.mysql.constants import CLEAR_PASSWORD, Capability, ErrorCode
from rdsiam_emulator.protocols.mysql.framing import Intercept
from rdsiam_emulator.protocols.mysql.handshake import (
    BackendLogin,
    FrontendHandshake,
    LoginSucceeded,
)
from rdsiam_emulator.protocols.mysql.messages import ChangeUser, ErrPacket, Greeting, access_denied
from rdsiam_emulator.protocols.mysql.packets import PacketDecoder, encode_packet
from rdsiam_emulator.protocols.mysql.results import DdlOutcomes
from rdsiam_emulator.reasons import Reason
from rdsiam_emulator.secrets import derived_password

log = logging.getLogger(__name__)



class InterceptorHost(Protocol):
    """The endpoint, read on every command (its authenticator may be replaced at run time)."""

    authenticator: IamAuthenticator
    admin: AdminConnection


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
        try:
            s.backend.diverted = True
            if item.packet.payload[0] == 0x11:
                keep = await self._change_user(s, item)
            else:
                keep = await self._user_ddl(s, item)
        except Exception as exc:
            log.warning("mysql endpoint: intercepted command failed: %r", exc)
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
        prefix = b""
        if s.capabilities & Capability.QUERY_ATTRIBUTES:
            if payload[1:3] != b"\x00\x01":
                s.backend.write(item.raw)
                return await self._forward_response(s, None)
            prefix = b"\x00\x01"
        text = payload[1 + len(prefix):].decode("utf-8", "surrogateescape")
        inspection = ddl.inspect(text, lambda user: derived_password(self._secret, user))
        if not inspection.user_ddl:
            s.backend.write(item.raw)
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
        was_iam: dict[ddl.Account, bool] = {}
        for stmt in inspection.user_ddl:
            if stmt.op is ddl.Op.RENAME:
                for change in stmt.changes:
                    was_iam[change.account] = await self._host.admin.is_iam_account(change.account)
        raw = item.raw
        if inspection.rewritten is not None:
            raw = encode_packet(0, b"\x03" + prefix
                                + inspection.rewritten.encode("utf-8", "surrogateescape"))
        s.backend.write(raw)
        return await self._forward_response(s, (inspection, skip, was_iam))

    async def _forward_response(
        self, s: Session,
        ddl_ctx: tuple[ddl.Inspection, set[ddl.Account], dict[ddl.Account, bool]] | None,
    ) -> bool:
        decoder = PacketDecoder(1 << 30)
        outcomes = DdlOutcomes()
        chunks: list[bytes] = []
        while not outcomes.done:
            data = await s.backend.read_tap()
            chunks.append(data)
            for packet in decoder.feed(data):
                if outcomes.feed(packet):
                    break
        if ddl_ctx is not None and not outcomes.unknown:
            await self._apply_catalog(ddl_ctx, outcomes)
        s.client.write(b"".join(chunks))
        return True

    async def _apply_catalog(
        self, ctx: tuple[ddl.Inspection, set[ddl.Account], dict[ddl.Account, bool]],
        outcomes: DdlOutcomes,
    ) -> None:
        inspection, skip, was_iam = ctx
        for stmt, outcome in zip(inspection.statements, outcomes.outcomes, strict=False):
            if stmt is None:
                continue
            failed: set[ddl.Account] = set()
            if not outcome.ok:
                if outcome.error is None or outcome.error.code != 1396:
                    continue
                failed = ddl.failed_accounts(outcome.error.message)
            for change in stmt.changes:
                acc = change.account
                if acc in failed or acc in skip:
                    continue
                if stmt.op is ddl.Op.RENAME and change.renamed_to is not None:
                    if was_iam.get(acc):  # the derived password follows the user name
                        new = change.renamed_to
                        await self._host.admin.set_password(
                            new, derived_password(self._secret, new.user))
                        await self._host.admin.set_iam(acc, False)
                        await self._host.admin.set_iam(new, True)
                elif change.iam is not None:
                    await self._host.admin.set_iam(acc, change.iam)

    async def _change_user(self, s: Session, item: Intercept) -> bool:
        change = ChangeUser.parse(item.packet.payload, s.capabilities)
        user = change.user.decode("utf-8", "replace")
        info = replace(s.info, database=change.database.decode("utf-8", "replace") or None)
        front = FrontendHandshake.for_change_user(s.greeting, item.packet.seq)
        front.tls = s.info.tls
        iam = self._host.authenticator.iam_enabled and await self._host.admin.is_iam_user(user)
        if not iam:
            login = BackendLogin.for_change_user(
                s.greeting.nonce, change, s.capabilities, password=None,
                default_plugin=s.greeting.auth_plugin, client_tls=s.info.tls)
            ok, final = await relay_login(s.client, s.backend, front, login, user,
                                           s.info.address, bool(change.auth_response), tap=True)
            if not ok and looks_like_token(cleartext_password(change.auth_plugin,
                                                                change.auth_response)):
                self._host.authenticator.reject(
                    db_user=user, client=info, reason=Reason.NOT_IAM_USER, method="password",
                    detail="COM_CHANGE_USER sent an IAM token as the password of a password user",
                    hint=NOT_IAM_USER_HINT)
            else:
                self._host.authenticator.record_password_login(
                    db_user=user, client=info, ok=ok, detail="COM_CHANGE_USER relayed")
            s.client.write(final)
            return ok
        if self._host.authenticator.transport_rejection(info) is not None:
            self._host.authenticator.reject(db_user=user, client=info, reason=Reason.TLS_REQUIRED,
                                      detail="IAM logins are accepted over TLS only")
            s.client.write(front.fail(access_denied(user, s.info.address)))
            return False
        if change.auth_plugin == CLEAR_PASSWORD:
            token = change.auth_response
        else:
            s.client.write(front.request_cleartext())
            token = await next_client_auth(s.client, front, held=True)
        token = token[:-1] if token.endswith(b"\0") else token
        decision = self._host.authenticator.authenticate_iam(
            db_user=user, token=token.decode("utf-8", "replace"), client=info)
        if not decision.ok:
            s.client.write(front.fail(access_denied(user, s.info.address)))
            return False
        login = BackendLogin.for_change_user(
            s.greeting.nonce, change, s.capabilities,
            password=derived_password(self._secret, user).encode(),
            default_plugin=s.greeting.auth_plugin)
        result = await drive_own_login(s.backend, login, tap=True)
        if isinstance(result, LoginSucceeded):
            s.client.write(front.succeed(result.ok_payload))
            return True
        s.client.write(front.fail(access_denied(user, s.info.address)))
        return False


# ---------------------------------------------------------------------------------- helpers
