"""COM_CHANGE_USER from mysql-connector (pure) on a session that logged in with
mysql_clear_password: the connector length-prefixes the token with a length-encoded integer, so
token bytes are taken for the database name and the backend's refusal quotes them ("Incorrect
database name '...'"). No part of the token's signature may reach the events (found by a
break-it review)."""
# ruff: noqa: F811

from __future__ import annotations

import json

import pymysql
import pytest
from mysql_env import MyEnv, emulator_ca, mariadb, myenv, unique  # noqa: F401


def test_change_user_refusal_never_records_the_token_signature(myenv: MyEnv) -> None:
    import mysql.connector

    user = unique("iam")
    mu, mp = myenv.master
    with pymysql.connect(host="localhost", port=myenv.port, user=mu, password=mp,
                         ssl={"ca": myenv.ca_file}) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
        cur.execute(f"GRANT ALL ON app.* TO '{user}'@'%'")
    token = myenv.token(user)
    signature = token.split("X-Amz-Signature=")[1]
    conn = mysql.connector.connect(
        host="localhost", port=myenv.port, user=user, password=token, ssl_ca=myenv.ca_file,
        ssl_verify_cert=True, auth_plugin="mysql_clear_password", use_pure=True, database="app")
    try:
        with pytest.raises(mysql.connector.Error):  # the connector's own framing; RDS refuses too
            conn.cmd_change_user(username=user, password=token, database="app")
    finally:
        conn.close()
    recorded = json.dumps([e.to_dict() for e in myenv.events.all()], default=str)
    assert signature[:16] not in recorded, [e.detail for e in myenv.events.all()][-1]
