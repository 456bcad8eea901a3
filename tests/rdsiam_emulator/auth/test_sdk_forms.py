"""Tokens from real generators (botocore, the AWS CLI, @aws-sdk/rds-signer) and every SDK's form.

Real generators: botocore in-process under freezegun; the AWS CLI and node as subprocesses (the
CLI signs at the real time, so it is verified at the real time; node gets a fixed clock inside
tests/node/sign.mjs). The Go SDKs (v1 and v2) run for real in test_go_sdk_forms.py. The other SDKs
(JS v2, Ruby, Java, Rust, paws) cannot run here, so their surface forms are built by hand from their
public sources (listed in tokenkit.py) with ``sigv4.presign``; the botocore, node and Go tests
also check that tokenkit reproduces those real generators byte for byte, which is what makes the
hand-built forms credible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from freezegun import freeze_time

from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import parse_token
from rdsiam_emulator.auth.verifier import (
    CheckContext,
    VerifierSettings,
    VerifyResult,
    run_checks,
    verify_token,
)
from rdsiam_emulator.clock import SystemClock
from rdsiam_emulator.reasons import Reason
from tokenkit import (
    ALICE,
    ALLOW_ALL,
    AT,
    DENY_ALL,
    FORMS,
    HOST,
    PORT,
    REGION,
    TEMP,
    Principal,
    allow_users,
    build_token,
    endpoint,
    iam_authorizer,
    iam_endpoint,
    iam_lookup,
    lookup,
)

NODE_DIR = Path(__file__).resolve().parents[2] / "node"
NOW = AT + timedelta(seconds=20)

ODD_USERS = [
    "app_user",
    "user with space",
    "plus+slash/equals=",
    "tilde~percent%star*",
    "bang!quote'parens()",
    "ünïcødé_用户",
    "emoji_🔑",
    'double"quote;semi,comma&amp',
    "a" * 63,
]
ODD_SESSION_TOKENS = [
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJGMEQCIFake+Session/Token==",
    "with space and ~*!'()%",
    "ünïcødé-séssion",
]


def _verify(
    token: str, *, user: str, ep: Endpoint, creds: StaticCredentials, now: Any = NOW
) -> VerifyResult:
    return verify_token(token, endpoint=ep, db_user=user, credentials=creds, now=now)


def _matched_signed_host(token: str, ep: Endpoint, user: str, creds: StaticCredentials) -> str:
    ctx = CheckContext(parse_token(token), ep, user, creds, NOW)
    outcomes = list(run_checks(ctx, stop_at_first=False))
    assert all(o.status != "fail" for o in outcomes), outcomes
    assert ctx.matched_signed_host is not None
    return ctx.matched_signed_host


# -------------------------------------------------------------------------------------- botocore


def _boto_token(
    p: Principal, *, host: str = HOST, port: int = PORT, user: str = "app_user",
    region: str = REGION,
) -> str:
    client = boto3.client(
        "rds", region_name=region, aws_access_key_id=p.access_key_id,
        aws_secret_access_key=p.secret, aws_session_token=p.session_token,
    )
    with freeze_time(AT):
        token: str = client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)
    return token


@pytest.mark.parametrize("user", ODD_USERS)
def test_botocore_tokens_verify_for_odd_db_users(user: str) -> None:
    token = _boto_token(TEMP, user=user)
    result = _verify(token, user=user, ep=endpoint(), creds=lookup(TEMP))
    assert result.ok, result
    assert result.token is not None and result.token.db_user == user
    assert token == build_token(principal=TEMP, db_user=user, form="botocore")


@pytest.mark.parametrize("session", ODD_SESSION_TOKENS)
def test_botocore_tokens_with_odd_session_tokens(session: str) -> None:
    p = Principal(TEMP.access_key_id, TEMP.secret, session)
    token = _boto_token(p)
    assert _verify(token, user="app_user", ep=endpoint(), creds=lookup(p)).ok
    assert token == build_token(principal=p, form="botocore")
    other = lookup(Principal(TEMP.access_key_id, TEMP.secret, session + "x"))
    result = _verify(token, user="app_user", ep=endpoint(), creds=other)
    assert result.reason is Reason.SESSION_TOKEN_MISMATCH


def test_botocore_surface_form() -> None:
    token = _boto_token(TEMP)
    assert token.startswith(f"{HOST}:{PORT}/?Action=connect&DBUser=app_user&X-Amz-Algorithm=")
    names = [item.split("=", 1)[0] for item in token.split("?", 1)[1].split("&")]
    assert names == ["Action", "DBUser", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                     "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Security-Token",
                     "X-Amz-Signature"]
    assert "X-Amz-Date=20240501T120000Z" in token and "X-Amz-Expires=900" in token


def test_botocore_port_443_kept_in_text_signed_without() -> None:
    ep = endpoint(port=443)
    token = _boto_token(TEMP, port=443)
    assert token.startswith(f"{HOST}:443/?")
    assert _verify(token, user="app_user", ep=ep, creds=lookup(TEMP)).ok
    assert _matched_signed_host(token, ep, "app_user", lookup(TEMP)) == HOST
    assert token == build_token(principal=TEMP, port=443, form="botocore")


def test_botocore_mixed_case_host_signed_lower_case() -> None:
    host = "MyDB.C0ABCDEFGHIJ.us-east-1.rds.amazonaws.com"
    token = _boto_token(TEMP, host=host)
    assert token.startswith(host + ":")
    assert _verify(token, user="app_user", ep=endpoint(), creds=lookup(TEMP)).ok
    assert _matched_signed_host(token, endpoint(), "app_user", lookup(TEMP)) == f"{HOST}:{PORT}"


def test_botocore_token_for_another_region_host() -> None:
    host = "mydb.c0abcdefghij.eu-west-1.rds.amazonaws.com"
    token = _boto_token(TEMP, host=host, region="eu-west-1")
    ep = endpoint(host=host, region="eu-west-1")
    assert _verify(token, user="app_user", ep=ep, creds=lookup(TEMP)).ok
    wrong = _verify(token, user="app_user", ep=endpoint(host=host), creds=lookup(TEMP))
    assert wrong.reason is Reason.REGION_MISMATCH


def test_botocore_token_expires_after_15_minutes() -> None:
    token = _boto_token(TEMP)
    creds = lookup(TEMP)
    assert _verify(token, user="app_user", ep=endpoint(), creds=creds,
                   now=AT + timedelta(seconds=900)).ok
    late = _verify(token, user="app_user", ep=endpoint(), creds=creds,
                   now=AT + timedelta(seconds=901))
    assert late.reason is Reason.EXPIRED


# --------------------------------------------------------------------------------------- AWS CLI


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_aws_cli_token_verifies(tmp_path: Path) -> None:
    user = "cli user+/=é"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": TEMP.access_key_id,
        "AWS_SECRET_ACCESS_KEY": TEMP.secret,
        "AWS_SESSION_TOKEN": TEMP.session_token or "",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    proc = subprocess.run(
        ["aws", "rds", "generate-db-auth-token", "--hostname", HOST, "--port", "443",
         "--region", REGION, "--username", user],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    token = proc.stdout.strip()
    assert token.startswith(f"{HOST}:443/?Action=connect&DBUser=")
    ep = endpoint(port=443)
    now = SystemClock().now()
    result = verify_token(token, endpoint=ep, db_user=user, credentials=lookup(TEMP), now=now)
    assert result.ok, result
    assert verify_token(token, endpoint=ep, db_user=user, credentials=lookup(TEMP),
                        now=now + timedelta(minutes=16)).reason is Reason.EXPIRED


# ---------------------------------------------------------------------------------- JS SDK v3


def _node_sign(requests: list[dict[str, Any]]) -> list[str]:
    if shutil.which("node") is None:
        pytest.skip(reason="node is not installed")
    proc = subprocess.run(
        ["node", str(NODE_DIR / "sign.mjs"), json.dumps(requests)],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, (
        f"sign.mjs failed (did scripts/bootstrap run `npm ci` in tests/node?): {proc.stderr}"
    )
    tokens: list[str] = json.loads(proc.stdout)
    return tokens


def _node_request(p: Principal, *, host: str = HOST, port: int = PORT,
                  user: str = "app_user") -> dict[str, Any]:
    req: dict[str, Any] = {
        "hostname": host, "port": port, "region": REGION, "username": user,
        "accessKeyId": p.access_key_id, "secretAccessKey": p.secret,
        "at": AT.isoformat().replace("+00:00", "Z"),
    }
    if p.session_token is not None:
        req["sessionToken"] = p.session_token
    return req


NODE_CASES: list[tuple[str, Principal, str, int, str]] = [
    ("plain", TEMP, HOST, PORT, "app_user"),
    ("long-term key", Principal("AKIAJSEXAMPLE0000001", "js-secret"), HOST, PORT, "app_user"),
    ("port 443", TEMP, HOST, 443, "app_user"),
    ("mixed-case host", TEMP, "MyDB.C0ABCDEFGHIJ.us-east-1.rds.amazonaws.com", PORT, "app_user"),
    *[(f"user {u!r}", TEMP, HOST, PORT, u) for u in ODD_USERS],
    *[(f"session {s!r}", Principal(TEMP.access_key_id, TEMP.secret, s), HOST, PORT, "app_user")
      for s in ODD_SESSION_TOKENS],
]


@pytest.fixture(scope="module")
def node_tokens() -> list[str]:
    return _node_sign([_node_request(p, host=h, port=port, user=u)
                       for _, p, h, port, u in NODE_CASES])


@pytest.mark.node
@pytest.mark.parametrize("index", range(len(NODE_CASES)), ids=[c[0] for c in NODE_CASES])
def test_js_v3_rds_signer_tokens_verify(node_tokens: list[str], index: int) -> None:
    _, p, host, port, user = NODE_CASES[index]
    token = node_tokens[index]
    ep = endpoint(port=port)
    result = _verify(token, user=user, ep=ep, creds=lookup(p))
    assert result.ok, (token, result)
    # tokenkit's js_v3 form is exactly what the real SDK prints
    assert token == build_token(principal=p, host=host, port=port, db_user=user, form="js_v3")
    # JS v3 signs the host as written, including :443
    assert _matched_signed_host(token, ep, user, lookup(p)) == f"{host}:{port}"


@pytest.mark.node
def test_js_v3_surface_form(node_tokens: list[str]) -> None:
    token = node_tokens[0]
    names = [item.split("=", 1)[0] for item in token.split("?", 1)[1].split("&")]
    assert names == sorted(names)
    assert names.index("X-Amz-Signature") < names.index("X-Amz-SignedHeaders")
    wrong_user = _verify(token, user="app_user2", ep=endpoint(), creds=lookup(TEMP))
    assert wrong_user.reason is Reason.DB_USER_MISMATCH


@pytest.mark.node
def test_js_v3_tampered_token_is_rejected(node_tokens: list[str]) -> None:
    token = node_tokens[0].replace("DBUser=app_user", "DBUser=app_usex")
    result = _verify(token, user="app_usex", ep=endpoint(), creds=lookup(TEMP))
    assert result.reason is Reason.SIGNATURE_MISMATCH


# ------------------------------------------------------------------------- hand-built SDK forms


@pytest.mark.parametrize("port", [PORT, 443])
@pytest.mark.parametrize("host", [HOST, "MyDB.C0ABCDEFGHIJ.us-east-1.rds.amazonaws.com"])
@pytest.mark.parametrize("form", FORMS)
def test_every_sdk_form_verifies(form: str, host: str, port: int) -> None:
    for principal in (TEMP, Principal("AKIAFORMS00000000001", "forms-secret")):
        token = build_token(principal=principal, host=host, port=port, form=form,
                            db_user="user é+/ ~*")
        result = _verify(token, user="user é+/ ~*", ep=endpoint(port=port),
                         creds=lookup(principal))
        assert result.ok, (form, token, result)


@pytest.mark.parametrize("port", [PORT, 443, None])
@pytest.mark.parametrize("form", FORMS)
def test_every_sdk_form_goes_through_the_authorizer(form: str, port: int | None) -> None:
    """Whichever path a layout takes (the SDK-layout fast path, or the general path for Java's
    DBUser-first order, port-less and other hand-built forms), IAM decides: a deny-all policy
    refuses, an allow for this user accepts, an allow for another user refuses."""
    from rdsiam_emulator.auth.tokens import CANONICAL_SDK_TOKEN

    user = "app_user"
    ep = iam_endpoint(port=443 if port is None else port)
    for principal in (TEMP, ALICE):
        token = build_token(principal=principal, port=port, form=form, db_user=user)
        if form == "java" or port is None:
            assert CANONICAL_SDK_TOKEN.match(token) is None  # the general path, by design

        denied, other, allowed = (
            verify_token(token, endpoint=ep, db_user=user, credentials=iam_lookup(), now=NOW,
                         authorizer=iam_authorizer(*statements))
            for statements in ((ALLOW_ALL, DENY_ALL), (allow_users("someone_else"),),
                               (allow_users(user),))
        )
        assert denied.reason is Reason.EXPLICIT_DENY, (form, port, denied)
        assert other.reason is Reason.NOT_AUTHORIZED, (form, port, other)
        assert allowed.ok, (form, port, allowed)


def _names(token: str) -> list[str]:
    return [item.split("=", 1)[0] for item in token.split("?", 1)[1].split("&")]


def test_form_js_v2_lower_cases_host_and_sorts_fully() -> None:
    token = build_token(principal=TEMP, host=HOST.upper(), port=443, form="js_v2")
    assert token.startswith(f"{HOST}:443/?")
    assert _names(token) == sorted(_names(token))
    assert _matched_signed_host(token, endpoint(port=443), "app_user", lookup(TEMP)) == (
        f"{HOST}:443"
    )


def test_form_go_has_no_slash_and_signature_last() -> None:
    token = build_token(principal=TEMP, host=HOST.upper(), port=443, form="go")
    assert token.startswith(f"{HOST.upper()}:443?Action=connect&")
    names = _names(token)
    assert names[-1] == "X-Amz-Signature" and names[:-1] == sorted(names[:-1])
    # signed host as written, without the default port
    assert _matched_signed_host(token, endpoint(port=443), "app_user", lookup(TEMP)) == (
        HOST.upper()
    )


def test_form_ruby_drops_443_from_text_and_signature() -> None:
    token = build_token(principal=TEMP, port=443, form="ruby")
    assert token.startswith(f"{HOST}/?")
    assert _names(token)[-1] == "X-Amz-Signature"
    # a port-less token names https' port 443, so it binds to a 443 endpoint only ...
    assert _verify(token, user="app_user", ep=endpoint(port=443), creds=lookup(TEMP)).ok
    assert _matched_signed_host(token, endpoint(port=443), "app_user", lookup(TEMP)) == HOST
    result = _verify(token, user="app_user", ep=endpoint(), creds=lookup(TEMP))
    assert result.reason is Reason.HOST_MISMATCH and "without a port" in result.detail
    # ... unless that is switched off
    strict = VerifierSettings(implicit_https_port=False)
    result = verify_token(token, endpoint=endpoint(port=443), db_user="app_user",
                          credentials=lookup(TEMP), now=NOW, settings=strict)
    assert result.reason is Reason.HOST_MISMATCH


def test_form_ruby_with_non_default_port_verifies() -> None:
    token = build_token(principal=TEMP, form="ruby")
    assert _verify(token, user="app_user", ep=endpoint(), creds=lookup(TEMP)).ok


def test_form_java_starts_with_dbuser() -> None:
    token = build_token(principal=TEMP, form="java")
    assert _names(token)[0] == "DBUser"


@pytest.mark.parametrize("form", ["botocore", "cli", "paws", "rust"])
def test_insertion_order_forms(form: str) -> None:
    token = build_token(principal=TEMP, form=form)
    assert _names(token)[:2] == ["Action", "DBUser"] and _names(token)[-1] == "X-Amz-Signature"


def test_forms_signing_host_443_both_ways_verify() -> None:
    """botocore/CLI/Go sign host without :443; JS signs host:443 — both tokens read ':443'."""
    ep = endpoint(port=443)
    boto = build_token(principal=TEMP, port=443, form="botocore")
    js = build_token(principal=TEMP, port=443, form="js_v3")
    assert _matched_signed_host(boto, ep, "app_user", lookup(TEMP)) == HOST
    assert _matched_signed_host(js, ep, "app_user", lookup(TEMP)) == f"{HOST}:443"


def test_signed_host_forms_are_a_small_fixed_set() -> None:
    """A token signed for some other Host spelling (e.g. a trailing dot) is not accepted."""
    token = build_token(principal=TEMP, signed_host=f"{HOST}.:{PORT}")
    result = _verify(token, user="app_user", ep=endpoint(), creds=lookup(TEMP))
    assert result.reason is Reason.SIGNATURE_MISMATCH


# ----------------------------------------------------------------------------- encoding rules


@pytest.mark.parametrize(
    ("char", "encoded"),
    [(" ", "%20"), ("+", "%2B"), ("/", "%2F"), ("=", "%3D"), ("~", "~"), ("%", "%25"),
     ("*", "%2A"), ("!", "%21"), ("'", "%27"), ("(", "%28"), (")", "%29"), ('"', "%22"),
     ("é", "%C3%A9"), ("&", "%26"), ("?", "%3F"), ("#", "%23"), (":", "%3A")],
)
def test_every_tool_encodes_the_same_way(char: str, encoded: str) -> None:
    user = f"a{char}b"
    boto = _boto_token(TEMP, user=user)
    assert f"DBUser=a{encoded}b&" in boto
    hand = build_token(principal=TEMP, db_user=user, form="go")
    assert f"DBUser=a{encoded}b&" in hand
    for token in (boto, hand):
        assert _verify(token, user=user, ep=endpoint(), creds=lookup(TEMP)).ok


def test_lower_case_hex_escapes_still_verify() -> None:
    """Decoding is by value: a proxy that lower-cases %2F does not break the signature."""
    token = build_token(principal=TEMP, db_user="a/b")
    lowered = token.replace("%2F", "%2f")
    assert lowered != token
    assert _verify(lowered, user="a/b", ep=endpoint(), creds=lookup(TEMP)).ok


def test_plus_is_a_literal_plus_not_a_space() -> None:
    token = build_token(principal=TEMP, db_user="a b")
    plus = token.replace("DBUser=a%20b", "DBUser=a+b")
    result = _verify(plus, user="a b", ep=endpoint(), creds=lookup(TEMP))
    assert result.reason is Reason.DB_USER_MISMATCH
    assert _verify(plus, user="a+b", ep=endpoint(), creds=lookup(TEMP)).reason is (
        Reason.SIGNATURE_MISMATCH
    )


def test_temporary_credentials_table_with_several_principals() -> None:
    a = Principal("ASIAAAAAAAAAAAAAAAA1", "sa", "tok-a")
    b = Principal("ASIABBBBBBBBBBBBBBB2", "sb", "tok-b")
    creds = lookup(a, b)
    assert _verify(build_token(principal=a), user="app_user", ep=endpoint(), creds=creds).ok
    crossed = build_token(principal=a, session_token="tok-b")
    assert _verify(crossed, user="app_user", ep=endpoint(), creds=creds).reason is (
        Reason.SESSION_TOKEN_MISMATCH
    )
