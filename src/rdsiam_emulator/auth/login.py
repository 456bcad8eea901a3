"""The login step: one sans-I/O decision for every way into an instance.

Every entry point (PostgreSQL start-up, MySQL handshake, MySQL ``COM_CHANGE_USER``, and an RDS
Proxy's endpoint, whose ``ProxyDoor`` the step consults instead of the instance's rules) hands the
facts of a login attempt to a ``LoginStep`` and carries out the command it returns; the step never
touches a socket. Aurora cluster and reader endpoints need no entry of their own: they forward
each connection, before TLS, to a member instance, whose entry points run the step. The rules
themselves (TLS, IAM enabled, token, policy) are the authenticator's; the step only puts them in
order::

    step = LoginStep(authenticator, LoginFacts(...), secret=instance_secret)
    command = step.start()            # AskToken | Refuse | LogIn | RelayPassword
    if isinstance(command, AskToken):
        ...send the engine's cleartext-password request, read the answer...
        command = step.receive_token(answer)   # Refuse | LogIn

Commands:

* ``AskToken``: ask the client for its password in clear (the token);
* ``Refuse``: answer with the engine's refusal for ``reason`` (the event is already recorded);
* ``LogIn``: log in to the real server as ``user`` with ``password`` (the derived one), then
  answer the client with the server's outcome;
* ``RelayPassword``: not an IAM login: relay the client's own authentication to the server.

Through an RDS Proxy whose secret for the user has ``IAMAuth=DISABLED`` the answer to ``AskToken``
is the client's password, which the step compares with the secret's (constant time) instead of
verifying a token.

Each step that reaches a decision records exactly one event: ``Refuse`` and ``LogIn`` carry it
(``decision.event``); after ``RelayPassword`` the handler records the server's verdict (it is the
only one who sees it). A client that hangs up when asked for its token records one only on the
MySQL handshake (``client_left``: libmysqlclient without the cleartext plugin does that); a
PostgreSQL client hanging up at the password request is not an attempt (psql does it to prompt
for a password, then connects again), and neither is a session that ends inside
``COM_CHANGE_USER``. What
happens after ``LogIn`` (the backend refusing the session) is the engine's own failure, recorded
by the handler as a further, engine-level event.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from rdsiam_emulator.auth.authenticator import ClientInfo, IamAuthenticator, LoginDecision
from rdsiam_emulator.auth.proxy import ProxyDoor, SecretCredentials
from rdsiam_emulator.engines import Engine
from rdsiam_emulator.engines import engine as engine_named
from rdsiam_emulator.reasons import Reason
from rdsiam_emulator.secrets import derived_password


@dataclass(frozen=True, slots=True)
class LoginFacts:
    """What an entry point knows about one login attempt before it asks for a token."""

    db_user: str
    client: ClientInfo
    """Address, TLS, database of the connection."""
    iam_user: bool
    """The server says this user logs in with IAM tokens (``rds_iam`` member; MySQL catalog)."""
    via: str = ""
    """What the attempt is, as a prefix of event details (``"COM_CHANGE_USER: "``)."""
    reserved_user: bool = False
    """The login names the emulator's own admin account (RDS's ``rdsadmin``)."""
    replication: str | None = None
    """PostgreSQL's ``replication`` start-up parameter, when given."""
    force_ssl: bool = False
    """``rds.force_ssl``: password logins need TLS too."""
    can_ask_token: bool = True
    """The client can be switched to a cleartext password (MySQL: ``CLIENT_PLUGIN_AUTH``)."""
    sent_token: bytes | None = field(default=None, repr=False)
    """A cleartext password the client already sent with the login (``mysql_clear_password``
    in the HandshakeResponse or COM_CHANGE_USER): used instead of asking."""


@dataclass(frozen=True, slots=True)
class AskToken:
    """Ask the client for its cleartext password (the IAM token)."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer with the engine's refusal for ``decision.reason`` (recorded in ``decision``)."""

    decision: LoginDecision

    @property
    def reason(self) -> Reason:
        """The one reason code of this refusal."""
        assert self.decision.reason is not None  # a refusal always has one
        return self.decision.reason


@dataclass(frozen=True, slots=True)
class LogIn:
    """The token was accepted: log in to the real server as ``user`` with ``password``."""

    user: str
    password: str = field(repr=False)
    decision: LoginDecision
    repair: bool = True
    """The password is the endpoint's derived one, which it may set on the server when the
    server refuses it; False for a proxy secret's password (a refusal is the secret's fault)."""


