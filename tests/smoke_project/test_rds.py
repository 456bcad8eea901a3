import psycopg
import pymysql
import pytest


def test_postgres_login_with_an_iam_token(rds_iam_db):
    rds_iam_db.create_iam_db_user("app")
    token = rds_iam_db.generate_token("app", rds_iam_db.iam_session("app"))
    with psycopg.connect(**rds_iam_db.connect_kwargs("app", token)) as conn:
        assert conn.execute("select current_user").fetchone() == ("app",)
    assert [e.outcome for e in rds_iam_db.auth_events if e.method == "iam"] == ["allow"]


@pytest.mark.parametrize("rds_iam_db", ["mysql"], indirect=True)
def test_mysql_login_with_an_iam_token(rds_iam_db):
    rds_iam_db.create_iam_db_user("app")
    token = rds_iam_db.generate_token("app", rds_iam_db.iam_session("app"))
    conn = pymysql.connect(**rds_iam_db.connect_kwargs("app", token))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0].split("@")[0] == "app"
    finally:
        conn.close()
    assert [e.outcome for e in rds_iam_db.auth_events if e.method == "iam"] == ["allow"]
