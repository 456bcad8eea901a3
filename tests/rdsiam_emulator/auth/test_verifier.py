"""One test per reason code the verifier produces, its boundaries, and the order of the checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from rdsiam_emulator.auth.credentials import ResolvedCredential, StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import ParsedToken
from rdsiam_emulator.auth.verifier import (
    CHECKS,
    CheckContext,
    VerifierSettings,
    VerifyResult,
    run_checks,
    verify_token,
)
from rdsiam_emulator.reasons import REASONS, Reason, Rejection
from tokenkit import (
    ALICE,
    AT,
    BOB,
    HOST,
    PORT,
    TEMP,
    Principal,
    build_token,
    endpoint,
    get_param,
    lookup,
    replace_param,
)

NOW = AT + timedelta(seconds=30)


def verify(
    token: str,
    *,
    db_user: str = "app_user",
    ep: Endpoint | None = None,
    creds: object = None,
    now: datetime = NOW,
    **kwargs: object,
) -> VerifyResult:
    return verify_token(
        token,
        endpoint=ep if ep is not None else endpoint(),
        db_user=db_user,
        credentials=creds if creds is not None else lookup(),  # type: ignore[arg-type]
        now=now,
        **kwargs,  # type: ignore[arg-type]
    )


def rejected(result: VerifyResult, reason: Reason) -> None:
    assert not result.ok, result
    assert result.reason is reason, result
    assert result.rds_error_code == REASONS[reason].rds_error_code
    assert result.detail


def test_genuine_token_is_accepted() -> None:
    result = verify(build_token())
    assert result.ok and result.reason is None and result.rds_error_code is None
    assert result.token is not None and result.token.db_user == "app_user"
    assert result.access_key_id == ALICE.access_key_id


def test_temporary_credentials_are_accepted() -> None:
    result = verify(build_token(principal=TEMP))
    assert result.ok, result
    assert result.credential is not None and result.credential.is_temporary


# ------------------------------------------------------------------------------ malformed_token


def _valid() -> str:
    return build_token()


MALFORMED: dict[str, str] = {
    "empty": "",
    "no query": f"{HOST}:{PORT}/",
    "no question mark": _valid().replace("?", "", 1),
    "empty query": f"{HOST}:{PORT}/?",
    "https scheme": "https://" + _valid(),
    "http scheme upper": "HTTP://" + _valid(),
    "path": _valid().replace(f"{PORT}/?", f"{PORT}/db?", 1),
    "no host": _valid()[_valid().index("/") :],
    "bad port": _valid().replace(f":{PORT}/", ":99999/", 1),
    "non numeric port": _valid().replace(f":{PORT}/", ":pg/", 1),
    "missing DBUser": replace_param(_valid(), "DBUser", None),
    "missing Action": replace_param(_valid(), "Action", None),
    "missing Signature": replace_param(_valid(), "X-Amz-Signature", None),
    "missing Date": replace_param(_valid(), "X-Amz-Date", None),
    "missing Credential": replace_param(_valid(), "X-Amz-Credential", None),
    "missing Expires": replace_param(_valid(), "X-Amz-Expires", None),
    "missing SignedHeaders": replace_param(_valid(), "X-Amz-SignedHeaders", None),
    "missing Algorithm": replace_param(_valid(), "X-Amz-Algorithm", None),
    "duplicate DBUser": _valid() + "&DBUser=app_user",
    "duplicate via escape": _valid() + "&DB%55ser=app_user",
    "duplicate Signature": _valid() + "&X-Amz-Signature=" + "0" * 64,
    "empty parameter": _valid().replace("&", "&&", 1),
    "trailing ampersand": _valid() + "&",
    "bad escape": replace_param(_valid(), "DBUser", "app%zzuser"),
    "truncated escape": replace_param(_valid(), "DBUser", "app_user%2"),
    "bad utf-8 escape": replace_param(_valid(), "DBUser", "app%C3user"),
    "bad date": replace_param(_valid(), "X-Amz-Date", "2024-05-01T12:00:00Z"),
    "impossible date": replace_param(_valid(), "X-Amz-Date", "20240231T120000Z"),
    "impossible time": replace_param(_valid(), "X-Amz-Date", "20240501T250000Z"),
    "non-hex signature": replace_param(_valid(), "X-Amz-Signature", "g" * 64),
    "upper-case signature": replace_param(
        _valid(), "X-Amz-Signature", get_param(_valid(), "X-Amz-Signature").upper()
    ),
    "short signature": replace_param(_valid(), "X-Amz-Signature", "ab" * 31),
    "empty DBUser": replace_param(_valid(), "DBUser", ""),
    "bare DBUser without =": replace_param(_valid(), "DBUser", None) + "&DBUser",
    "non numeric expires": replace_param(_valid(), "X-Amz-Expires", "15m"),
    "negative expires": replace_param(_valid(), "X-Amz-Expires", "-1"),
    "signed headers": replace_param(_valid(), "X-Amz-SignedHeaders", "host%3Bx-amz-date"),
    "credential parts": replace_param(
        _valid(), "X-Amz-Credential", "AKIAALICEEXAMPLE0001%2F20240501%2Fus-east-1%2Frds-db"
    ),
    "credential terminator": replace_param(
        _valid(), "X-Amz-Credential",
        "AKIAALICEEXAMPLE0001%2F20240501%2Fus-east-1%2Frds-db%2Faws5_request",
    ),
    "credential date": replace_param(
        _valid(), "X-Amz-Credential",
        "AKIAALICEEXAMPLE0001%2F2024-5-1%2Fus-east-1%2Frds-db%2Faws4_request",
    ),
    "credential impossible date": replace_param(
        _valid(), "X-Amz-Credential",
        "AKIAALICEEXAMPLE0001%2F20241301%2Fus-east-1%2Frds-db%2Faws4_request",
    ),
    "too long": _valid() + "&X-Pad=" + "a" * 70_000,
    "space in host": "my db" + _valid()[4:],
    "userinfo in host": "user@" + _valid(),
    "unterminated ipv6": "[::1:5432/?" + _valid().partition("?")[2],
}


@pytest.mark.parametrize("token", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_token(token: str) -> None:
    rejected(verify(token), Reason.MALFORMED_TOKEN)


def test_malformed_details_name_the_problem() -> None:
    assert "twice" in verify(MALFORMED["duplicate DBUser"]).detail
    assert "DBUser" in verify(MALFORMED["missing DBUser"]).detail
    assert "percent-escape" in verify(MALFORMED["bad escape"]).detail
    assert "X-Amz-Date" in verify(MALFORMED["bad date"]).detail
    assert "hex" in verify(MALFORMED["non-hex signature"]).detail
    assert "scheme" in verify(MALFORMED["https scheme"]).detail
    assert verify(MALFORMED["https scheme"]).hint is not None
    assert "path" in verify(MALFORMED["path"]).detail
    assert "?query" in verify(MALFORMED["no question mark"]).detail
    assert verify(MALFORMED["empty DBUser"]).detail == "DBUser is empty"


def test_non_string_password_is_malformed() -> None:
    result = verify(b"bytes-not-str")  # type: ignore[arg-type]
    rejected(result, Reason.MALFORMED_TOKEN)
    assert result.detail == "the password is bytes, not text"
    assert verify("").detail == "the password is empty"


def test_plain_password_is_malformed_with_a_hint() -> None:
    result = verify("hunter2")
    rejected(result, Reason.MALFORMED_TOKEN)
    assert result.hint is not None and "generate_db_auth_token" in result.hint


# ------------------------------------------------------------------------- format / scope codes


def test_unsupported_algorithm() -> None:
    rejected(verify(build_token(algorithm="AWS4-HMAC-SHA512")), Reason.UNSUPPORTED_ALGORITHM)


def test_wrong_action() -> None:
    result = verify(build_token(action="DbConnect"))
    rejected(result, Reason.WRONG_ACTION)
    assert "DbConnect" in result.detail


def test_wrong_service() -> None:
    result = verify(build_token(service="rds"))
    rejected(result, Reason.WRONG_SERVICE)
    assert result.hint is not None


def test_region_mismatch() -> None:
    result = verify(build_token(region="eu-west-1"))
    rejected(result, Reason.REGION_MISMATCH)
    assert "eu-west-1" in result.detail and "us-east-1" in result.detail


def test_host_name_region_does_not_matter_only_the_instance_region() -> None:
    """The scope region must be the instance's, whatever the host says: SigV4 scopes a
    signature to the region of the service that checks it (AWS docs,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html),
    and generate_db_auth_token signs with the client's region, not one read from the host
    (boto/botocore botocore/signers.py)."""
    host = "mydb.c0abcdefghij.eu-west-1.rds.amazonaws.com"
    result = verify(build_token(host=host, region="us-east-1"), ep=endpoint(host=host))
    assert result.ok, result


def test_scope_date_mismatch() -> None:
    rejected(verify(build_token(scope_date="20240430")), Reason.SCOPE_DATE_MISMATCH)


# ---------------------------------------------------------------------------------------- time


def test_expires_901_is_out_of_range() -> None:
    result = verify(build_token(expires=901))
    rejected(result, Reason.EXPIRES_OUT_OF_RANGE)
    assert "901" in result.detail


def test_expires_900_is_accepted() -> None:
    assert verify(build_token(expires=900), now=AT + timedelta(seconds=900)).ok


def test_expires_zero_is_accepted_only_at_the_signing_second() -> None:
    token = build_token(expires=0)
    assert verify(token, now=AT).ok
    rejected(verify(token, now=AT + timedelta(seconds=1)), Reason.EXPIRED)


def test_max_expires_is_configurable() -> None:
    settings = VerifierSettings(max_expires=3600)
    assert verify(build_token(expires=3600), settings=settings).ok
    rejected(verify(build_token(expires=3601), settings=settings), Reason.EXPIRES_OUT_OF_RANGE)


def test_not_yet_valid_beyond_the_default_skew() -> None:
    token = build_token(at=NOW + timedelta(minutes=5, seconds=1))
    result = verify(token)
    rejected(result, Reason.NOT_YET_VALID)
    assert "future" in result.detail


def test_future_token_within_the_skew_is_accepted() -> None:
    assert verify(build_token(at=NOW + timedelta(minutes=5))).ok


def test_skew_is_configurable() -> None:
    token = build_token(at=NOW + timedelta(seconds=61))
    strict = VerifierSettings(max_future_skew=timedelta(seconds=60))
    rejected(verify(token, settings=strict), Reason.NOT_YET_VALID)
    assert verify(build_token(at=NOW + timedelta(seconds=60)), settings=strict).ok
    lax = VerifierSettings(max_future_skew=timedelta(hours=1))
    assert verify(build_token(at=NOW + timedelta(minutes=59)), settings=lax).ok


def test_negative_skew_setting_reads_negative_in_the_detail() -> None:
    result = verify(build_token(at=NOW), settings=VerifierSettings(
        max_future_skew=timedelta(seconds=-5)))
    rejected(result, Reason.NOT_YET_VALID)
    assert "at most -5 s of clock skew" in result.detail


def test_expiry_boundary() -> None:
    token = build_token(expires=900)
    assert verify(token, now=AT + timedelta(seconds=900)).ok
    result = verify(token, now=AT + timedelta(seconds=901))
    rejected(result, Reason.EXPIRED)
    assert result.rds_error_code == "ExpiredToken"
    assert result.hint is not None and "fresh token" in result.hint


def test_expired_sub_second() -> None:
    token = build_token(expires=900)
    rejected(verify(token, now=AT + timedelta(seconds=900, microseconds=1)), Reason.EXPIRED)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(build_token(), now=NOW.replace(tzinfo=None))


# ------------------------------------------------------------------------------------- binding


def test_host_mismatch_other_host() -> None:
    token = build_token(host="otherdb.c0abcdefghij.us-east-1.rds.amazonaws.com")
    result = verify(token)
    rejected(result, Reason.HOST_MISMATCH)
    assert HOST in result.detail


def test_host_mismatch_wrong_port() -> None:
    result = verify(build_token(port=3306))
    rejected(result, Reason.HOST_MISMATCH)
    assert "port 3306" in result.detail
    assert result.hint is not None and str(PORT) in result.hint


def test_host_mismatch_no_port() -> None:
    result = verify(build_token(port=None))
    rejected(result, Reason.HOST_MISMATCH)
    assert "without a port" in result.detail


def test_host_mismatch_cname() -> None:
    result = verify(build_token(host="db.example.com"))
    rejected(result, Reason.HOST_MISMATCH)
    assert result.hint is not None and "CNAME" in result.hint


def test_host_mismatch_ip_address() -> None:
    rejected(verify(build_token(host="10.0.0.12")), Reason.HOST_MISMATCH)


def test_alias_is_accepted() -> None:
    ep = endpoint(aliases=("mycluster.cluster-c0abcdefghij.us-east-1.rds.amazonaws.com",
                           "127.0.0.1:6543"))
    assert verify(build_token(host="mycluster.cluster-c0abcdefghij.us-east-1.rds.amazonaws.com"),
                  ep=ep).ok
    assert verify(build_token(host="127.0.0.1", port=6543), ep=ep).ok
    rejected(verify(build_token(host="127.0.0.1", port=PORT), ep=ep), Reason.HOST_MISMATCH)


def test_host_is_case_insensitive() -> None:
    assert verify(build_token(host=HOST.upper())).ok
    assert verify(build_token(host=HOST), ep=endpoint(host=HOST.upper())).ok


def test_trailing_dot_host_is_the_same_name() -> None:
    assert verify(build_token(host=HOST + ".")).ok


def test_db_user_mismatch() -> None:
    result = verify(build_token(db_user="app_user"), db_user="other_user")
    rejected(result, Reason.DB_USER_MISMATCH)
    assert "'app_user'" in result.detail and "'other_user'" in result.detail


def test_db_user_is_case_sensitive() -> None:
    result = verify(build_token(db_user="App_User"), db_user="app_user")
    rejected(result, Reason.DB_USER_MISMATCH)
    assert result.hint is not None and "case-sensitive" in result.hint


# --------------------------------------------------------------------------------- credentials


def test_unknown_access_key() -> None:
    stranger = Principal("AKIASTRANGER00000000", "x")
    result = verify(build_token(principal=stranger))
    rejected(result, Reason.UNKNOWN_ACCESS_KEY)
    assert stranger.access_key_id in result.detail


def test_inactive_access_key() -> None:
    creds = StaticCredentials({ALICE.access_key_id: ALICE.resolved(active=False)})
    rejected(verify(build_token(), creds=creds), Reason.INACTIVE_ACCESS_KEY)


def test_credentials_expired_at_connect_time() -> None:
    creds = StaticCredentials(
        {TEMP.access_key_id: TEMP.resolved(expires_at=AT + timedelta(seconds=10))}
    )
    token = build_token(principal=TEMP)
    assert verify(token, creds=creds, now=AT + timedelta(seconds=10)).ok
    result = verify(token, creds=creds, now=AT + timedelta(seconds=11))
    rejected(result, Reason.CREDENTIALS_EXPIRED)
    assert result.rds_error_code == "ExpiredToken"


def test_session_token_missing() -> None:
    result = verify(build_token(principal=TEMP, include_session_token=False))
    rejected(result, Reason.SESSION_TOKEN_MISMATCH)
    assert "no X-Amz-Security-Token" in result.detail


def test_session_token_empty() -> None:
    result = verify(build_token(principal=TEMP, session_token=""))
    rejected(result, Reason.SESSION_TOKEN_MISMATCH)
    assert "empty" in result.detail


def test_session_token_different() -> None:
    result = verify(build_token(principal=TEMP, session_token="IQoJ-some-other-session"))
    rejected(result, Reason.SESSION_TOKEN_MISMATCH)
    assert "not the session token" in result.detail


def test_session_token_on_a_long_term_key() -> None:
    result = verify(build_token(principal=ALICE, session_token="IQoJ-stray"))
    rejected(result, Reason.SESSION_TOKEN_MISMATCH)
    assert "long-term" in result.detail


def test_session_token_truncated() -> None:
    token = build_token(principal=TEMP, session_token=TEMP.session_token[:-5])  # type: ignore[index]
    rejected(verify(token), Reason.SESSION_TOKEN_MISMATCH)


# ----------------------------------------------------------------------------------- signature


def test_signature_mismatch_altered_byte() -> None:
    token = build_token()
    sig = get_param(token, "X-Amz-Signature")
    flipped = ("1" if sig[10] != "1" else "2").join((sig[:10], sig[11:]))
    result = verify(replace_param(token, "X-Amz-Signature", flipped))
    rejected(result, Reason.SIGNATURE_MISMATCH)
    assert ALICE.access_key_id in result.detail


def test_signature_mismatch_altered_signed_value() -> None:
    """A different DBUser in the text than was signed (the login user matches the text)."""
    token = build_token(db_user="app_user")
    tampered = replace_param(token, "DBUser", "admin")
    rejected(verify(tampered, db_user="admin"), Reason.SIGNATURE_MISMATCH)


def test_signature_mismatch_wrong_secret() -> None:
    rejected(verify(build_token(secret="not-the-secret")), Reason.SIGNATURE_MISMATCH)


def test_truncated_tokens_are_always_rejected() -> None:
    """Drivers that cut passwords (e.g. at 255 bytes) must never produce an accepted token.

    Every proper prefix of genuine tokens in three surface forms is rejected as malformed: every
    SDK ends its token with the signature or SignedHeaders, so a cut always loses a required part.
    """
    seen: set[Reason] = set()
    for form in ("botocore", "js_v3", "java"):
        token = build_token(principal=TEMP, form=form)
        for cut in range(1, len(token)):
            result = verify(token[:cut])
            assert not result.ok, (form, cut)
            assert result.reason is not None
            seen.add(result.reason)
    assert seen == {Reason.MALFORMED_TOKEN}


def test_signature_mismatch_truncated_signed_value() -> None:
    """A cut DBUser with a login user to match: only the signature can tell."""
    token = build_token(db_user="app_user_long_name", form="go")
    cut = replace_param(token, "DBUser", "app_user")
    rejected(verify(cut, db_user="app_user"), Reason.SIGNATURE_MISMATCH)


def test_signature_mismatch_signed_for_another_host_form() -> None:
    token = build_token(signed_host="evil.example.com:5432")
    rejected(verify(token), Reason.SIGNATURE_MISMATCH)


def test_signature_mismatch_added_unsigned_parameter() -> None:
    rejected(verify(build_token() + "&X-Extra=1"), Reason.SIGNATURE_MISMATCH)


def test_signature_mismatch_undecoded_token() -> None:
    """A driver or shell that URL-decoded the token breaks it (the credential loses its %2F)."""
    token = build_token(db_user="app user")
    decoded = token.replace("%20", "+")
    rejected(verify(decoded, db_user="app+user"), Reason.SIGNATURE_MISMATCH)


# ----------------------------------------------------------------------- internal / authorizer


class ExplodingLookup:
    def lookup(self, access_key_id: str) -> ResolvedCredential | None:
        raise RuntimeError("IAM state unavailable")


def test_internal_error_when_the_lookup_raises() -> None:
    result = verify(build_token(), creds=ExplodingLookup())
    rejected(result, Reason.INTERNAL_ERROR)
    assert result.rds_error_code == "InternalError"
    assert "IAM state unavailable" in result.detail


def test_lookup_that_raises_after_an_earlier_failure_reports_the_earlier_one() -> None:
    rejected(verify(build_token(), db_user="someone", creds=ExplodingLookup()),
             Reason.DB_USER_MISMATCH)


@dataclass
class PolicyAuthorizer:
    """A test Authorizer: a table of (principal, db user) -> allow/deny; records its calls."""

    allow: set[tuple[str, str]]
    deny: set[tuple[str, str]]
    calls: list[tuple[str, str]]

    def authorize(
        self,
        *,
        credential: ResolvedCredential,
        token: ParsedToken,
        endpoint: Endpoint,
        db_user: str,
        now: datetime,
    ) -> Rejection | None:
        key = (credential.access_key_id, db_user)
        self.calls.append(key)
        assert token.db_user == db_user and endpoint.host == HOST and now.tzinfo is not None
        if key in self.deny:
            return Rejection(Reason.EXPLICIT_DENY, f"{key} explicitly denied", "remove the Deny")
        if key not in self.allow:
            return Rejection(Reason.NOT_AUTHORIZED, f"{key} not allowed", "add an Allow")
        return None


def authorizer() -> PolicyAuthorizer:
    return PolicyAuthorizer(
        allow={(ALICE.access_key_id, "app_user"), (BOB.access_key_id, "app_user")},
        deny={(BOB.access_key_id, "app_user")},
        calls=[],
    )


def test_authorizer_allows() -> None:
    auth = authorizer()
    assert verify(build_token(), authorizer=auth).ok
    assert auth.calls == [(ALICE.access_key_id, "app_user")]


def test_not_authorized() -> None:
    auth = authorizer()
    result = verify(build_token(db_user="reporting"), db_user="reporting", authorizer=auth)
    rejected(result, Reason.NOT_AUTHORIZED)
    assert result.rds_error_code == "NotAuthorized" and result.hint == "add an Allow"


def test_explicit_deny() -> None:
    result = verify(build_token(principal=BOB), authorizer=authorizer())
    rejected(result, Reason.EXPLICIT_DENY)
    assert REASONS[Reason.EXPLICIT_DENY].http_status == 403


def test_authorizer_not_called_for_a_bad_signature() -> None:
    auth = authorizer()
    rejected(verify(build_token(secret="wrong"), authorizer=auth), Reason.SIGNATURE_MISMATCH)
    assert auth.calls == []


class ExplodingAuthorizer:
    def authorize(self, **kwargs: object) -> Rejection | None:
        raise KeyError("policy store")


def test_internal_error_when_the_authorizer_raises() -> None:
    result = verify(build_token(), authorizer=ExplodingAuthorizer())  # type: ignore[arg-type]
    rejected(result, Reason.INTERNAL_ERROR)
    assert "policy store" in result.detail


def test_result_carries_the_resolved_credential_on_failure_after_lookup() -> None:
    result = verify(build_token(secret="wrong"))
    assert result.credential is not None
    assert result.credential.access_key_id == ALICE.access_key_id
    assert result.principal_arn is None


# ---------------------------------------------------------------------------------- check order


def test_documented_check_order_matches_the_code() -> None:
    from rdsiam_emulator.reasons import CHECK_ORDER

    stages = [check.stage for check in CHECKS]
    assert stages == sorted(stages, key=CHECK_ORDER.index)


ORDER_CASES = [
    # (token kwargs, verify kwargs, expected) — several checks fail; the earliest stage wins.
    ({"algorithm": "X", "region": "eu-west-1"}, {}, Reason.UNSUPPORTED_ALGORITHM),
    ({"action": "DbConnect", "service": "s3"}, {}, Reason.WRONG_ACTION),
    ({"service": "s3", "region": "eu-west-1"}, {}, Reason.WRONG_SERVICE),
    ({"region": "eu-west-1", "expires": 901}, {}, Reason.REGION_MISMATCH),
    ({"scope_date": "20240430", "expires": 901}, {}, Reason.SCOPE_DATE_MISMATCH),
    ({"expires": 901, "port": 1}, {"now": AT + timedelta(hours=1)}, Reason.EXPIRES_OUT_OF_RANGE),
    ({"at": NOW + timedelta(hours=1), "port": 1}, {}, Reason.NOT_YET_VALID),
    ({"port": 1}, {"now": AT + timedelta(hours=1)}, Reason.EXPIRED),
    ({"port": 1, "db_user": "x"}, {}, Reason.HOST_MISMATCH),
    ({"db_user": "x", "principal": Principal("AKIANOBODY0000000000", "s")}, {},
     Reason.DB_USER_MISMATCH),
    ({"principal": Principal("AKIANOBODY0000000000", "s"), "secret": "bad"}, {},
     Reason.UNKNOWN_ACCESS_KEY),
    ({"principal": TEMP, "session_token": "other", "secret": "bad"}, {},
     Reason.SESSION_TOKEN_MISMATCH),
    ({"secret": "bad", "principal": BOB}, {"authorizer": authorizer()}, Reason.SIGNATURE_MISMATCH),
]


@pytest.mark.parametrize(("token_kw", "verify_kw", "expected"), ORDER_CASES,
                         ids=[c[2].value for c in ORDER_CASES])
def test_first_failing_check_wins(
    token_kw: dict[str, object], verify_kw: dict[str, object], expected: Reason
) -> None:
    token = build_token(**token_kw)  # type: ignore[arg-type]
    db_user = "app_user"
    rejected(verify(token, db_user=db_user, **verify_kw), expected)  # type: ignore[arg-type]


def test_credential_checks_in_order_inactive_before_expired_before_session() -> None:
    cred = TEMP.resolved(active=False, expires_at=AT)
    creds = StaticCredentials({TEMP.access_key_id: cred})
    token = build_token(principal=TEMP, session_token="other")
    rejected(verify(token, creds=creds), Reason.INACTIVE_ACCESS_KEY)
    creds = StaticCredentials({TEMP.access_key_id: TEMP.resolved(expires_at=AT)})
    rejected(verify(token, creds=creds), Reason.CREDENTIALS_EXPIRED)


def test_run_checks_reports_every_check() -> None:
    from rdsiam_emulator.auth.tokens import parse_token

    token = parse_token(build_token(region="eu-west-1", port=3306))
    ctx = CheckContext(token, endpoint(), "app_user", lookup(), NOW)
    outcomes = list(run_checks(ctx, stop_at_first=False))
    assert [o.name for o in outcomes] == [c.name for c in CHECKS]
    by_name = {o.name: o for o in outcomes}
    assert by_name["credential scope region"].status == "fail"
    assert by_name["host binding"].status == "fail"
    assert by_name["DBUser equals the login user"].status == "pass"
    assert by_name["signature"].status == "pass"  # consistently signed, just for the wrong place
    assert by_name["rds-db:connect authorization"].status == "skip"
    first = list(run_checks(CheckContext(token, endpoint(), "app_user", lookup(), NOW),
                            stop_at_first=True))
    assert first[-1].status == "fail" and first[-1].rejection is not None
    assert first[-1].rejection.reason is Reason.REGION_MISMATCH


def test_run_checks_skips_without_inputs() -> None:
    from rdsiam_emulator.auth.tokens import parse_token

    ctx = CheckContext(parse_token(build_token()), None, None, None, None)
    outcomes = {o.name: o for o in run_checks(ctx, stop_at_first=False)}
    assert outcomes["credential scope date"].status == "pass"
    assert outcomes["X-Amz-Expires within 0..900"].status == "pass"
    for name in ("credential scope region", "not expired", "host binding", "access key",
                 "signature"):
        assert outcomes[name].status == "skip", name
    assert "no endpoint" in outcomes["host binding"].detail


def test_every_reason_code_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "reason-codes.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in doc.splitlines()
            if line.startswith("| `")}
    for reason, info in REASONS.items():
        assert reason.value in rows, reason
        cells = [c.strip() for c in rows[reason.value].split("|")]
        assert cells[2] == (info.rds_error_code or "—"), reason
        assert cells[3] == (str(info.http_status) if info.http_status else "—"), reason
        assert cells[4] == info.stage, reason