@dataclass(frozen=True, slots=True)
class RelayPassword:
    """Not an IAM login: relay the client's authentication exchange to the server."""


Command = AskToken | Refuse | LogIn | RelayPassword


class LoginStepError(RuntimeError):
    """A step was driven out of order (``receive_token`` without ``AskToken``, twice...)."""


class LoginStep:
    """One login attempt's decisions, in RDS's order; see the module docstring.

    Raises ``LoginStepError`` when driven out of order; never raises for bad client input
    (that is a ``Refuse``).
    """

    def __init__(self, authenticator: IamAuthenticator, facts: LoginFacts, *,
                 secret: bytes, door: ProxyDoor | None = None) -> None:
        """``door``: the login comes through an RDS Proxy (``auth.proxy``), whose rules replace
        the instance's; None for an instance endpoint."""
        self.facts = facts
        self._auth = authenticator
        self._secret = secret
        self._door = door
        self._proxy_login: SecretCredentials | None = None
        self._proxy_password = False
        """IAMAuth DISABLED: the answer to ``AskToken`` is a password checked against the
        secret's (RDS Proxy authenticates the client with the secret's credentials)."""
        self._engine: Engine = engine_named(authenticator.engine)
        self._state = "new"

    @property
    def relays_iam_user(self) -> bool:
        """An IAM user's login that goes to the server as a password login (IAM switched off
        on an engine that relays then): a refusal by the server is ``iam_disabled``."""
        return self.facts.iam_user and not self._auth.is_iam_login(self.facts.iam_user)

    def start(self) -> Command:
        """The first command. Raises ``LoginStepError`` if called twice."""
        self._advance("new", "started")
        if self._door is not None:
            return self._start_proxy(self._door)
        f = self.facts
        if f.reserved_user:
            return self._refuse(
                Reason.RESERVED_USER, method="password",
                detail="the emulator's own admin account (RDS's rdsadmin) has no pg_hba.conf "
                       "line for clients of the endpoint",
                hint="log in as the master user or an application user; this account is the "
                     "endpoint's own")
        iam = self._auth.is_iam_login(f.iam_user)
        if iam and f.replication is not None:
            return self._refuse(
                Reason.REPLICATION_NOT_ALLOWED,
                detail=f"replication={f.replication}: pg_hba.conf has no pam line for "
                       "replication connections",
                hint="IAM users cannot open replication connections; use a password user "
                     "with the REPLICATION attribute")
        refused = self._auth.transport_rejection(f.client, iam=iam, force_ssl=f.force_ssl)
        if refused is not None and not iam:
            return self._refuse(
                refused, method="password",
                detail="rds.force_ssl is on: pg_hba.conf accepts TLS connections only",
                hint=self._engine.tls_hint)
        if not iam:
            self._state = "done"
            return RelayPassword()
        if refused is not None:
            return self._refuse(refused, detail=f"{f.via}IAM logins are accepted over TLS only",
                                hint=self._engine.tls_hint)
        return self._ask()

    def _ask(self) -> Command:
        f = self.facts
        if not f.can_ask_token:
            return self._refuse(
                Reason.CLEARTEXT_PLUGIN_UNSUPPORTED,
                detail=f"{f.via}the client cannot switch to mysql_clear_password (no "
                       "CLIENT_PLUGIN_AUTH)",
                hint=self._engine.cleartext_hint)
        self._state = "asked"
        if f.sent_token is not None:
            return self.receive_token(f.sent_token)
        return AskToken()

    def _start_proxy(self, door: ProxyDoor) -> Command:
        """The proxy's order: RequireTLS, then the DB user's rule (end-to-end IAM, or its
        secret's IAMAuth), then TLS for IAM, then the token."""
        f = self.facts
        if door.require_tls and not f.client.tls:
            return self._refuse(
                Reason.PROXY_TLS_REQUIRED, method="unknown",
                detail=f"{f.via}the proxy {door.name!r} has RequireTLS and the client did not "
                       "use TLS",
                hint=self._engine.tls_hint + " (the proxy requires TLS for every login)")
        via = f"{f.via}proxy {door.name!r}: "
        if f.reserved_user:  # the endpoint's own account, whatever a secret says
            return self._refuse(
                Reason.RESERVED_USER, method="unknown",
                detail=f"{via}the emulator's own admin account (RDS's rdsadmin) cannot log in "
                       "through a proxy",
                hint="log in as the master user or an application user; this account is the "
                     "endpoint's own")
        if door.end_to_end:
            refused = self._end_to_end_target(door, via)
            if refused is not None:
                return refused
        else:
            found = door.secret_for(f.db_user)
            if not isinstance(found, tuple):
                return self._refuse(found.reason, detail=via + found.detail, hint=found.hint,
                                    method="unknown")
            entry, creds = found
            self._proxy_login = creds
            if entry.iam_auth == "DISABLED":
                self._proxy_password = True
                return self._ask()
        if not f.client.tls:
            return self._refuse(Reason.TLS_REQUIRED,
                                detail=f"{via}IAM authentication is allowed only with TLS",
                                hint=self._engine.tls_hint)
        return self._ask()

    def _end_to_end_target(self, door: ProxyDoor, via: str) -> Refuse | None:
        """End-to-end IAM logs in to the database with IAM: the target and the DB user must
        be IAM-enabled there (checked before the token: no later step could succeed)."""
        f = self.facts
        if not f.iam_user:
            return self._refuse(
                Reason.NOT_IAM_USER,
                detail=f"{via}end-to-end IAM logs in to the database with IAM, and "
                       f"{f.db_user!r} is not an IAM user there",
                hint="make it an IAM user on the database (PostgreSQL: GRANT rds_iam TO the "
                     "user; MySQL: IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS')")
        if not door.target_iam_enabled():
            return self._refuse(
                Reason.IAM_DISABLED,
                detail=f"{via}end-to-end IAM needs IAM database authentication on the target, "
                       "and it is disabled",
                hint="enable IAM database authentication on the target instance "
                     "(modify-db-instance --enable-iam-database-authentication)")
        return None

    def receive_token(self, token: bytes | str) -> Refuse | LogIn:
        """The client's answer to ``AskToken`` (a trailing NUL, as MySQL clients send it, is
        not part of the token). Raises ``LoginStepError`` if no token was asked for."""
        self._advance("asked", "done")
        if isinstance(token, bytes):
            token = token.removesuffix(b"\0").decode("utf-8", "replace")
        f = self.facts
        if self._proxy_password:
            return self._check_proxy_password(token)
        decision = self._auth.authenticate_iam(db_user=f.db_user, token=token, client=f.client)
        if not decision.ok:
            return Refuse(decision)
        if self._proxy_login is not None:
            creds = self._proxy_login
            return LogIn(creds.username, creds.password, decision, repair=False)
        return LogIn(f.db_user, derived_password(self._secret, f.db_user), decision)

    def _check_proxy_password(self, password: str) -> Refuse | LogIn:
        """IAMAuth DISABLED: the client must know the secret's password; then the proxy logs in
        with the secret's credentials."""
        f, creds = self.facts, self._proxy_login
        assert creds is not None
        if not hmac.compare_digest(password.encode(), creds.password.encode()):
            return self._refuse(
                Reason.PROXY_PASSWORD_MISMATCH, method="password",
                detail=f"{f.via}the password is not the one in the proxy's secret for "
                       f"{f.db_user!r} (IAMAuth DISABLED: the proxy checks it, not the database)",
                hint="log in with the password stored in the proxy's Secrets Manager secret for "
                     "this user (or set IAMAuth REQUIRED and log in with an IAM token)")
        detail = (f"{f.via}the password matches the proxy's secret for {f.db_user!r}; "
                  "logging in with the secret's credentials")
        event = self._auth.record_password_login(db_user=f.db_user, client=f.client, ok=True,
                                                 detail=detail)
        decision = LoginDecision(True, None, detail, None, None, event)
        return LogIn(creds.username, creds.password, decision, repair=False)

    def client_left(self) -> Refuse:
        """The client hung up when asked for its token (libmysqlclient without the cleartext
        plugin does). Raises ``LoginStepError`` if no token was asked for."""
        self._advance("asked", "done")
        return self._refuse(
            Reason.CLEARTEXT_PLUGIN_UNSUPPORTED,
            detail=f"{self.facts.via}the client hung up when asked for its token with "
                   "mysql_clear_password",
            hint=self._engine.cleartext_hint)

    def _refuse(self, reason: Reason, *, detail: str, hint: str | None,
                method: str = "iam") -> Refuse:
        self._state = "done"
        f = self.facts
        return Refuse(self._auth.reject(db_user=f.db_user, client=f.client, reason=reason,
                                        detail=detail, hint=hint, method=method))

    def _advance(self, expected: str, new: str) -> None:
        if self._state != expected:
            raise LoginStepError(f"login step is {self._state}, not {expected}")
        self._state = new
