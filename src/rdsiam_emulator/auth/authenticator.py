"""The engine-neutral login decision for one emulated instance.

Protocol front-ends hand over what they extracted (DB user, token, transport facts); the
authenticator applies the instance's switches (IAM enabled, TLS required, throttling), runs the
verifier with the IAM authorizer, records an ``AuthEvent`` and returns a ``LoginDecision``. It never
writes to a socket: what the client sees is the front-end's business (RDS's generic engine errors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from rdsiam_emulator.auth.credentials import CredentialLookup
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.throttle import Throttle
from rdsiam_emulator.auth.tokens import redact_secrets
from rdsiam_emulator.auth.verifier import (
    DEFAULT_SETTINGS,
    Authorizer,
    VerifierSettings,
    verify_token,
)
from rdsiam_emulator.clock import Clock, SystemClock
from rdsiam_emulator.engines import EngineName
from rdsiam_emulator.engines import engine as engine_named
from rdsiam_emulator.events import ALLOW, DENY, AuthEvent, EventLog
from rdsiam_emulator.reasons import REASONS, Reason


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What the front-end knows about the connecting client."""

    address: str
    port: int | None = None
    tls: bool = False
    sni: str | None = None
    database: str | None = None


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoginDecision:
    """What the authenticator decided about one login, with the event it recorded; ``reason``
    None means allowed."""

    ok: bool
    reason: Reason | None
    detail: str
    hint: str | None
    principal_arn: str | None
    event: AuthEvent

    @property
    def rds_error_code(self) -> str | None:
        """The RDS error code of ``reason`` (docs/reason-codes.md); None if allowed."""
        return None if self.reason is None else REASONS[self.reason].rds_error_code


class IamAuthenticator(Protocol):
    """What the protocol front-ends need from an authenticator (``Authenticator`` is the real one;
    tests may pass their own)."""

    iam_enabled: bool
    engine: EngineName

    def is_iam_login(self, iam_user: bool) -> bool:
        """Whether a login by a user marked as IAM is an IAM login (see ``Authenticator``)."""

    def transport_rejection(self, client: ClientInfo, *, iam: bool = True,
                            force_ssl: bool = False) -> Reason | None:
        """The reason to refuse the login because of its transport (plain TCP), or None."""

    def authenticate_iam(self, *, db_user: str, token: str,
                         client: ClientInfo) -> LoginDecision:
        """Verify ``token`` for ``db_user`` and record the event; must not raise for bad input."""

    def reject(self, *, db_user: str, client: ClientInfo, reason: Reason, detail: str,
               hint: str | None = None, method: str = "iam",
               caller: LoginDecision | None = None) -> LoginDecision:
        """Record a refusal the front-end decided (``reason``) and return the decision; ``caller``
        (the login's earlier allow) lends its principal and access key to the event."""

    def record_password_login(self, *, db_user: str, client: ClientInfo, ok: bool,
                              detail: str) -> AuthEvent:
        """Record the outcome of a password login relayed to the real server."""


