"""The pure decision (no moto): layers, deciding statements, malformed documents, near misses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdsiam_emulator.auth.credentials import ResolvedCredential
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import parse_token
from rdsiam_emulator.iam.api_source import StaticPolicySource
from rdsiam_emulator.iam.authorizer import IamAuthorizer, build_context, check_principal
from rdsiam_emulator.iam.conditions import OPERATORS
from rdsiam_emulator.iam.evaluator import HintInputs, PolicyRef, Request, evaluate
from rdsiam_emulator.iam.explain_policy import check_to_json, format_check
from rdsiam_emulator.iam.principals import (
    Principal,
    PrincipalArnError,
    PrincipalPolicies,
    principal_from_arn,
)
from rdsiam_emulator.iam.request_context import GlobalKeys
from rdsiam_emulator.reasons import Reason

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ACCT = "123456789012"


def arn(rid: str = "db-ABC", user: str = "app", region: str = "us-east-1") -> str:
    return f"arn:aws:rds-db:{region}:{ACCT}:dbuser:{rid}/{user}"


def pol(*statements: dict[str, Any], name: str = "p", layer: Any = "identity") -> PolicyRef:
    return PolicyRef(name, {"Version": "2012-10-17", "Statement": list(statements)}, layer)


def allow(resource: Any = None, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource or arn(), **extra}


def deny(resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": "rds-db:connect", "Resource": resource, **extra}


REQ = Request("rds-db:connect", arn())
HINTS = HintInputs("mydb", "db-ABC", "app", "us-east-1", ACCT)


@pytest.mark.parametrize("rid", ["db-ABC", "cluster-XYZ", "prx-0123456789abcdef"])
def test_cluster_and_proxy_resource_ids(rid: str) -> None:
    decision = evaluate([pol(allow(f"arn:aws:rds-db:us-east-1:{ACCT}:dbuser:{rid}/*"))],
                        Request("rds-db:connect", arn(rid)))
    assert decision.allowed
    other = evaluate([pol(allow(f"arn:aws:rds-db:us-east-1:{ACCT}:dbuser:cluster-*/*"))],
                     Request("rds-db:connect", arn(rid)))
    assert other.allowed is rid.startswith("cluster-")


def test_allow_names_the_first_identity_allow() -> None:
    decision = evaluate([pol(allow(Sid="One"), name="a"), pol(allow(Sid="Two"), name="b")], REQ)
    assert decision.outcome == "allow"
    assert decision.deciding is not None and decision.deciding.statement.sid == "One"


def test_deny_anywhere_wins_and_is_named() -> None:
    decision = evaluate([pol(allow())], REQ, session=[pol(allow(), layer="session")],
                        boundary=[pol(allow(), deny(Sid="Fence"), name="b", layer="boundary")])
    assert decision.outcome == "explicit_deny"
    assert decision.deciding is not None and decision.deciding.statement.sid == "Fence"
    assert "Sid 'Fence' of b" in decision.detail


@pytest.mark.parametrize(("session", "boundary", "layer"), [
    ([], None, "session"),
    (None, [], "boundary"),
    ([pol(allow(arn(user="bob")), layer="session")], None, "session"),
])
def test_missing_layer(session: Any, boundary: Any, layer: str) -> None:
    decision = evaluate([pol(allow())], REQ, session=session, boundary=boundary)
    assert decision.outcome == "not_authorized" and decision.missing_layer == layer


def test_malformed_identity_policy_denies_even_with_an_allow() -> None:
    broken = PolicyRef("broken", "{nope")
    decision = evaluate([pol(allow()), broken], REQ)
    assert decision.outcome == "not_authorized"
    assert decision.malformed and decision.malformed[0][0] is broken
    assert "malformed" in decision.detail


def test_explicit_deny_still_reported_with_a_malformed_neighbour() -> None:
    decision = evaluate([pol(deny()), PolicyRef("broken", "[]")], REQ)
    assert decision.outcome == "explicit_deny" and decision.malformed


@pytest.mark.parametrize(("statement", "kind"), [
    (allow(arn("mydb")), "instance_identifier"),
    (allow(arn(region="eu-west-1")), "region"),
    (allow("arn:aws:rds-db:us-east-1:999999999999:dbuser:db-ABC/app"), "account"),
    (allow(arn(user="APP")), "db_user_case"),
    ({"Effect": "Allow", "Action": "rds:connect", "Resource": arn()}, "action_service"),
    ({"Effect": "Allow", "Action": "rds:*", "Resource": "*"}, "action_service"),
    (allow(f"arn:aws:rds:us-east-1:{ACCT}:dbuser:db-ABC/app"), "resource_service"),
])
def test_near_misses(statement: dict[str, Any], kind: str) -> None:
    decision = evaluate([pol(statement)], REQ, hints=HINTS)
    assert decision.outcome == "not_authorized"
    assert [m.kind for m in decision.near_misses] == [kind]


@pytest.mark.parametrize(("resource", "what"), [
    (f"arn:aws:rds:us-east-1:{ACCT}:db:mydb", "DB instance 'mydb'"),
    (f"arn:aws:rds:us-east-1:{ACCT}:cluster:aurora-1", "Aurora cluster 'aurora-1'"),
    (f"arn:aws:rds:us-east-1:{ACCT}:db-proxy:prx-0123456789abcdef", "RDS Proxy"),
])
def test_rds_api_arn_is_a_near_miss_naming_the_dbuser_arn(resource: str, what: str) -> None:
    """The management API's ARN (common in infrastructure code) is not the dbuser ARN."""
    decision = evaluate([pol(allow(resource, Sid="Infra"))], REQ, hints=HINTS)
    assert decision.outcome == "not_authorized"
    assert [m.kind for m in decision.near_misses] == ["rds_api_arn"]
    message = decision.near_misses[0].message
    assert message.startswith(f"Sid 'Infra' of p names {resource!r}, the RDS API ARN of the {what}")
    assert f"needs the dbuser ARN, here {arn()!r}" in message
    # it is the hint of the refusal, not the generic "attach a policy"
    check = check_principal(principal(), arn(), source=StaticPolicySource(
        (pol(allow(resource, Sid="Infra")),)), region="us-east-1", now=NOW, hints=HINTS)
    rejection = check.rejection()
    assert rejection is not None and rejection.hint == message


