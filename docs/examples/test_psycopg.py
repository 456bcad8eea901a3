"""psycopg 3 with an IAM token, verified TLS, and a denied login explained."""

import psycopg
import pytest


def test_app_user_connects_with_a_token(rds_iam_db):
    rds_iam_db.create_iam_db_user("app_user")        # CREATE USER + GRANT rds_iam, like on RDS
    session = rds_iam_db.iam_session("app_user")     # IAM user allowed rds-db:connect as app_user
    token = session.client("rds").generate_db_auth_token(
        DBHostname=rds_iam_db.host, Port=rds_iam_db.port, DBUsername="app_user")
    with psycopg.connect(host=rds_iam_db.host, port=rds_iam_db.port, user="app_user",
                         password=token, dbname=rds_iam_db.dbname, sslmode="verify-full",
                         sslrootcert=rds_iam_db.ca_bundle) as conn:
        assert conn.execute("select current_user").fetchone() == ("app_user",)


def test_wrong_user_is_refused_like_rds(rds_iam_db):
    rds_iam_db.create_iam_db_user("app_user")
    session = rds_iam_db.iam_session("reporting")    # allowed as "reporting", not "app_user"
    token = session.client("rds").generate_db_auth_token(
        DBHostname=rds_iam_db.host, Port=rds_iam_db.port, DBUsername="app_user")
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        psycopg.connect(**rds_iam_db.connect_kwargs("app_user", token))
    [event] = [e for e in rds_iam_db.auth_events if e.method == "iam"]
    assert event.reason == "not_authorized"          # the why RDS never tells the client
