"""explain_token: every check reported, secrets never shown, hooks for credentials and IAM."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from rdsiam_emulator.auth import sigv4
from rdsiam_emulator.auth.credentials import ResolvedCredential, StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.explain import FORMAT_CHECK, explain_token, render_text
from rdsiam_emulator.auth.tokens import ParsedToken
from rdsiam_emulator.auth.verifier import CHECKS, verify_token
from rdsiam_emulator.reasons import Reason, Rejection
from tokenkit import AT, HOST, PORT, TEMP, build_token, endpoint, get_param, lookup

NOW = AT + timedelta(seconds=30)


def statuses(e: object) -> dict[str, str]:
    return {line.name: line.status for line in e.checks}  # type: ignore[attr-defined]


def test_everything_given_and_valid_passes() -> None:
    token = build_token(principal=TEMP)
    e = explain_token(token, now=NOW, endpoint=endpoint(), db_user="app_user",
                      credentials=lookup(TEMP))
    assert e.ok and e.first_failure is None
    assert set(statuses(e).values()) == {"pass", "skip"}
    assert statuses(e)["rds-db:connect authorization"] == "skip"
    assert [line.name for line in e.checks] == [FORMAT_CHECK, *(c.name for c in CHECKS)]
    assert e.signed_host_matched and e.signed_host == f"{HOST}:{PORT}"


def test_only_the_token_runs_what_it_can() -> None:
    e = explain_token(build_token(), now=NOW)
    s = statuses(e)
    assert s[FORMAT_CHECK] == s["credential scope date"] == s["not expired"] == "pass"
    for name in ("credential scope region", "host binding", "DBUser equals the login user",
                 "access key", "signature"):
        assert s[name] == "skip", name
    lines = {line.name: line for line in e.checks}
    assert "--endpoint" in lines["host binding"].detail
    assert "--db-user" in lines["DBUser equals the login user"].detail
    assert "--secret-access-key" in lines["signature"].detail
    assert "--region" in lines["credential scope region"].detail
    assert e.ok


def test_region_alone_runs_the_region_check() -> None:
    e = explain_token(build_token(region="eu-west-1"), now=NOW, region="us-east-1")
    lines = {line.name: line for line in e.checks}
    assert lines["credential scope region"].reason is Reason.REGION_MISMATCH
    assert lines["host binding"].status == "skip"
    assert not e.ok


def test_region_unknown_skips_the_region_check() -> None:
    ep = Endpoint(HOST, PORT, "eu-west-1")  # a placeholder region
    e = explain_token(build_token(), now=NOW, endpoint=ep, region_unknown=True)
    assert statuses(e)["credential scope region"] == "skip"
    assert statuses(e)["host binding"] == "pass"


def test_all_failures_are_reported_and_the_first_is_what_rds_says() -> None:
    token = build_token(principal=TEMP, region="eu-west-1", port=3306, db_user="App")
    e = explain_token(token, now=AT + timedelta(hours=1), endpoint=endpoint(), db_user="app",
                      credentials=lookup(TEMP))
    failed = [line.reason for line in e.failures]
    assert failed == [Reason.REGION_MISMATCH, Reason.EXPIRED, Reason.HOST_MISMATCH,
                      Reason.DB_USER_MISMATCH]
    assert e.first_failure is not None and e.first_failure.reason is Reason.REGION_MISMATCH
    verdict = verify_token(token, endpoint=endpoint(), db_user="app", credentials=lookup(TEMP),
                           now=AT + timedelta(hours=1))
    assert verdict.reason is e.first_failure.reason
    assert e.first_failure.rds_error_code == "InvalidToken"
    assert statuses(e)["signature"] == "pass"


def test_malformed_token() -> None:
    e = explain_token("hunter2", now=NOW)
    assert not e.ok
    first = e.checks[0]
    assert first.name == FORMAT_CHECK and first.reason is Reason.MALFORMED_TOKEN
    assert first.hint is not None
    assert all(line.status == "skip" for line in e.checks[1:])
    assert e.token == "<7 characters, not a token>"
    assert "hunter2" not in render_text(e)


def test_secrets_never_appear() -> None:
    token = build_token(principal=TEMP)
    sig = get_param(token, "X-Amz-Signature")
    session = TEMP.session_token
    assert session is not None
    e = explain_token(token, now=NOW, endpoint=endpoint(), db_user="app_user",
                      credentials=lookup(TEMP))
    text = render_text(e)
    import json

    js = json.dumps(e.to_dict())
    for shown in (text, js):
        assert sig not in shown and sigv4.uri_encode(session) not in shown
        assert session not in shown and TEMP.secret not in shown
        assert f"<redacted {len(session)} chars>" in shown


def test_canonical_request_and_string_to_sign_are_what_was_signed() -> None:
    token = build_token(host=HOST.upper(), form="botocore")  # signed with the lower-case host
    e = explain_token(token, now=NOW, endpoint=endpoint(), credentials=lookup())
    assert e.signed_host == f"{HOST}:{PORT}" and e.signed_host_matched
    assert e.canonical_request is not None and e.string_to_sign is not None
    assert e.canonical_request.split("\n")[3] == f"host:{HOST}:{PORT}"
    import hashlib

    digest = e.string_to_sign.split("\n")[-1]
    assert digest == hashlib.sha256(e.canonical_request.encode()).hexdigest()
    assert len(e.signed_host_forms) == 2


def test_unverified_canonical_request_uses_the_host_as_written() -> None:
    e = explain_token(build_token(host=HOST.upper()), now=NOW)
    assert not e.signed_host_matched and e.signed_host == f"{HOST.upper()}:{PORT}"


def test_pass_details_say_why() -> None:
    e = explain_token(build_token(principal=TEMP), now=NOW, endpoint=endpoint(),
                      db_user="app_user", credentials=lookup(TEMP))
    lines = {line.name: line.detail for line in e.checks}
    assert "14 min 30 s" in lines["not expired"]
    assert "30 s before" in lines["not dated in the future"]
    assert "session token matches" in lines["access key"]
    assert HOST in lines["signature"]


class TableAuthorizer:
    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed

    def authorize(self, *, credential: ResolvedCredential, token: ParsedToken,
                  endpoint: Endpoint, db_user: str, now: datetime) -> Rejection | None:
        if db_user in self.allowed:
            return None
        return Rejection(Reason.NOT_AUTHORIZED, f"no Allow for {db_user}", "attach a policy")


def test_authorizer_hook_runs_the_iam_step() -> None:
    token = build_token(db_user="reporting")
    e = explain_token(token, now=NOW, endpoint=endpoint(), db_user="reporting",
                      credentials=lookup(), authorizer=TableAuthorizer({"app_user"}))
    line = e.checks[-1]
    assert line.name == "rds-db:connect authorization" and line.status == "fail"
    assert line.reason is Reason.NOT_AUTHORIZED and line.rds_error_code == "NotAuthorized"
    allowed = explain_token(token, now=NOW, endpoint=endpoint(), db_user="reporting",
                            credentials=lookup(), authorizer=TableAuthorizer({"reporting"}))
    assert allowed.ok and allowed.checks[-1].status == "pass"


def test_credential_lookup_hook_reports_inactive_key_and_still_checks_the_signature() -> None:
    cred = TEMP.resolved(active=False, principal_arn="arn:aws:iam::123456789012:user/app")
    e = explain_token(build_token(principal=TEMP), now=NOW,
                      credentials=StaticCredentials({TEMP.access_key_id: cred}))
    lines = {line.name: line for line in e.checks}
    assert lines["access key"].reason is Reason.INACTIVE_ACCESS_KEY
    assert lines["signature"].status == "pass"


def test_render_text_names_client_errors_on_failure() -> None:
    e = explain_token(build_token(), now=AT + timedelta(hours=1))
    text = render_text(e)
    assert "RDS would report expired (ExpiredToken)" in text
    assert 'PAM authentication failed for user "app_user"' in text and "1045" in text
    only_pg = render_text(e, engine="postgres")
    assert "1045" not in only_pg


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        explain_token(build_token(), now=NOW.replace(tzinfo=None))


def test_client_message_names_the_login_user() -> None:
    e = explain_token(build_token(db_user="app_user"), now=NOW, db_user="App_User")
    assert e.login_user == "App_User"
    assert 'PAM authentication failed for user "App_User"' in render_text(e)


def test_each_check_brings_its_own_pass_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    """explain shows ``Check.passed``, not a table keyed by check names: renaming every check keeps
    each verdict (a name-keyed table would fall back to "ok")."""
    import dataclasses

    from rdsiam_emulator.auth import verifier

    renamed = tuple(dataclasses.replace(c, name=f"{c.name} (renamed)") for c in verifier.CHECKS)
    monkeypatch.setattr(verifier, "CHECKS", renamed)
    e = explain_token(build_token(principal=TEMP), now=NOW, endpoint=endpoint(),
                      db_user="app_user", credentials=lookup(TEMP),
                      authorizer=TableAuthorizer({"app_user"}))
    details = {line.name: line.detail for line in e.checks}
    assert [line.status for line in e.checks] == ["pass"] * len(e.checks)
    assert "ok" not in details.values()
    assert details["signature (renamed)"] == f"matches, with Host {HOST + ':' + str(PORT)!r} signed"
    assert details["DBUser equals the login user (renamed)"] == "DBUser 'app_user'"
    assert details["rds-db:connect authorization (renamed)"] == "allowed"
    assert details["not expired (renamed)"].startswith("valid for another ")


def test_the_domain_never_imports_the_cli() -> None:
    """Only ``cli`` and ``commands/`` may import ``rdsiam_emulator.cli``/``.commands``."""
    import ast
    from pathlib import Path

    import rdsiam_emulator

    root = Path(rdsiam_emulator.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "cli.py" or rel.startswith("commands/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if isinstance(node, ast.ImportFrom) and node.module == "rdsiam_emulator":
                names = [f"rdsiam_emulator.{a.name}" for a in node.names]
            offenders += [f"{rel}: {n}" for n in names
                          if n.startswith(("rdsiam_emulator.cli", "rdsiam_emulator.commands"))]
    assert len(list(root.rglob("*.py"))) > 50  # the scan saw the package
    assert offenders == []
