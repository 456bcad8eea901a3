"""SigV4 pieces against AWS's published example and botocore's own signer."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdsiam_emulator.auth import sigv4


def test_signing_key_matches_the_aws_documentation_example() -> None:
    """'Examples of how to derive a signing key for Signature Version 4' (IAM, 20120215)."""
    key = sigv4.signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1",
                            "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_signing_key_is_cached_per_inputs() -> None:
    sigv4.signing_key.cache_clear()
    a = sigv4.signing_key("s", "20240501", "us-east-1", "rds-db")
    b = sigv4.signing_key("s", "20240501", "us-east-1", "rds-db")
    c = sigv4.signing_key("s", "20240502", "us-east-1", "rds-db")
    assert a is b and a != c
    info = sigv4.signing_key.cache_info()
    assert (info.hits, info.misses) == (1, 2)


def test_empty_payload_hash() -> None:
    assert hashlib.sha256(b"").hexdigest() == sigv4.EMPTY_SHA256
    assert sigv4.EMPTY_SHA256.startswith("e3b0c442") and sigv4.EMPTY_SHA256.endswith("b855")


def test_canonical_request_shape() -> None:
    req = sigv4.canonical_request("db:5432", "Action=connect")
    assert req == f"GET\n/\nAction=connect\nhost:db:5432\n\nhost\n{sigv4.EMPTY_SHA256}"


def test_string_to_sign_shape() -> None:
    sts = sigv4.string_to_sign("20240501T120000Z", "20240501/us-east-1/rds-db/aws4_request", "x")
    assert sts.split("\n") == [
        "AWS4-HMAC-SHA256", "20240501T120000Z", "20240501/us-east-1/rds-db/aws4_request",
        hashlib.sha256(b"x").hexdigest(),
    ]


def test_canonical_query_sorts_encodes_and_drops_the_signature() -> None:
    params = [("X-Amz-Signature", "abc"), ("b", "x y"), ("a", "é"), ("A", "+"), ("a~", "*")]
    assert sigv4.canonical_query(params) == "A=%2B&a=%C3%A9&a~=%2A&b=x%20y"


def test_canonical_query_sorts_by_key_not_by_text() -> None:
    """'X-Amz-Date' sorts before 'X-Amz-Date2' although '=' > '2' in the joined text."""
    params = [("X-Amz-Date2", "1"), ("X-Amz-Date", "2")]
    assert sigv4.canonical_query(params) == "X-Amz-Date=2&X-Amz-Date2=1"


def test_canonical_query_encoded_agrees() -> None:
    params = [("X-Amz-Signature", "abc"), ("b", "x y"), ("a", "é")]
    encoded = [(sigv4.uri_encode(k), sigv4.uri_encode(v)) for k, v in params]
    assert sigv4.canonical_query_encoded(encoded) == sigv4.canonical_query(params)


@pytest.mark.parametrize(
    ("text", "encoded"),
    [("", ""), ("AZaz09-._~", "AZaz09-._~"), (" ", "%20"), ("+", "%2B"), ("/", "%2F"),
     ("=", "%3D"), ("%", "%25"), ("*", "%2A"), ("!", "%21"), ("'", "%27"), ("(", "%28"),
     (")", "%29"), ("é", "%C3%A9"), ("用", "%E7%94%A8"), ("🔑", "%F0%9F%94%91"),
     ("a b&c", "a%20b%26c")],
)
def test_uri_encode(text: str, encoded: str) -> None:
    assert sigv4.uri_encode(text) == encoded


@settings(derandomize=True, database=None, deadline=None)
@given(st.text())
def test_uri_encode_equals_quote(text: str) -> None:
    try:
        expected = quote(text, safe="-_.~", encoding="utf-8", errors="strict")
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            sigv4.uri_encode(text)
        return
    assert sigv4.uri_encode(text) == expected


def test_is_unreserved() -> None:
    assert sigv4.is_unreserved("AZaz09-._~")
    assert sigv4.is_unreserved("")
    assert not sigv4.is_unreserved("a b")
    assert not sigv4.is_unreserved("é")


def test_signatures_equal() -> None:
    assert sigv4.signatures_equal("abc", "abc")
    assert not sigv4.signatures_equal("abc", "abd")
    assert not sigv4.signatures_equal("abc", "ab")
    assert sigv4.signatures_equal("ünï", "ünï")
    assert not sigv4.signatures_equal("\ud800", "\ud801")  # lone surrogates stay distinct


def test_presign_matches_botocore_query_signer() -> None:
    """botocore's SigV4QueryAuth over the same request yields our signature."""
    from datetime import UTC, datetime

    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from freezegun import freeze_time

    host = "db.example.com:5432"
    request = AWSRequest(method="GET", url=f"https://{host}/",
                         params={"Action": "connect", "DBUser": "a b+é"})
    with freeze_time(datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)):
        SigV4QueryAuth(Credentials("AKIDEXAMPLE", "secret/key"), "rds-db", "us-east-1",
                       expires=900).add_auth(request)
    prepared = request.prepare()
    query = prepared.url.split("?", 1)[1]
    from rdsiam_emulator.auth.tokens import parse_token

    token = parse_token(f"{host}/?{query}")
    ours = sigv4.presign(host_text=host, params=token.params, secret="secret/key",
                         amz_date=token.amz_date, scope_date="20240501", region="us-east-1")
    assert ours == token.signature