class Authenticator:
    """Decides IAM logins for one emulated instance and records every attempt."""

    def __init__(
        self,
        *,
        instance_id: str,
        engine: EngineName,
        endpoint: Endpoint,
        credentials: CredentialLookup,
        events: EventLog,
        authorizer: Authorizer | None = None,
        clock: Clock | None = None,
        settings: VerifierSettings = DEFAULT_SETTINGS,
        iam_enabled: bool = True,
        require_tls: bool = True,
        throttle: Throttle | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.engine = engine
        self.endpoint = endpoint
        self.credentials = credentials
        self.events = events
        self.authorizer = authorizer
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.settings = settings
        self.iam_enabled = iam_enabled
        self.require_tls = require_tls
        self.throttle = throttle

    def is_iam_login(self, iam_user: bool) -> bool:
        """Whether a login by a user the server marks as IAM (``iam_user``) is an IAM login.

        With IAM authentication off, an engine that relays such logins as password logins
        (``Engine.iam_users_relayed_when_disabled``, MySQL) answers False; PostgreSQL still
        asks for the token and ``authenticate_iam`` refuses it (``iam_disabled``).
        """
        if not iam_user:
            return False
        return self.iam_enabled or not engine_named(self.engine).iam_users_relayed_when_disabled

    def transport_rejection(self, client: ClientInfo, *, iam: bool = True,
                            force_ssl: bool = False) -> Reason | None:
        """The TLS rule: ``TLS_REQUIRED`` when a login must be refused before any password or
        token is read because the connection is plain TCP. IAM logins need TLS when
        ``require_tls`` (RDS); password logins (``iam=False``) only when ``force_ssl``
        (``rds.force_ssl``). None: the transport is acceptable."""
        if client.tls:
            return None
        if self.require_tls if iam else force_ssl:
            return Reason.TLS_REQUIRED
        return None

    def authenticate_iam(self, *, db_user: str, token: str, client: ClientInfo) -> LoginDecision:
        """Verify ``token`` for ``db_user``; never raises for bad input."""
        now = self.clock.now()
        if not self.iam_enabled:
            return self._decide(
                db_user, client, Reason.IAM_DISABLED,
                "IAM database authentication is disabled on this instance",
                "enable it (EnableIAMDatabaseAuthentication / iam_enabled=True) or log in with a "
                "password",
                None, None,
            )
        if self.transport_rejection(client) is not None:
            return self.reject(db_user=db_user, client=client, reason=Reason.TLS_REQUIRED,
                               detail="IAM logins are accepted over TLS only",
                               hint="connect with sslmode=require (or stricter) / ssl enabled")
        try:
            result = verify_token(
                token, endpoint=self.endpoint, db_user=db_user, credentials=self.credentials,
                now=now, settings=self.settings, authorizer=self.authorizer,
            )
        except Exception as exc:
            return self._decide(db_user, client, Reason.INTERNAL_ERROR,
                                f"verification raised {type(exc).__name__}",
                                VERIFIER_HINTS[Reason.INTERNAL_ERROR], None, None)
        if result.ok and self.throttle is not None:
            why = self.throttle.admit(_token_key(token), result.principal_arn or
                                      (result.access_key_id or "unknown"))
            if why is not None:
                return self._decide(db_user, client, Reason.THROTTLED, why,
                                    "reuse tokens within their lifetime or pool connections",
                                    result.principal_arn, result.access_key_id)
        if result.ok:
            parts = self._skipped()
            suffix = "; not evaluated: " + "; ".join(parts) if parts else ""
            return self._decide(db_user, client, None, result.detail + suffix, None,
                                result.principal_arn, result.access_key_id, not_evaluated=parts)
        hint = result.hint
        if not hint and result.reason is not None:
            hint = VERIFIER_HINTS.get(result.reason)
        detail, principal = result.detail, result.principal_arn
        if principal is None and result.access_key_id:
            principal = self._key_owner(result.access_key_id)
            if principal is not None:  # refused before the signature check: say so
                detail += "; principal_arn is the access key's owner (signature not checked)"
        return self._decide(db_user, client, result.reason, detail, hint, principal,
                            result.access_key_id)

    def _key_owner(self, access_key_id: str) -> str | None:
        """Who owns ``access_key_id`` in the IAM state, for the event only: a refusal decided
        before the key was used (expiry, host, DB user) still names its caller. Never an input
        to a decision."""
        try:
            found = self.credentials.lookup(access_key_id)
        except Exception:  # the event is still recorded, without the name
            log.debug("credential lookup for an event failed", exc_info=True)
            return None
        return None if found is None else found.principal_arn

    def _skipped(self) -> tuple[str, ...]:
        """Parts of an allow the IAM authorizer could not evaluate: the event names them."""
        last = getattr(self.authorizer, "last_skipped", None)
        parts: tuple[str, ...] = last() if callable(last) else ()
        return parts

    def reject(
        self, *, db_user: str, client: ClientInfo, reason: Reason, detail: str,
        hint: str | None = None, method: str = "iam", caller: LoginDecision | None = None,
    ) -> LoginDecision:
        """Record an engine-level rejection decided by the front-end (TLS, not an IAM user...).

        ``caller``: the allow this refusal follows (the server refused the session after IAM
        accepted the token): its principal and access key go on this event too."""
        arn = akid = None
        if caller is not None:
            arn, akid = caller.event.principal_arn, caller.event.access_key_id
        return self._decide(db_user, client, reason, detail, hint, arn, akid, method=method)

    def record_password_login(
        self, *, db_user: str, client: ClientInfo, ok: bool, detail: str
    ) -> AuthEvent:
        """Record the outcome of a password login relayed to the real server."""
        return self.events.record(AuthEvent(
            time=self.clock.now(), instance_id=self.instance_id, engine=self.engine,
            db_user=db_user, method="password", outcome=ALLOW if ok else DENY,
            detail=redact_secrets(detail), client_address=client.address,
            client_port=client.port, database=_redacted(client.database),
            tls=client.tls,
        ))

    def _decide(
        self, db_user: str, client: ClientInfo, reason: Reason | None, detail: str,
        hint: str | None, principal_arn: str | None, access_key_id: str | None,
        *, method: str = "iam", not_evaluated: tuple[str, ...] = (),
    ) -> LoginDecision:
        event = self.events.record(AuthEvent(
            time=self.clock.now(), instance_id=self.instance_id, engine=self.engine,
            db_user=db_user, method=method, outcome=ALLOW if reason is None else DENY,
            reason=reason, detail=redact_secrets(detail), hint=hint, principal_arn=principal_arn,
            access_key_id=access_key_id, client_address=client.address,
            client_port=client.port, database=_redacted(client.database), tls=client.tls,
            not_evaluated=not_evaluated,
        ))
        return LoginDecision(reason is None, reason, detail, hint, principal_arn, event)


def _redacted(text: str | None) -> str | None:
    return None if text is None else redact_secrets(text)


_AS_GENERATED = ("pass the token exactly as generate_db_auth_token returns it (no https:// "
                 "prefix, not URL-decoded or re-encoded)")
VERIFIER_HINTS: dict[Reason, str] = {
    Reason.MALFORMED_TOKEN: _AS_GENERATED + "; IAM users log in with a token, not a password",
    Reason.UNSUPPORTED_ALGORITHM: "sign with SigV4 (AWS4-HMAC-SHA256): use the SDK's "
                                  "generate_db_auth_token",
    Reason.WRONG_ACTION: "sign with generate_db_auth_token (rds-db, Action=connect), not "
                         "another presigner",
    Reason.WRONG_SERVICE: "generate the token with the RDS client's generate_db_auth_token "
                          "(service rds-db)",
    Reason.REGION_MISMATCH: "sign with the instance's region",
    Reason.SCOPE_DATE_MISMATCH: "the token was altered or hand-built: sign it with an SDK",
    Reason.EXPIRES_OUT_OF_RANGE: "RDS tokens live 15 minutes at most: do not pass a longer "
                                 "ExpiresIn",
    Reason.NOT_YET_VALID: "the signing machine's clock runs fast: synchronise it (NTP)",
    Reason.EXPIRED: "generate a fresh token for every new connection (tokens live 15 minutes)",
    Reason.HOST_MISMATCH: "sign for the instance endpoint's host name and port exactly",
    Reason.DB_USER_MISMATCH: "generate the token with DBUsername equal to the user name you "
                             "log in with",
    Reason.UNKNOWN_ACCESS_KEY: "sign with credentials this IAM state issued",
    Reason.INACTIVE_ACCESS_KEY: "activate the key (iam update-access-key --status Active) or "
                                "use another",
    Reason.CREDENTIALS_EXPIRED: "refresh the session (assume the role again) before generating "
                                "the token",
    Reason.SESSION_TOKEN_MISMATCH: "sign with the full temporary credentials (key, secret and "
                                   "session token)",
    Reason.SIGNATURE_MISMATCH: _AS_GENERATED + ", signed with the key's current secret",
    Reason.NOT_AUTHORIZED: "attach a policy allowing rds-db:connect on "
                           "arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<user>",
    Reason.EXPLICIT_DENY: "remove or narrow the statement that denies rds-db:connect",
    Reason.INTERNAL_ERROR: "the emulator failed while deciding (a credential lookup or "
                           "authorizer raised): a bug, please report it with the detail",
}
"""What to do, for a verifier refusal that came without a hint of its own (most format
checks): every refusal carries one (docs/reason-codes.md)."""


def _token_key(token: str) -> str:
    """The signature identifies a token; read it from the (already verified) text, without
    building the parsed token the verifier leaves lazy."""
    start = token.find("X-Amz-Signature=") + len("X-Amz-Signature=")
    return token[start:start + 64]
