"""RDS Proxy as a front door: its auth rules and its own wire texts, no I/O.

A proxy endpoint is the same PostgreSQL/MySQL endpoint machinery as an instance's, driven by a
``ProxyDoor``: the login step (``auth.login.LoginStep(door=...)``) asks the door which rule
applies to a DB user, and the endpoint asks it what to send for a refusal. The rules, from the
RDS Proxy guide (docs/rds-proxy.md has the sources):

* ``RequireTLS``: a client without TLS is refused before anything else
  (``proxy_tls_required``);
* ``DefaultAuthScheme=NONE`` (standard): the DB user must be the username of one of the proxy's
  secrets (``proxy_no_credentials`` otherwise). That secret's ``IAMAuth`` decides:
  ``REQUIRED``: the client sends an IAM token signed for the proxy endpoint (resource
  ``dbuser:prx-…/<user>``), then the proxy logs in with the secret's username and password;
  ``DISABLED``: the client sends its password in clear (the endpoint asks as for a token), the
  proxy compares it with the secret's (``proxy_password_mismatch``), then logs in with the
  secret's username and password;
* ``DefaultAuthScheme=IAM_AUTH`` (end-to-end IAM, no secrets): the client sends a token for the
  proxy, and the proxy's role (``RoleArn``) must itself be allowed ``rds-db:connect`` on the
  **database's** resource (``dbuser:db-…/<user>``); the proxy then logs in as that IAM user.

Secrets and the role's policies are read through injected callables (moto's state in
``proxies``), so this module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from rdsiam_emulator.auth.credentials import ResolvedCredential
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import ParsedToken
from rdsiam_emulator.auth.verifier import Authorizer
from rdsiam_emulator.engines import EngineName
from rdsiam_emulator.reasons import Reason, Rejection

IamAuthMode = Literal["REQUIRED", "DISABLED"]
"""``UserAuthConfig.IAMAuth`` values a PostgreSQL/MySQL proxy accepts (``ENABLED`` is SQL
Server only)."""
IAM_AUTH_MODES: tuple[IamAuthMode, ...] = get_args(IamAuthMode)
AuthScheme = Literal["NONE", "IAM_AUTH"]
"""``DBProxy.DefaultAuthScheme``."""
AUTH_SCHEMES: tuple[AuthScheme, ...] = get_args(AuthScheme)


@dataclass(frozen=True, slots=True)
class ProxyAuth:
    """One ``Auth`` entry of a proxy: a Secrets Manager secret and its ``IAMAuth`` mode."""

    secret_arn: str
    iam_auth: IamAuthMode = "DISABLED"
    description: str = ""


@dataclass(frozen=True, slots=True)
class SecretCredentials:
    """A proxy secret's value: the database username and password."""

    username: str
    password: str = field(repr=False)


SecretReader = Callable[[str], SecretCredentials]
"""Secret ARN → its credentials. Raises ``LookupError`` (with a sentence) when the secret is
missing or its value is not ``{"username": ..., "password": ...}``."""
RoleCheck = Callable[[str, str, datetime], Rejection | None]
"""(role ARN, dbuser ARN, now) → None when the role may ``rds-db:connect`` there, else the
rejection (reason ``not_authorized``/``explicit_deny``, with the evaluator's hint)."""


@dataclass(frozen=True, slots=True)
class ProxyWire:
    """What the proxy sends for one refusal: PostgreSQL uses ``sqlstate``/``message``; MySQL
    ``code``/``sqlstate``/``message`` (an ERR packet)."""

    code: int
    sqlstate: str
    message: str


_PG_IAM_FAILED = ('IAM authentication failed for user "{user}". Check the IAM token for this '
                  "user and try again.")
_PG_TEXTS: Mapping[Reason, tuple[str, str]] = {
    Reason.PROXY_TLS_REQUIRED: ("28000", "This RDS Proxy requires TLS connections."),
    Reason.TLS_REQUIRED: ("28000", "IAM authentication is allowed only with SSL connections."),
    Reason.THROTTLED: ("53300", "The IAM authentication failed because of too many competing "
                                "requests."),
    Reason.PROXY_NO_CREDENTIALS: ("28000", "This RDS proxy has no credentials for the role "
                                           "{user}. Check the credentials for this role and try "
                                           "again."),
    Reason.PROXY_SECRET_REFUSED: ("28000", "This RDS proxy has no credentials for the role "
                                           "{user}. Check the credentials for this role and try "
                                           "again."),
    Reason.PROXY_PASSWORD_MISMATCH: ("28P01", "This RDS proxy has no credentials for the role "
                                              "{user}. Check the credentials for this role and "
                                              "try again."),
    Reason.PROXY_ROLE_NOT_AUTHORIZED: ("28000", "The IAM authentication failed for the role "
                                                "{user}. Check the IAM token for this role and "
                                                "try again."),
}
"""PostgreSQL texts from the RDS Proxy troubleshooting guide; the SQLSTATEs are not documented
(chosen: 28000, 53300 for the rate limit, 28P01 for a wrong password; docs/rds-proxy.md)."""
_MY_DENIED = ProxyWire(1045, "28000", "Access denied for user '{user}'@'%' (using password: YES)")
_MY_TEXTS: Mapping[Reason, ProxyWire] = {
    Reason.PROXY_TLS_REQUIRED: ProxyWire(3159, "HY000", "This RDS Proxy requires TLS connections."),
    Reason.THROTTLED: ProxyWire(1040, "HY000", "IAM authentication rate limit exceeded"),
}


