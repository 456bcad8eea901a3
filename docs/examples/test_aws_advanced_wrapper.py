"""The AWS Advanced Python Wrapper's IAM plugin: it generates the token itself, from the default
credential chain and the region in the RDS-style host name."""

import psycopg
from aws_advanced_python_wrapper import AwsWrapperConnection


def test_wrapper_iam_plugin(rds_iam_db, monkeypatch):
    rds_iam_db.create_iam_db_user("app_user")
    creds = rds_iam_db.iam_session("app_user").get_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)      # the wrapper's boto3 Session
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)  # reads the default chain
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    conn = AwsWrapperConnection.connect(
        psycopg.Connection.connect,
        f"host={rds_iam_db.host} port={rds_iam_db.port} dbname={rds_iam_db.dbname} "
        f"user=app_user sslmode=verify-full sslrootcert={rds_iam_db.ca_bundle}",
        plugins="iam",
        wrapper_dialect="pg",
    )
    try:
        cur = conn.cursor()
        cur.execute("select current_user")
        assert cur.fetchone() == ("app_user",)
    finally:
        conn.close()
    assert [e.outcome for e in rds_iam_db.auth_events if e.method == "iam"] == ["allow"]
