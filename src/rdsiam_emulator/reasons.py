"""Stable reason codes for every rejection, and what RDS would call each one.

Reason codes are the product's public vocabulary (docs/reason-codes.md): they never change meaning.
``rds_error_code`` is what RDS writes in its ``iam-db-auth-error`` log; engine-level rejections that
happen before IAM is consulted (TLS, not an IAM user) have none.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Why a connection attempt was refused. Values are stable strings."""

    MALFORMED_TOKEN = "malformed_token"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    WRONG_ACTION = "wrong_action"
    WRONG_SERVICE = "wrong_service"
    REGION_MISMATCH = "region_mismatch"
    SCOPE_DATE_MISMATCH = "scope_date_mismatch"
    EXPIRES_OUT_OF_RANGE = "expires_out_of_range"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    HOST_MISMATCH = "host_mismatch"
    DB_USER_MISMATCH = "db_user_mismatch"
    UNKNOWN_ACCESS_KEY = "unknown_access_key"
    INACTIVE_ACCESS_KEY = "inactive_access_key"
    CREDENTIALS_EXPIRED = "credentials_expired"
    SESSION_TOKEN_MISMATCH = "session_token_mismatch"
    SIGNATURE_MISMATCH = "signature_mismatch"
    NOT_AUTHORIZED = "not_authorized"
    EXPLICIT_DENY = "explicit_deny"
    NOT_IAM_USER = "not_iam_user"
    TLS_REQUIRED = "tls_required"
    IAM_DISABLED = "iam_disabled"
    THROTTLED = "throttled"
    INTERNAL_ERROR = "internal_error"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    CLEARTEXT_PLUGIN_UNSUPPORTED = "cleartext_plugin_unsupported"
    REPLICATION_NOT_ALLOWED = "replication_not_allowed"
    PASSWORD_MISMATCH = "password_mismatch"
    UNKNOWN_USER = "unknown_user"
    RESERVED_USER = "reserved_user"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    BACKEND_REFUSED = "backend_refused"
    AUTH_SWITCH_UNSUPPORTED = "auth_switch_unsupported"
    PROXY_TLS_REQUIRED = "proxy_tls_required"
    PROXY_NO_CREDENTIALS = "proxy_no_credentials"
    PROXY_ROLE_NOT_AUTHORIZED = "proxy_role_not_authorized"
    PROXY_SECRET_REFUSED = "proxy_secret_refused"
    PROXY_PASSWORD_MISMATCH = "proxy_password_mismatch"
    IAM_ACCOUNT_MISSING = "iam_account_missing"


INVALID_TOKEN = "InvalidToken"
EXPIRED_TOKEN = "ExpiredToken"
NOT_AUTHORIZED = "NotAuthorized"
THROTTLING = "ThrottlingException"
INTERNAL = "InternalError"


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    """Static facts about one reason code."""

    reason: Reason
    rds_error_code: str | None
    http_status: int | None
    stage: str
    summary: str


def _info(
    reason: Reason, code: str | None, status: int | None, stage: str, summary: str
) -> ReasonInfo:
    return ReasonInfo(reason, code, status, stage, summary)