def test_no_near_miss_when_conditions_fail_or_nothing_is_close() -> None:
    cond = {"StringEquals": {"aws:RequestedRegion": "nowhere"}}
    assert not evaluate([pol(allow(arn("mydb"), Condition=cond))], REQ, hints=HINTS).near_misses
    assert not evaluate([pol(allow(arn(user="bob")))], REQ, hints=HINTS).near_misses


def test_condition_on_a_present_key_is_a_near_miss() -> None:
    """An Allow that fails only on a condition whose key is in the context (an aws:CurrentTime
    window that has ended) is named with the key, the operator and both values, and is the hint
    instead of the generic "attach a policy" (newcomer trial, issue #18)."""
    window = allow(Sid="Window", Condition={"DateLessThan": {
        "aws:CurrentTime": "2026-01-01T00:00:00Z"}})
    check = check_principal(principal(), arn(), source=StaticPolicySource((pol(window),)),
                            region="us-east-1", now=NOW, hints=HINTS)
    assert check.decision.outcome == "not_authorized"
    [miss] = check.decision.near_misses
    assert miss.kind == "condition"
    assert miss.message == (
        "Sid 'Window' of p would allow it, but its condition DateLessThan on aws:CurrentTime "
        "fails: the request context has aws:CurrentTime = '2026-06-01T12:00:00Z', the policy "
        "requires DateLessThan '2026-01-01T00:00:00Z'")
    rejection = check.rejection()
    assert rejection is not None and rejection.hint == miss.message
    assert check_to_json(check)["near_misses"] == [{"kind": "condition", "message": miss.message}]
    # a statement for another resource is not close, whatever its condition says
    other = allow(arn(user="bob"), Condition={"DateLessThan": {
        "aws:CurrentTime": "2026-01-01T00:00:00Z"}})
    assert not check_principal(principal(), arn(), source=StaticPolicySource((pol(other),)),
                               region="us-east-1", now=NOW, hints=HINTS).decision.near_misses


def principal(**kw: Any) -> Principal:
    base: dict[str, Any] = {"type": "User", "arn": f"arn:aws:iam::{ACCT}:user/alice",
                            "account_id": ACCT, "user_name": "alice", "user_id": "AIDAX"}
    base.update(kw)
    return Principal(**base)


def test_context_has_rds_keys_and_never_unsupported_ones() -> None:
    pols = PrincipalPolicies((), tags=(("Team", "db"),))
    ctx = build_context(principal(), pols, region="us-east-1", now=NOW,
                        extra={"aws:SourceIp": "10.0.0.1", "aws:UserAgent": "x", "my:key": "v"})
    assert ctx["aws:securetransport"] == ("true",)
    assert ctx["aws:currenttime"] == ("2026-06-01T12:00:00Z",)
    assert ctx["aws:epochtime"] == (str(int(NOW.timestamp())),)
    assert ctx["aws:principaltag/team"] == ("db",)
    assert ctx["aws:username"] == ("alice",) and ctx["aws:userid"] == ("AIDAX",)
    assert ctx["my:key"] == ("v",)
    assert "aws:sourceip" not in ctx and "aws:useragent" not in ctx
    assert "aws:multifactorauthpresent" not in ctx and "aws:tokenissuetime" not in ctx


