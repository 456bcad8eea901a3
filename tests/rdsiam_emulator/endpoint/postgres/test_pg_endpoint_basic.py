"""The PostgreSQL endpoint with psycopg 3 over real TLS against a real PostgreSQL 15."""

from __future__ import annotations

import psycopg
import pytest

from rdsiam_emulator.reasons import Reason


def test_iam_login_runs_as_the_db_user(endpoint) -> None:
    user = endpoint.iam_user()
    token = endpoint.token(user)
    with psycopg.connect(endpoint.conninfo(user, token, application_name="myapp")) as conn:
        row = conn.execute("select current_user, session_user, current_setting('application_name'),"
                           " current_database()").fetchone()
        assert conn.pgconn.ssl_in_use
    assert row == (user, user, "myapp", "app")
    event = endpoint.events.all()[-1]
    assert (event.db_user, event.outcome, event.method, event.tls) == (user, "allow", "iam", True)


def test_wrong_token_gets_pam_error(endpoint) -> None:
    user = endpoint.iam_user()
    token = endpoint.token(user, port=endpoint.port + 1)
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(endpoint.conninfo(user, token))
    assert f'FATAL:  PAM authentication failed for user "{user}"' in str(err.value)
    event = endpoint.events.all()[-1]
    assert event.reason == Reason.HOST_MISMATCH


def test_password_user_scram_is_relayed(endpoint) -> None:
    user, password = endpoint.password_user()
    with psycopg.connect(endpoint.conninfo(user, password, dbname="postgres")) as conn:
        assert conn.execute("select current_user").fetchone() == (user,)
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(endpoint.conninfo(user, "wrong", dbname="postgres"))
    assert f'password authentication failed for user "{user}"' in str(err.value)
