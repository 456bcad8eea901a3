"""PyMySQL against the MySQL-family instance: the RDS DDL, the cleartext plugin, TLS."""

import pymysql
import pytest


@pytest.mark.parametrize("rds_iam_db", ["mysql"], indirect=True)
def test_mysql_iam_login(rds_iam_db):
    master = pymysql.connect(host=rds_iam_db.host, port=rds_iam_db.port,
                             user=rds_iam_db.master_username,
                             password=rds_iam_db.master_password,
                             ssl={"ca": rds_iam_db.ca_bundle}, autocommit=True)
    with master.cursor() as cur:
        cur.execute("CREATE USER 'app_user'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
        cur.execute(f"GRANT ALL ON `{rds_iam_db.dbname}`.* TO 'app_user'@'%'")
    master.close()

    session = rds_iam_db.iam_session("app_user")
    token = session.client("rds").generate_db_auth_token(
        DBHostname=rds_iam_db.host, Port=rds_iam_db.port, DBUsername="app_user")
    conn = pymysql.connect(host=rds_iam_db.host, port=rds_iam_db.port, user="app_user",
                           password=token, database=rds_iam_db.dbname,
                           ssl={"ca": rds_iam_db.ca_bundle})
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == ("app_user@%",)
    conn.close()
