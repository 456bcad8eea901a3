# ruff: noqa: F811 - the go_client fixture imported from native_clients is used as an argument
"""The AWS SDK for Go (v1 ``rdsutils.BuildAuthToken``, v2 ``feature/rds/auth.BuildAuthToken``),
built from Debian's packages, prints exactly the hand-built "go" form of tokenkit: same text byte
for byte (parameter order, no ``/`` before ``?``, host as typed, ``:443`` kept in the text) and the
verifier accepts it. The connection tests (tests/rdsiam_emulator/endpoint/*go_java*) send these
tokens through real drivers; this pins the form against the model the other tests rely on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from native_clients import GoClient, go_client  # noqa: F401
from rdsiam_emulator.auth.verifier import verify_token
from tokenkit import ALICE, HOST, REGION, TEMP, Principal, build_token, endpoint, get_param, lookup

CASES = [
    pytest.param(ALICE, HOST, 5432, "app_user", id="static-5432"),
    pytest.param(TEMP, HOST.upper(), 443, "a/b é+c", id="session-443-upper-odd-user"),
    pytest.param(ALICE, HOST, 3306, "admin", id="static-3306"),
]


@pytest.mark.parametrize("sdk", ["v1", "v2"])
@pytest.mark.parametrize(("principal", "host", "port", "user"), CASES)
def test_go_sdk_token_is_the_hand_built_go_form(go_client: GoClient, sdk: str,
                                                 principal: Principal, host: str, port: int,
                                                 user: str) -> None:
    env = {"MODE": "token", "SDK": sdk, "HOST": host, "PORT": str(port), "DBUSER": user,
           "REGION": REGION, "AWS_ACCESS_KEY_ID": principal.access_key_id,
           "AWS_SECRET_ACCESS_KEY": principal.secret}
    if principal.session_token is not None:
        env["AWS_SESSION_TOKEN"] = principal.session_token
    token = str(go_client.run(**env)["token"])
    at = datetime.strptime(get_param(token, "X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert token == build_token(principal=principal, host=host, port=port, db_user=user, at=at,
                                form="go")
    result = verify_token(token, endpoint=endpoint(host=HOST, port=port), db_user=user,
                          credentials=lookup(principal), now=at)
    assert result.ok, result