@settings(derandomize=True, database=None, deadline=None)
@given(st.binary(min_size=0, max_size=100), st.text(max_size=300))
def test_prepared_key_signs_like_hmac(key: bytes, message: str) -> None:
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert sigv4.PreparedKey(key).sign(message) == sigv4.sign(key, message)


def test_prepared_signing_key_is_cached() -> None:
    a = sigv4.prepared_signing_key("s", "20240501", "us-east-1", "rds-db")
    assert a is sigv4.prepared_signing_key("s", "20240501", "us-east-1", "rds-db")
    assert a.key == sigv4.signing_key("s", "20240501", "us-east-1", "rds-db")


def test_presigned_signature_equals_the_step_by_step_way() -> None:
    params = [("Action", "connect"), ("DBUser", "a b"), ("X-Amz-Date", "20240501T120000Z"),
              ("X-Amz-Signature", "ignored")]
    encoded = [(sigv4.uri_encode(k), sigv4.uri_encode(v)) for k, v in params]
    key = sigv4.prepared_signing_key("s", "20240501", "us-east-1", "rds-db")
    scope = "20240501/us-east-1/rds-db/aws4_request"
    step_by_step = sigv4.sign(key.key, sigv4.string_to_sign(
        "20240501T120000Z", scope, sigv4.canonical_request("h:1", sigv4.canonical_query(params))))
    assert sigv4.presigned_signature(key, "20240501T120000Z", scope, "h:1", encoded) == step_by_step
    assert step_by_step == sigv4.presign(host_text="h:1", params=params, secret="s",
                                         amz_date="20240501T120000Z", scope_date="20240501",
                                         region="us-east-1")


def test_only_sigv4_spells_the_canonical_strings() -> None:
    """The verifier's fast path once kept its own copy of the canonical request and string to
    sign; every one is now built by ``sigv4``."""
    import ast
    from pathlib import Path

    import rdsiam_emulator

    markers = ("AWS4-HMAC-SHA256\n", "GET\n/\n", "\n\nhost\n")
    root = Path(rdsiam_emulator.__file__).parent
    spelled = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
                    m in node.value for m in markers):
                spelled.append(path.relative_to(root).as_posix())
    assert "auth/sigv4.py" in spelled  # the scan finds the one true spelling
    assert set(spelled) == {"auth/sigv4.py"}


# ------------------------------------------------------------------- constant-time comparison


@pytest.mark.parametrize("form", ["botocore", "js_v3"], ids=["fast path", "ordered checks"])
def test_every_signature_decision_goes_through_compare_digest(
    form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constant-time comparison, proven by behaviour: with ``hmac.compare_digest`` answering
    "different" for everything, a genuine token must be refused (any ``==`` on a signature would
    still accept it), and with it answering truthfully the token passes and the spy saw its
    signature. ``botocore`` tokens take the SDK-layout fast path, ``js_v3`` (sorted parameters)
    the ordered checks."""
    import hmac

    from rdsiam_emulator.auth import fast_path
    from rdsiam_emulator.auth.verifier import verify_token
    from rdsiam_emulator.reasons import Reason
    from tokenkit import ALICE, AT, build_token, endpoint, get_param, lookup

    token = build_token(principal=ALICE, form=form)  # no session token: only the signature
    signature = get_param(token, "X-Amz-Signature")
    real = hmac.compare_digest
    seen: list[tuple[object, object]] = []

    def spy(a: str | bytes, b: str | bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    def verify() -> bool:
        return verify_token(token, endpoint=endpoint(), db_user="app_user",
                            credentials=lookup(), now=AT).ok

    monkeypatch.setattr(hmac, "compare_digest", spy)
    monkeypatch.setattr(fast_path, "compare_digest", spy)
    assert verify()
    assert any(signature in (a, b) for a, b in seen), seen

    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)
    monkeypatch.setattr(fast_path, "compare_digest", lambda a, b: False)
    result = verify_token(token, endpoint=endpoint(), db_user="app_user", credentials=lookup(),
                          now=AT)
    assert (result.ok, result.reason) == (False, Reason.SIGNATURE_MISMATCH)
