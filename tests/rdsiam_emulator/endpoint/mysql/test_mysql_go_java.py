# ruff: noqa: F811 - pytest fixtures imported from mysql_env/native_clients are used as arguments
"""Go and Java applications through the MySQL endpoint (MariaDB backend), as they run against RDS:
Go with its own token (AWS SDK for Go v1 ``rdsutils`` and v2 ``feature/rds/auth``) over
go-sql-driver/mysql (``allowCleartextPasswords``, a registered TLS config with the CA); Java with
MariaDB Connector/J (TLS verifying the CA and host name, cleartext as the server asks) and a token
made here. Both reach the RDS-style name through their own resolution (a Go dialer, a JVM hosts
file). Refusals arrive as RDS's 1045 text through each driver."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mysql_env import (  # noqa: F401
    AKID,
    RDS_HOST,
    REGION,
    SECRET,
    MyEnv,
    emulator_ca,
    mariadb,
    myenv_rds_name,
)
from test_mysql_endpoint import make_iam_user

from native_clients import (  # noqa: F401
    OTHER_NAME,
    GoClient,
    JavaClient,
    expired_token,
    go_client,
    java_client,
    tampered,
)
from rdsiam_emulator.reasons import Reason

pytestmark = pytest.mark.slow


def _go(go_client: GoClient, env: MyEnv, user: str, sdk: str, *, run: str = "ok",
        **extra: str) -> Any:
    variables = {"MODE": "connect", "SDK": sdk, "ENGINE": "mysql", "HOST": RDS_HOST,
                 "ADDRESS": "127.0.0.1", "PORT": str(env.port), "DBUSER": user,
                 "CA": env.ca_file, "REGION": REGION, "AWS_ACCESS_KEY_ID": AKID,
                 "AWS_SECRET_ACCESS_KEY": SECRET, **extra}
    if run == "failing":
        return go_client.run_failing(**variables)
    return go_client.run(**variables)


def _denied(user: str) -> str:
    return f"Access denied for user '{user}'@'127.0.0.1' (using password: YES)"


def check_go_sdk_token(go_client: GoClient, env: MyEnv, sdk: str) -> None:
    """The Go program's own ``sdk`` token logs in; the same token tampered gets RDS's 1045
    (also run against Oracle MySQL, test_oracle_mysql.py)."""
    user = make_iam_user(env)
    assert _go(go_client, env, user, sdk) == {"ok": True, "user": f"{user}@%"}
    event = env.events.all()[-1]
    assert event.ok and event.db_user == user and event.method == "iam"

    token = str(_go(go_client, env, user, sdk, MODE="token")["token"])
    assert token.startswith(f"{RDS_HOST}:{env.port}?Action=connect&DBUser={user}&")
    assert _go(go_client, env, user, sdk, PASSWORD=tampered(token)) == {
        "ok": False, "code": "1045", "message": _denied(user)}
    assert env.events.all()[-1].reason is Reason.SIGNATURE_MISMATCH


@pytest.mark.parametrize("sdk", ["v1", "v2"])
def test_go_sdk_token_over_go_sql_driver(go_client: GoClient, myenv_rds_name: MyEnv,
                                         sdk: str) -> None:
    check_go_sdk_token(go_client, myenv_rds_name, sdk)


def test_go_sql_driver_expired_token(go_client: GoClient, myenv_rds_name: MyEnv) -> None:
    env = myenv_rds_name
    user = make_iam_user(env)
    old = expired_token(host=RDS_HOST, port=env.port, user=user, region=REGION, akid=AKID,
                        secret=SECRET)
    assert _go(go_client, env, user, "v2", PASSWORD=old) == {
        "ok": False, "code": "1045", "message": _denied(user)}
    assert env.events.all()[-1].reason is Reason.EXPIRED


def check_java_connector_j(java_client: JavaClient, env: MyEnv) -> None:
    """A token made here logs in through MariaDB Connector/J; tampered and expired ones get
    RDS's 1045 (also run against Oracle MySQL, test_oracle_mysql.py)."""
    user = make_iam_user(env)

    def run(password: str) -> dict[str, object]:
        return java_client.run(engine="mysql", host=RDS_HOST, address="127.0.0.1",
                               port=env.port, user=user, ca=env.ca_file, password=password)

    token = env.token(user, host=RDS_HOST)
    assert run(token) == {"ok": True, "user": f"{user}@%"}
    event = env.events.all()[-1]
    assert event.ok and event.method == "iam"

    refused = run(tampered(token))
    assert env.events.all()[-1].reason is Reason.SIGNATURE_MISMATCH
    old = run(expired_token(host=RDS_HOST, port=env.port, user=user, region=REGION, akid=AKID,
                            secret=SECRET))
    assert env.events.all()[-1].reason is Reason.EXPIRED
    for answer in (refused, old):
        assert answer["code"] == "28000" and answer["errno"] == 1045
        # Connector/J wraps the server's text: address, "(conn=<id>) ", then a charset hint
        assert re.search(rf"\(conn=\d+\) {re.escape(_denied(user))}\n", str(answer["message"])), \
            answer["message"]


def test_java_mariadb_connector_j(java_client: JavaClient, myenv_rds_name: MyEnv) -> None:
    check_java_connector_j(java_client, myenv_rds_name)


def test_go_and_java_verify_the_host_name(go_client: GoClient, java_client: JavaClient,
                                          myenv_rds_name: MyEnv) -> None:
    """Both drivers check the certificate's name: the same endpoint under a name it lacks is
    refused before the token is sent."""
    env = myenv_rds_name
    user = make_iam_user(env)
    before = len(env.events.all())
    err = _go(go_client, env, user, "v1", HOST=OTHER_NAME, run="failing")
    assert "x509: certificate is valid for" in err and OTHER_NAME in err
    answer = java_client.run(engine="mysql", host=OTHER_NAME, address="127.0.0.1",
                             port=env.port, user=user, ca=env.ca_file, password="unused")
    assert answer["ok"] is False and answer["code"] == "08006", answer
    assert f'SSL hostname verification failed : DNS host "{OTHER_NAME}"' in str(answer["message"])
    assert len(env.events.all()) == before
