"""Security properties on the wire (docs/security.md): a frozen application clock, the master
user and tokens, IAM users and passwords."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from freezegun import freeze_time

from rdsiam_emulator.reasons import Reason


def test_token_replayed_after_expiry_is_refused_while_the_app_froze_its_clock(endpoint) -> None:
    """The app freezes time at the moment it signed (16 minutes ago): to the app the token is
    fresh, to RDS it expired. The endpoint runs in the same process, so freezegun's patches reach
    it; its clock must not follow them."""
    user = endpoint.iam_user()
    signed = datetime.now(UTC) - timedelta(minutes=16)
    with freeze_time(signed, real_asyncio=True):
        token = endpoint.token(user)  # botocore signs at the frozen time
        assert signed.strftime("X-Amz-Date=%Y%m%dT%H%M") in token
        with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
            psycopg.connect(endpoint.conninfo(user, token))
    event = endpoint.events.all()[-1]
    assert (event.db_user, event.reason) == (user, Reason.EXPIRED)


def test_master_user_cannot_log_in_with_a_token_unless_granted_iam(endpoint) -> None:
    master, password = endpoint.password_user("master")
    endpoint.server.sql(f"GRANT ALL ON DATABASE app TO {master}")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(endpoint.conninfo(master, endpoint.token(master)))
    assert endpoint.events.all()[-1].reason is Reason.PASSWORD_MISMATCH
    with psycopg.connect(endpoint.conninfo(master, password)) as conn:
        assert conn.execute("select session_user").fetchone() == (master,)


def test_iam_user_cannot_log_in_with_a_password(endpoint) -> None:
    """Neither a password of its own (set behind the endpoint's back) nor anything else that is
    not a token: the endpoint asks for a token and refuses the rest."""
    user = endpoint.iam_user()
    endpoint.server.sql(f"ALTER ROLE {user} PASSWORD 'known-password'")
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        psycopg.connect(endpoint.conninfo(user, "known-password"))
    assert endpoint.events.all()[-1].reason is Reason.MALFORMED_TOKEN


def test_iam_logins_need_tls_unless_explicitly_relaxed(endpoint) -> None:
    user = endpoint.iam_user()
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        psycopg.connect(endpoint.conninfo(user, endpoint.token(user), sslmode="disable"))
    assert endpoint.events.all()[-1].reason is Reason.TLS_REQUIRED
    endpoint.authenticator.require_tls = False  # the plugin's --rdsiam-require-tls=false
    try:
        with psycopg.connect(endpoint.conninfo(user, endpoint.token(user),
                                               sslmode="disable")) as conn:
            assert not conn.pgconn.ssl_in_use
            assert conn.execute("select current_user").fetchone() == (user,)
    finally:
        endpoint.authenticator.require_tls = True
