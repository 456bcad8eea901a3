# ruff: noqa: F811 - pytest fixtures imported from native_clients are used as arguments
"""Go and Java applications through the PostgreSQL endpoint, as they run against RDS: Go with its
own token (AWS SDK for Go v1 ``rdsutils`` and v2 ``feature/rds/auth``) over lib/pq
``sslmode=verify-full``; Java with pgjdbc ``sslmode=verify-full`` and a token made here. Both
reach the RDS-style name (the only name on the certificate) through their own resolution: a Go
dialer, a JVM hosts file. Refusals arrive as RDS's text through each driver."""

from __future__ import annotations

from typing import Any

import pytest
from pg_env import AKID, RDS_HOST, REGION, SECRET

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


def _go(go_client: GoClient, endpoint, user: str, sdk: str, *, run: str = "ok",
        **extra: str) -> Any:
    env = {"MODE": "connect", "SDK": sdk, "ENGINE": "postgres", "HOST": RDS_HOST,
           "ADDRESS": "127.0.0.1", "PORT": str(endpoint.port), "DBUSER": user,
           "CA": str(endpoint.ca.bundle_path), "REGION": REGION, "AWS_ACCESS_KEY_ID": AKID,
           "AWS_SECRET_ACCESS_KEY": SECRET, **extra}
    return go_client.run_failing(**env) if run == "failing" else go_client.run(**env)


def _refused(user: str) -> dict[str, object]:
    return {"ok": False, "code": "28000", "message": f'PAM authentication failed for user "{user}"'}


@pytest.mark.parametrize("sdk", ["v1", "v2"])
def test_go_sdk_token_over_lib_pq(go_client: GoClient, endpoint, sdk: str) -> None:
    user = endpoint.iam_user()
    assert _go(go_client, endpoint, user, sdk) == {"ok": True, "user": user}
    event = endpoint.events.all()[-1]
    assert event.ok and event.db_user == user and event.method == "iam"

    token = str(_go(go_client, endpoint, user, sdk, MODE="token")["token"])
    assert token.startswith(f"{RDS_HOST}:{endpoint.port}?Action=connect&DBUser={user}&")
    assert _go(go_client, endpoint, user, sdk, PASSWORD=tampered(token)) == _refused(user)
    assert endpoint.events.all()[-1].reason is Reason.SIGNATURE_MISMATCH


def test_go_lib_pq_expired_token(go_client: GoClient, endpoint) -> None:
    user = endpoint.iam_user()
    old = expired_token(host=RDS_HOST, port=endpoint.port, user=user, region=REGION, akid=AKID,
                        secret=SECRET)
    assert _go(go_client, endpoint, user, "v1", PASSWORD=old) == _refused(user)
    assert endpoint.events.all()[-1].reason is Reason.EXPIRED


def test_java_pgjdbc_verify_full(java_client: JavaClient, endpoint) -> None:
    user = endpoint.iam_user()

    def run(password: str) -> dict[str, object]:
        return java_client.run(engine="postgres", host=RDS_HOST, address="127.0.0.1",
                               port=endpoint.port, user=user, ca=str(endpoint.ca.bundle_path),
                               password=password)

    token = endpoint.token(user)
    assert run(token) == {"ok": True, "user": user}
    assert endpoint.events.all()[-1].ok

    refused = {"ok": False, "code": "28000", "errno": 0,
               "message": f'PAM authentication failed for user "{user}"'}
    assert run(tampered(token)) == refused
    assert endpoint.events.all()[-1].reason is Reason.SIGNATURE_MISMATCH
    assert run(expired_token(host=RDS_HOST, port=endpoint.port, user=user, region=REGION,
                             akid=AKID, secret=SECRET)) == refused
    assert endpoint.events.all()[-1].reason is Reason.EXPIRED


def test_go_and_java_verify_the_host_name(go_client: GoClient, java_client: JavaClient,
                                          endpoint) -> None:
    """verify-full is in force: the same endpoint under a name its certificate lacks is refused
    by lib/pq and pgjdbc before any password is sent."""
    user = endpoint.iam_user()
    before = len(endpoint.events.all())
    err = _go(go_client, endpoint, user, "v1", HOST=OTHER_NAME, run="failing")
    assert "x509: certificate is valid for" in err and OTHER_NAME in err
    answer = java_client.run(engine="postgres", host=OTHER_NAME, address="127.0.0.1",
                             port=endpoint.port, user=user, ca=str(endpoint.ca.bundle_path),
                             password="unused")
    assert answer["ok"] is False and answer["code"] == "08006", answer
    assert f"The hostname {OTHER_NAME} could not be verified" in str(answer["message"])
    assert len(endpoint.events.all()) == before