REASONS: dict[Reason, ReasonInfo] = {
    i.reason: i
    for i in (
        _info(Reason.MALFORMED_TOKEN, INVALID_TOKEN, 400, "format",
              "the password is not a well-formed RDS IAM token"),
        _info(Reason.UNSUPPORTED_ALGORITHM, INVALID_TOKEN, 400, "format",
              "X-Amz-Algorithm is not AWS4-HMAC-SHA256"),
        _info(Reason.WRONG_ACTION, INVALID_TOKEN, 400, "format", "Action is not 'connect'"),
        _info(Reason.WRONG_SERVICE, INVALID_TOKEN, 400, "scope",
              "the credential scope names a service other than rds-db"),
        _info(Reason.REGION_MISMATCH, INVALID_TOKEN, 400, "scope",
              "the credential scope region is not the instance's region"),
        _info(Reason.SCOPE_DATE_MISMATCH, INVALID_TOKEN, 400, "scope",
              "the credential scope date is not the date of X-Amz-Date"),
        _info(Reason.EXPIRES_OUT_OF_RANGE, INVALID_TOKEN, 400, "time",
              "X-Amz-Expires is outside 0..900 seconds"),
        _info(Reason.NOT_YET_VALID, INVALID_TOKEN, 400, "time",
              "X-Amz-Date lies further in the future than the allowed clock skew"),
        _info(Reason.EXPIRED, EXPIRED_TOKEN, 400, "time",
              "the token's lifetime (X-Amz-Date + X-Amz-Expires) has passed"),
        _info(Reason.HOST_MISMATCH, INVALID_TOKEN, 400, "binding",
              "the token was signed for a different host or port than the endpoint"),
        _info(Reason.DB_USER_MISMATCH, INVALID_TOKEN, 400, "binding",
              "DBUser in the token differs from the login user name"),
        _info(Reason.UNKNOWN_ACCESS_KEY, INVALID_TOKEN, 400, "credentials",
              "the access key id is not known to IAM/STS"),
        _info(Reason.INACTIVE_ACCESS_KEY, INVALID_TOKEN, 400, "credentials",
              "the access key exists but is Inactive"),
        _info(Reason.CREDENTIALS_EXPIRED, EXPIRED_TOKEN, 400, "credentials",
              "the temporary credentials that signed the token have expired"),
        _info(Reason.SESSION_TOKEN_MISMATCH, INVALID_TOKEN, 400, "credentials",
              "X-Amz-Security-Token is missing, empty or not the session's token"),
        _info(Reason.SIGNATURE_MISMATCH, INVALID_TOKEN, 400, "signature",
              "the SigV4 signature does not match"),
        _info(Reason.NOT_AUTHORIZED, NOT_AUTHORIZED, 403, "authorization",
              "no IAM policy statement allows rds-db:connect on this dbuser ARN"),
        _info(Reason.EXPLICIT_DENY, NOT_AUTHORIZED, 403, "authorization",
              "an IAM policy statement explicitly denies rds-db:connect"),
        _info(Reason.NOT_IAM_USER, None, None, "engine",
              "the DB user is not IAM-enabled (no rds_iam / AWSAuthenticationPlugin)"),
        _info(Reason.TLS_REQUIRED, None, None, "engine", "IAM logins are accepted over TLS only"),
        _info(Reason.IAM_DISABLED, None, None, "engine",
              "IAM database authentication is not enabled on the instance"),
        _info(Reason.THROTTLED, THROTTLING, 429, "throttling",
              "too many new IAM connections per second"),
        _info(Reason.INTERNAL_ERROR, INTERNAL, 500, "internal",
              "the emulator failed while deciding (a bug: please report it)"),
        _info(Reason.TOO_MANY_CONNECTIONS, None, None, "engine",
              "the database (or the endpoint in front of it) has no room for another connection"
              " (PostgreSQL 53300, MySQL 1040)"),
        _info(Reason.CLEARTEXT_PLUGIN_UNSUPPORTED, None, None, "engine",
              "the MySQL client cannot send its token with mysql_clear_password"),
        _info(Reason.REPLICATION_NOT_ALLOWED, None, None, "engine",
              "IAM users cannot open replication connections (no pam line for replication)"),
        _info(Reason.PASSWORD_MISMATCH, None, None, "engine",
              "the server refused the password of a password (non-IAM) login"),
        _info(Reason.UNKNOWN_USER, None, None, "engine", "no database user of that name exists"),
        _info(Reason.RESERVED_USER, None, None, "engine",
              "the emulator's hidden admin account cannot log in through the endpoint"),
        _info(Reason.BACKEND_UNAVAILABLE, None, None, "engine",
              "the real database server cannot be reached"),
        _info(Reason.BACKEND_REFUSED, None, None, "engine",
              "the real database server refused the session for a reason of its own"
              " (no such database, role may not log in, ...)"),
        _info(Reason.AUTH_SWITCH_UNSUPPORTED, None, None, "engine",
              "MySQL: a password client without CLIENT_PLUGIN_AUTH got the endpoint's own greeting"
              " and cannot be asked again with the backend's"),
        _info(Reason.PROXY_TLS_REQUIRED, None, None, "engine",
              "RDS Proxy with RequireTLS: the client connected without TLS"),
        _info(Reason.PROXY_NO_CREDENTIALS, None, None, "engine",
              "RDS Proxy: no secret of the proxy has this DB user's username"),
        _info(Reason.PROXY_ROLE_NOT_AUTHORIZED, NOT_AUTHORIZED, 403, "authorization",
              "RDS Proxy end-to-end IAM: the proxy's role may not rds-db:connect to the database"
              " as this user"),
        _info(Reason.PROXY_SECRET_REFUSED, None, None, "engine",
              "RDS Proxy: the database refused the username/password of the proxy's secret"),
        _info(Reason.PROXY_PASSWORD_MISMATCH, None, None, "engine",
              "RDS Proxy, IAMAuth DISABLED: the client's password is not its secret's password"),
        _info(Reason.IAM_ACCOUNT_MISSING, None, None, "engine",
              "MySQL: the catalog lists the user as IAM but the server has no account of exactly"
              " that name (dropped or renamed where the endpoint does not look)"),
    )
}

CHECK_ORDER: tuple[str, ...] = (
    "format", "scope", "time", "binding", "credentials", "signature", "authorization",
)
"""The order in which failures are reported: the first failing stage wins."""


def rds_error_code(reason: Reason) -> str | None:
    """The error code RDS writes to its ``iam-db-auth-error`` log for ``reason``, or None when the
    refusal is the engine's own (no RDS log line). Raises ``KeyError`` for a reason not in
    REASONS.
    """
    return REASONS[reason].rds_error_code


@dataclass(frozen=True, slots=True)
class Rejection:
    """One failed check: the stable reason, one sentence of what did not match, the likely fix."""

    reason: Reason
    detail: str
    hint: str | None = None

    @property
    def rds_error_code(self) -> str | None:
        """The RDS error code of ``reason`` (see :func:`rds_error_code`)."""
        return REASONS[self.reason].rds_error_code