def test_context_for_role_sessions() -> None:
    p = principal(type="AssumedRole", arn=f"arn:aws:sts::{ACCT}:assumed-role/r/s",
                  user_name=None, role_arn=f"arn:aws:iam::{ACCT}:role/r", user_id="AROAX:s",
                  issued_at=NOW, mfa_present=False)
    ctx = build_context(p, PrincipalPolicies(()), region="eu-west-1", now=NOW)
    assert ctx["aws:principalarn"] == (f"arn:aws:iam::{ACCT}:role/r",)
    assert ctx["aws:principaltype"] == ("AssumedRole",)
    assert "aws:username" not in ctx
    assert ctx["aws:tokenissuetime"] == ("2026-06-01T12:00:00Z",)
    assert ctx["aws:multifactorauthpresent"] == ("false",)
    assert ctx["aws:requestedregion"] == ("eu-west-1",)


def test_check_principal_and_renderings() -> None:
    source = StaticPolicySource((pol(allow(arn("mydb")), name="file a"),))
    check = check_principal(principal(), arn(), source=source, region="us-east-1", now=NOW,
                            hints=HINTS)
    assert not check.decision.allowed
    rejection = check.rejection()
    assert rejection is not None and rejection.reason is Reason.NOT_AUTHORIZED
    assert rejection.hint is not None and "DbiResourceId" in rejection.hint
    text = "\n".join(format_check(check))
    assert "DENY (not_authorized)" in text and "[instance_identifier]" in text
    data = check_to_json(check)
    assert data["reason"] == "not_authorized" and data["near_misses"][0]["kind"] == (
        "instance_identifier")
    ok = check_principal(principal(), arn(), source=StaticPolicySource((pol(allow(Sid="S")),)),
                         region="us-east-1", now=NOW)
    assert ok.rejection() is None and check_to_json(ok)["deciding"]["sid"] == "S"


@pytest.mark.parametrize(("kind", "expected"), [
    ({}, f"IAM user 'arn:aws:iam::{ACCT}:user/alice' is not authorized to perform "
         "rds-db:connect"),
    ({"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCT}:assumed-role/app/s1",
      "role_arn": f"arn:aws:iam::{ACCT}:role/app", "user_name": None},
     f"role session 'arn:aws:sts::{ACCT}:assumed-role/app/s1' of role "
     f"'arn:aws:iam::{ACCT}:role/app' is not authorized"),
    ({"type": "FederatedUser", "arn": f"arn:aws:sts::{ACCT}:federated-user/bob"},
     f"federated user 'arn:aws:sts::{ACCT}:federated-user/bob' issued by IAM user 'alice' is "
     "not authorized"),
])
def test_refusals_word_the_caller_by_kind(kind: dict[str, Any], expected: str) -> None:
    """An IAM user assumes nothing: only role sessions are called sessions."""
    source = StaticPolicySource((pol(allow(arn(user="bob"))),))
    rejection = check_principal(principal(**kind), arn(), source=source, region="us-east-1",
                                now=NOW).rejection()
    assert rejection is not None and rejection.detail.startswith(expected)
    assert "assumed by" not in rejection.detail
    denied = check_principal(principal(**kind), arn(), source=StaticPolicySource(
        (pol(deny(Sid="No")),)), region="us-east-1", now=NOW).rejection()
    assert denied is not None and denied.reason is Reason.EXPLICIT_DENY
    who = expected.partition(" is not")[0]
    assert denied.detail.startswith(who + " is explicitly denied")


def test_cross_account_allow_is_refused() -> None:
    other = principal(account_id="210987654321", arn="arn:aws:iam::210987654321:user/alice")
    check = check_principal(other, arn(), source=StaticPolicySource((pol(allow()),)),
                            region="us-east-1", now=NOW)
    assert check.decision.outcome == "not_authorized"
    assert check.decision.near_misses[0].kind == "cross_account"


def test_principal_from_arn() -> None:
    user = principal_from_arn(f"arn:aws:iam::{ACCT}:user/path/alice")
    assert user.type == "User" and user.user_name == "alice"
    role = principal_from_arn(f"arn:aws:iam::{ACCT}:role/svc/app")
    assert role.type == "AssumedRole" and role.role_name == "app"
    session = principal_from_arn(f"arn:aws:sts::{ACCT}:assumed-role/app/s1")
    assert session.role_arn == f"arn:aws:iam::{ACCT}:role/app" and session.session_name == "s1"
    for bad in (f"arn:aws:sts::{ACCT}:federated-user/x", "alice"):
        with pytest.raises(PrincipalArnError):
            principal_from_arn(bad)


