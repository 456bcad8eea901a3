"""A valid IAM login that the database then refuses (no such database) is recorded as a refusal,
not only as the token's ``allow`` (break-it trial, issue #12 follow-up). Real PostgreSQL, TLS."""

from __future__ import annotations

import psycopg
import pytest

from rdsiam_emulator.reasons import Reason


def test_iam_login_to_a_missing_database_records_the_refusal(endpoint) -> None:
    user = endpoint.iam_user()
    cursor = endpoint.events.mark()
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(endpoint.conninfo(user, endpoint.token(user), dbname="no_such_db"))
    assert 'database "no_such_db" does not exist' in str(err.value)
    allowed, refused = endpoint.events.since(cursor)
    assert (allowed.outcome, allowed.method) == ("allow", "iam")
    assert (refused.outcome, refused.reason, refused.method, refused.db_user) == (
        "deny", Reason.SESSION_REFUSED, "iam", user)
    assert refused.detail is not None and "3D000" in refused.detail
    assert refused.hint is not None and refused.hint.startswith("create the database")