@dataclass(frozen=True)
class ProxyDoor:
    """One proxy's auth configuration and the rules above; immutable (a changed proxy is a new
    door)."""

    name: str
    engine: EngineName
    auth: tuple[ProxyAuth, ...]
    default_auth_scheme: AuthScheme
    role_arn: str
    require_tls: bool
    target: Endpoint
    """The database behind the proxy (its resource id is the end-to-end IAM resource)."""
    read_secret: SecretReader = field(repr=False)
    check_role: RoleCheck = field(repr=False)
    target_iam_enabled: Callable[[], bool] = field(repr=False, default=lambda: True)

    def __post_init__(self) -> None:
        if self.default_auth_scheme not in AUTH_SCHEMES:
            raise ValueError(f"DefaultAuthScheme must be one of {AUTH_SCHEMES}, "
                             f"not {self.default_auth_scheme!r}")
        for entry in self.auth:
            if entry.iam_auth not in IAM_AUTH_MODES:
                raise ValueError(f"IAMAuth must be one of {IAM_AUTH_MODES} for a "
                                 f"{self.engine} proxy, not {entry.iam_auth!r}")

    @property
    def end_to_end(self) -> bool:
        """``DefaultAuthScheme=IAM_AUTH``: no secrets, the proxy's role logs in with IAM."""
        return self.default_auth_scheme == "IAM_AUTH"

    def secret_for(self, db_user: str) -> tuple[ProxyAuth, SecretCredentials] | Rejection:
        """The ``Auth`` entry whose secret's username is ``db_user`` (case-sensitive), with its
        credentials; else the ``proxy_no_credentials`` rejection naming what was looked at."""
        unreadable: list[str] = []
        for entry in self.auth:
            try:
                creds = self.read_secret(entry.secret_arn)
            except LookupError as exc:
                unreadable.append(f"{entry.secret_arn}: {exc}")
                continue
            if creds.username == db_user:
                return entry, creds
        seen = f" (unreadable: {'; '.join(unreadable)})" if unreadable else ""
        return Rejection(
            Reason.PROXY_NO_CREDENTIALS,
            f"none of the proxy's {len(self.auth)} secret(s) has username {db_user!r}{seen}",
            "add a Secrets Manager secret {\"username\": ..., \"password\": ...} for this DB "
            "user to the proxy's Auth, or log in as a user that has one",
        )

    def check_target_role(self, db_user: str, now: datetime) -> Rejection | None:
        """End-to-end IAM: None when the proxy's role may ``rds-db:connect`` to the database as
        ``db_user``; else ``proxy_role_not_authorized`` with the evaluator's hint."""
        resource = self.target.db_user_arn(db_user)
        if resource is None:
            return Rejection(Reason.INTERNAL_ERROR, "the target has no resource id",
                             "register the target instance in moto first")
        refused = self.check_role(self.role_arn, resource, now)
        if refused is None:
            return None
        return Rejection(
            Reason.PROXY_ROLE_NOT_AUTHORIZED,
            f"end-to-end IAM: the proxy's role {self.role_arn} may not rds-db:connect on "
            f"{resource}: {refused.detail}",
            f"allow the proxy's role rds-db:connect on {resource} (the database's resource id, "
            f"not the proxy's prx- id); {refused.hint or ''}".rstrip("; "),
        )

    def wire(self, reason: Reason, user: str) -> ProxyWire | None:
        """What the proxy sends for ``reason``; None: what the instance endpoint would send
        (MySQL's 1251 for a client without plugin auth)."""
        if self.engine == "postgres":
            sqlstate, text = _PG_TEXTS.get(reason, ("28000", _PG_IAM_FAILED))
            return ProxyWire(0, sqlstate, text.format(user=user))
        if reason is Reason.CLEARTEXT_PLUGIN_UNSUPPORTED:
            return None
        found = _MY_TEXTS.get(reason, _MY_DENIED)
        return ProxyWire(found.code, found.sqlstate, found.message.format(user=user))


class ProxyAuthorizer:
    """The proxy's ``verifier.Authorizer``: the client's policy on the proxy's resource
    (``prx-…``) by ``inner``, then, for end-to-end IAM, the proxy role's on the database's."""

    def __init__(self, inner: Authorizer | None, door: ProxyDoor) -> None:
        self.inner = inner
        self.door = door

    def authorize(self, *, credential: ResolvedCredential, token: ParsedToken,
                  endpoint: Endpoint, db_user: str, now: datetime) -> Rejection | None:
        """``verifier.Authorizer``; see the class docstring."""
        if self.inner is not None:
            refused = self.inner.authorize(credential=credential, token=token,
                                           endpoint=endpoint, db_user=db_user, now=now)
            if refused is not None:
                return refused
        if self.door.end_to_end:
            return self.door.check_target_role(db_user, now)
        return None

    def last_skipped(self) -> tuple[str, ...]:
        """The inner authorizer's ``last_skipped`` (what an allow could not evaluate)."""
        last = getattr(self.inner, "last_skipped", None)
        parts: tuple[str, ...] = last() if callable(last) else ()
        return parts

    def skipped_parts(self, **kwargs: object) -> tuple[str, ...]:
        """The inner authorizer's ``skipped_parts`` (``token explain``)."""
        parts = getattr(self.inner, "skipped_parts", None)
        found: tuple[str, ...] = parts(**kwargs) if callable(parts) else ()
        return found