TOKEN = (
    "h.example.com:5432/?Action=connect&DBUser=app&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260601%2Fus-east-1%2Frds-db%2Faws4_request"
    "&X-Amz-Date=20260601T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=" + "0" * 64
)


def test_authorizer_without_a_principal_or_resource_id() -> None:
    endpoint = Endpoint("h.example.com", 5432, "us-east-1", account_id=ACCT, resource_id="db-ABC")
    auth = IamAuthorizer(StaticPolicySource((pol(allow()),)))
    token = parse_token(TOKEN)
    plain = ResolvedCredential("AKIAEXAMPLE", "secret")
    rejection = auth.authorize(credential=plain, token=token, endpoint=endpoint, db_user="app",
                               now=NOW)
    assert rejection is not None and rejection.reason is Reason.NOT_AUTHORIZED
    from rdsiam_emulator.iam.principals import MotoCredential

    cred = MotoCredential("AKIAEXAMPLE", "secret", principal=principal())
    bare = Endpoint("h.example.com", 5432, "us-east-1")
    rejection = auth.authorize(credential=cred, token=token, endpoint=bare, db_user="app", now=NOW)
    assert rejection is not None and rejection.reason is Reason.INTERNAL_ERROR
    assert auth.authorize(credential=cred, token=token, endpoint=endpoint, db_user="app",
                          now=NOW) is None


_ops = sorted(OPERATORS)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    op=st.sampled_from(_ops + [f"ForAnyValue:{o}" for o in _ops] + [f"{o}IfExists" for o in _ops]),
    key=st.sampled_from(["aws:CurrentTime", "aws:EpochTime", "k", "aws:username"]),
    values=st.lists(st.text(max_size=12) | st.sampled_from(
        ["99999999999999999999", "1e400", "${aws:username}", "${", "*", "10.0.0.0/33", "::/0"]),
        min_size=1, max_size=3),
    ctx_value=st.text(max_size=12) | st.sampled_from(["99999999999999999999", "10.0.0.1"]),
    resource=st.text(max_size=30) | st.just("arn:aws:rds-db:us-east-1:1:dbuser:${*}/${?}"),
)
def test_evaluate_never_raises(op: str, key: str, values: list[str], ctx_value: str,
                               resource: str) -> None:
    statement = {"Effect": "Allow", "Action": "rds-db:*", "Resource": resource or "*",
                 "Condition": {op: {key: values}}}
    request = Request("rds-db:connect", arn(), {"k": (ctx_value,), "aws:username": (ctx_value,),
                                                "aws:epochtime": (ctx_value,)})
    decision = evaluate([pol(statement)], request, hints=HINTS)
    assert decision.outcome in ("allow", "not_authorized", "explicit_deny")


def test_authorization_lines_for_token_explain() -> None:
    from rdsiam_emulator.iam.explain_policy import authorization_lines
    from rdsiam_emulator.iam.principals import MotoCredential

    auth = IamAuthorizer(StaticPolicySource((pol(deny(Sid="Stop")),)))
    endpoint = Endpoint("h.example.com", 5432, "us-east-1", account_id=ACCT, resource_id="db-ABC")
    cred = MotoCredential("AKIAEXAMPLE", "secret", principal=principal())
    lines = authorization_lines(auth, credential=cred, endpoint=endpoint, db_user="app", now=NOW)
    assert any("DENY (explicit_deny)" in line for line in lines)
    assert any("Sid 'Stop'" in line for line in lines)
    plain = ResolvedCredential("AKIAEXAMPLE", "secret")
    lines = authorization_lines(auth, credential=plain, endpoint=endpoint, db_user="app", now=NOW)
    assert lines[0].startswith("no policy decision (not_authorized)")


def test_policy_variables_do_not_resolve_under_global_keys_none() -> None:
    """docs/iam.md: variables are filled from the request context (IAM's policy variables page),
    so under the stricter reading ${aws:username} has no value and its Resource matches nothing;
    a default still applies."""
    user = principal(type="User", arn=f"arn:aws:iam::{ACCT}:user/app", user_name="app")
    by_name = StaticPolicySource((pol(allow(arn(user="${aws:username}"))),))
    modes: tuple[tuple[GlobalKeys, bool], ...] = (("documented", True), ("none", False))
    for mode, allowed in modes:
        check = check_principal(user, arn(), source=by_name, region="us-east-1", now=NOW,
                                hints=HINTS, global_keys=mode)
        assert check.decision.allowed is allowed, mode
    with_default = StaticPolicySource((pol(allow(arn(user="${aws:username, 'app'}"))),))
    assert check_principal(user, arn(), source=with_default, region="us-east-1", now=NOW,
                           global_keys="none").decision.allowed
