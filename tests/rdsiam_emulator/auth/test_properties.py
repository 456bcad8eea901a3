"""Property tests: the verifier never raises, never accepts garbage, and its two paths agree.

``verify_token`` has a fast path for tokens that pass and hands failures to the ordered checks;
``run_checks`` is the ordered path alone. Every example here also checks that both reach the same
verdict and reason, so an optimisation that loosens the fast path fails these tests.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rdsiam_emulator.auth.tokens import (
    TokenFormatError,
    decode_component,
    parse_token,
    percent_decode,
)
from rdsiam_emulator.auth.verifier import CheckContext, VerifyResult, run_checks, verify_token
from rdsiam_emulator.iam.principals import MotoCredential
from rdsiam_emulator.reasons import Reason
from tokenkit import (
    ALICE,
    ALLOW_ALL,
    AT,
    DENY_ALL,
    FORMS,
    HOST,
    TEMP,
    allow_users,
    build_token,
    endpoint,
    iam_authorizer,
    iam_endpoint,
    iam_lookup,
    lookup,
)

NOW = AT + timedelta(seconds=30)
EP = endpoint()
CREDS = lookup()
GENUINE = {form: build_token(principal=TEMP, form=form, db_user="app user+é") for form in FORMS}
USER = "app user+é"

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True, database=None)
"""Derandomized: the same examples every run (the suite must be deterministic)."""


def verify(token: str, user: str = USER) -> VerifyResult:
    return verify_token(token, endpoint=EP, db_user=user, credentials=CREDS, now=NOW)


def ordered_reason(token: str, user: str = USER) -> Reason | None:
    """The verdict of the ordered checks alone (None = accepted)."""
    try:
        parsed = parse_token(token)
    except TokenFormatError as exc:
        return exc.reason
    ctx = CheckContext(parsed, EP, user, CREDS, NOW)
    for outcome in run_checks(ctx, stop_at_first=True):
        if outcome.rejection is not None:
            return outcome.rejection.reason
    return None


def check_consistent(token: str, user: str = USER) -> VerifyResult:
    result = verify(token, user)
    assert result.ok == (result.reason is None)
    assert result.reason is None or isinstance(result.reason, Reason)
    assert result.reason == ordered_reason(token, user), token
    return result


def same_meaning(a: str, b: str) -> bool:
    """Both parse to the same decoded parameters and the same host (case-insensitively) and port."""
    try:
        pa, pb = parse_token(a), parse_token(b)
    except TokenFormatError:
        return False
    return (dict(pa.params) == dict(pb.params) and pa.host.lower().rstrip(".")
            == pb.host.lower().rstrip(".") and pa.port == pb.port)


@FAST
@given(st.text(max_size=300))
def test_random_text_is_rejected(text: str) -> None:
    result = check_consistent(text)
    assert not result.ok and result.reason is not None


@FAST
@given(st.lists(st.tuples(st.sampled_from(["Action", "DBUser", "X-Amz-Algorithm",
                                            "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                                            "X-Amz-SignedHeaders", "X-Amz-Signature",
                                            "X-Amz-Security-Token", "x"]),
                          st.text(max_size=30)), max_size=12))
def test_random_token_shaped_text_is_rejected(pairs: list[tuple[str, str]]) -> None:
    token = "h:5432/?" + "&".join(f"{k}={v}" for k, v in pairs)
    result = check_consistent(token)
    assert not result.ok


def mutate(token: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(["flip", "insert", "delete", "replace"]))
    pos = data.draw(st.integers(0, len(token) - 1))
    if kind == "delete":
        return token[:pos] + token[pos + 1 :]
    char = data.draw(st.characters(codec="utf-8") | st.sampled_from("%&=?/:+ 0aF."))
    if kind == "insert":
        return token[:pos] + char + token[pos:]
    if kind == "flip":
        return token[:pos] + chr(ord(token[pos]) ^ 1) + token[pos + 1 :]
    return token[:pos] + char + token[pos + 1 :]


@FAST
@given(st.sampled_from(FORMS), st.data())
def test_mutated_genuine_tokens_are_rejected_unless_equivalent(
    form: str, data: st.DataObject
) -> None:
    genuine = GENUINE[form]
    mutated = genuine
    for _ in range(data.draw(st.integers(1, 3))):
        mutated = mutate(mutated, data)
    result = check_consistent(mutated)
    if result.ok:
        # only surface changes survive: host case, escape case, escaping an unreserved char
        assert same_meaning(mutated, genuine), mutated
    else:
        assert result.reason is not None


@FAST
@given(st.sampled_from(FORMS), st.data())
def test_duplicated_parameter_is_malformed(form: str, data: st.DataObject) -> None:
    genuine = GENUINE[form]
    items = genuine.split("?", 1)[1].split("&")
    dup = data.draw(st.sampled_from(items))
    where = data.draw(st.integers(0, len(items)))
    new_items = [*items[:where], dup, *items[where:]]
    token = genuine.split("?", 1)[0] + "?" + "&".join(new_items)
    result = check_consistent(token)
    assert result.reason is Reason.MALFORMED_TOKEN and "twice" in result.detail


@FAST
@given(st.sampled_from(FORMS), st.randoms(use_true_random=False))
def test_reordered_genuine_token_stays_valid(form: str, rnd: object) -> None:
    genuine = GENUINE[form]
    head, query = genuine.split("?", 1)
    items = query.split("&")
    rnd.shuffle(items)  # type: ignore[attr-defined]
    result = check_consistent(head + "?" + "&".join(items))
    assert result.ok, result


@FAST
@given(st.sampled_from(FORMS), st.integers(-400, 1300), st.sampled_from([USER, "app_user"]))
def test_time_and_user_agree_between_paths(form: str, offset: int, user: str) -> None:
    token = GENUINE[form]
    result = verify_token(token, endpoint=EP, db_user=user, credentials=CREDS,
                          now=AT + timedelta(seconds=offset))
    ctx = CheckContext(parse_token(token), EP, user, CREDS, AT + timedelta(seconds=offset))
    failures = [o for o in run_checks(ctx, stop_at_first=True) if o.status == "fail"]
    expected = failures[0].rejection.reason if failures and failures[0].rejection else None
    assert result.reason == expected
    assert result.ok == (-300 <= offset <= 900 and user == USER)


@FAST
@given(st.text(alphabet="%0123456789abcdefABCDEFxyz+/~.é ", max_size=24))
def test_decode_component_agrees_with_the_general_way(raw: str) -> None:
    try:
        expected = percent_decode(raw)
    except TokenFormatError:
        with pytest.raises(TokenFormatError):
            decode_component(raw)
        return
    from rdsiam_emulator.auth.sigv4 import uri_encode

    assert decode_component(raw) == (expected, uri_encode(expected))


@FAST
@given(st.text(min_size=1, max_size=40), st.text(max_size=40))
def test_any_db_user_and_session_token_round_trip(user: str, session: str) -> None:
    try:
        user.encode("utf-8")
        session.encode("utf-8")
    except UnicodeEncodeError:
        assume(False)
    from tokenkit import Principal

    p = Principal("ASIAPROPERTY00000001", "prop-secret", session)
    token = build_token(principal=p, db_user=user)
    result = verify_token(token, endpoint=EP, db_user=user, credentials=lookup(p), now=NOW)
    if session:
        assert result.ok, result
    else:
        assert result.reason is Reason.SESSION_TOKEN_MISMATCH  # an empty session token


@FAST
@given(st.sampled_from(FORMS), st.data())
def test_fast_query_parse_equals_the_general_one(form: str, data: st.DataObject) -> None:
    """Whenever the C-level query parse answers, it answers exactly like the item-by-item one."""
    from rdsiam_emulator.auth.tokens import _parse_query, _parse_query_fast

    token = GENUINE[form]
    for _ in range(data.draw(st.integers(0, 3))):
        token = mutate(token, data)
    query = token.partition("?")[2]
    fast = _parse_query_fast(query)
    if fast is None:
        return
    values, encoded = _parse_query(query)
    assert list(fast[0].items()) == list(values.items())
    assert list(fast[1]) == list(encoded)


def test_fast_query_parse_is_taken_for_sdk_tokens() -> None:
    from rdsiam_emulator.auth.tokens import _parse_query_fast

    for form, token in GENUINE.items():
        assert _parse_query_fast(token.partition("?")[2]) is not None, form


# ---------------------------------------------------------------- the SDK-layout fast path
# ``verify_token`` first tries ``tokens.CANONICAL_SDK_TOKEN`` (one regex, integer time checks, a
# lazily parsed result token). It may only ever accept what the general path accepts, and defers
# everything else; these compare it with ``_verify_general`` result field by field.

ASCII_USERS = ("app_user", "app user+1/x")
"""A plain user and one whose DBUser value carries escapes (%20, %2B, %2F): both fast-path."""
FAST_FORMS = ("botocore", "cli", "paws", "js_v2", "js_v3", "go", "ruby", "rust")
SDK_GENUINE = {
    (form, user, principal.access_key_id): build_token(principal=principal, form=form,
                                                       db_user=user)
    for form in FAST_FORMS for user in ASCII_USERS for principal in (TEMP, ALICE)
}


AUTHORIZERS = {
    "none": None,
    "allow app_user": iam_authorizer(allow_users("app_user")),
    "deny all": iam_authorizer(ALLOW_ALL, DENY_ALL),
}
"""The authorization step too: none, the real IAM authorizer allowing one user, denying all."""


def same_as_general(
    token: str, user: str, *, now: object = NOW, creds: object = None, ep: object = None,
) -> VerifyResult:
    """verify_token and the general path alone give identical results, field by field, with
    each of ``AUTHORIZERS`` (the full decision); returns the result without an authorizer."""
    from rdsiam_emulator.auth.verifier import DEFAULT_SETTINGS, _verify_general

    creds = iam_lookup() if creds is None else creds
    ep = iam_endpoint() if ep is None else ep
    results = {}
    for name, authorizer in AUTHORIZERS.items():
        got = verify_token(token, endpoint=ep, db_user=user,  # type: ignore[arg-type]
                           credentials=creds, now=now, authorizer=authorizer)  # type: ignore[arg-type]
        want = _verify_general(token, ep, user, creds, now,  # type: ignore[arg-type]
                               DEFAULT_SETTINGS, authorizer)
        assert (got.ok, got.reason, got.detail, got.hint, got.credential, got.access_key_id) == (
            want.ok, want.reason, want.detail, want.hint, want.credential, want.access_key_id
        ), (name, token)
        assert got.token == want.token
        assert got.rds_error_code == want.rds_error_code
        results[name] = got
    plain = results["none"]
    # the authorizer decides exactly the tokens that pass every other check
    assert not results["deny all"].ok
    if plain.ok:
        assert results["deny all"].reason in (Reason.EXPLICIT_DENY, Reason.NOT_AUTHORIZED)
        assert results["allow app_user"].ok == (user == "app_user" and isinstance(
            plain.credential, MotoCredential))
    else:
        assert results["deny all"].reason == plain.reason
    return plain


def test_fast_path_is_taken_for_sdk_layouts() -> None:
    from rdsiam_emulator.auth.tokens import CANONICAL_SDK_TOKEN
    from rdsiam_emulator.auth.verifier import _LazyTokenResult

    for (form, user, _akid), token in SDK_GENUINE.items():
        assert CANONICAL_SDK_TOKEN.match(token) is not None, form
        result = verify(token, user)
        assert result.ok, (form, result)
        assert type(result) is _LazyTokenResult, form  # accepted without the general path
        assert result.token == parse_token(token)
        assert result.access_key_id == parse_token(token).access_key_id
    # Java's order (DBUser first) and port-less tokens are left to the general path
    java = build_token(principal=TEMP, form="java", db_user="app_user")
    assert CANONICAL_SDK_TOKEN.match(java) is None
    assert verify(java, "app_user").ok


@FAST
@given(st.sampled_from(sorted(SDK_GENUINE)), st.data())
def test_fast_path_equals_general_path_on_mutations(key: tuple[str, str, str],
                                                    data: st.DataObject) -> None:
    token = SDK_GENUINE[key]
    for _ in range(data.draw(st.integers(1, 3))):
        token = mutate(token, data)
    user = data.draw(st.sampled_from([key[1], key[1].upper(), "other"]))
    same_as_general(token, user)


@FAST
@given(st.sampled_from(sorted(SDK_GENUINE)),
       st.sampled_from([-300, 900, 0]), st.integers(-3, 3),
       st.sampled_from([timedelta(0), timedelta(hours=5, minutes=30), timedelta(hours=-8)]))
def test_fast_path_time_boundaries_to_the_microsecond(
    key: tuple[str, str, str], edge: int, micros: int, offset: timedelta,
) -> None:
    """Integer-microsecond time checks agree with the datetime ones, in any time zone."""
    from datetime import timezone

    now = (AT + timedelta(seconds=edge, microseconds=micros)).astimezone(timezone(offset))
    result = same_as_general(SDK_GENUINE[key], key[1], now=now)
    assert result.ok == (-300_000_000 <= edge * 1_000_000 + micros <= 900_000_000)


@FAST
@given(st.sampled_from(sorted(SDK_GENUINE)), st.sampled_from(
    ["unknown", "inactive", "expired", "other-session", "long-term", "wrong-secret", "ok"]))
def test_fast_path_equals_general_path_on_credential_failures(
    key: tuple[str, str, str], case: str,
) -> None:
    from rdsiam_emulator.auth.credentials import StaticCredentials

    principal = TEMP if key[2] == TEMP.access_key_id else ALICE
    overrides: dict[str, object] = {
        "unknown": {}, "inactive": {"active": False},
        "expired": {"expires_at": NOW - timedelta(seconds=1)},
        "other-session": {"session_token": "another+session/token="},
        "long-term": {"session_token": None},
        "wrong-secret": {"secret_access_key": "not-the-secret"}, "ok": {},
    }[case]
    table = {} if case == "unknown" else {
        principal.access_key_id: principal.resolved(**overrides)}
    result = same_as_general(SDK_GENUINE[key], key[1], creds=StaticCredentials(table))
    assert result.ok == (case == "ok" or (case == "long-term" and principal is ALICE))


def test_lazy_result_token_is_immutable_and_replaceable() -> None:
    import dataclasses

    token = SDK_GENUINE[("botocore", "app_user", TEMP.access_key_id)]
    result = verify(token, "app_user")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.token = None  # type: ignore[misc]
    copy = dataclasses.replace(result, detail="x")
    assert copy.token == parse_token(token) and copy.detail == "x"
    assert result == verify(token, "app_user")


def test_lookup_that_raises_is_reported_like_the_general_path() -> None:
    class Broken:
        def lookup(self, access_key_id: str) -> None:
            raise RuntimeError("boom")

    token = SDK_GENUINE[("go", "app user+1/x", ALICE.access_key_id)]
    result = same_as_general(token, "app user+1/x", creds=Broken())
    assert result.reason is Reason.INTERNAL_ERROR and "boom" in result.detail


@pytest.mark.parametrize("host,port", [
    ("reader.example.com", 5432), ("READER.Example.com", 5432), ("reader.example.com.", 5432),
    ("127.0.0.1", 6000), ("127.0.0.1", 5432), (HOST, 5432), (HOST.upper(), 5432),
    ("elsewhere.example.com", 5432),
])
def test_fast_path_host_binding_equals_general(host: str, port: int) -> None:
    from rdsiam_emulator.auth.tokens import CANONICAL_SDK_TOKEN

    ep = iam_endpoint(aliases=("Reader.Example.COM.", "127.0.0.1:6000"))
    token = build_token(principal=TEMP, host=host, port=port, db_user="app_user")
    result = same_as_general(token, "app_user", ep=ep)
    assert result.ok == (host.lower().rstrip(".") in ("reader.example.com", HOST)
                         or (host, port) == ("127.0.0.1", 6000))
    if not host.endswith("."):
        assert CANONICAL_SDK_TOKEN.match(token) is not None
