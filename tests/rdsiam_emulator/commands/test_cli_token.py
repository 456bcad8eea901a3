"""``rdsiam-emulator token explain``: output, exit codes, stdin, JSON, usage errors, hooks."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from datetime import datetime

import pytest

from rdsiam_emulator.auth.credentials import ResolvedCredential
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.explain import region_from_host
from rdsiam_emulator.auth.tokens import ParsedToken
from rdsiam_emulator.cli import COMMAND_MODULES, main
from rdsiam_emulator.commands import token as token_cmd
from rdsiam_emulator.reasons import Reason, Rejection
from tokenkit import HOST, PORT, TEMP, build_token, get_param, replace_param

TOKEN = build_token(principal=TEMP)
GOOD = ["--at", "2024-05-01T12:00:30Z", "--endpoint", f"{HOST}:{PORT}", "--region", "us-east-1",
        "--db-user", "app_user", "--secret-access-key", TEMP.secret,
        "--session-token", TEMP.session_token or ""]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["token", "explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_registered() -> None:
    assert "rdsiam_emulator.commands.token" in COMMAND_MODULES


def test_all_checks_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([TOKEN, *GOOD], capsys)
    assert code == 0
    assert "result: PASS" in out and "FAIL" not in out
    assert "canonical request" in out and "string to sign" in out
    assert get_param(TOKEN, "X-Amz-Signature") not in out
    assert TEMP.secret not in out


def test_failure_exits_1_with_reason_code_and_hint(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [TOKEN, *GOOD]
    argv[argv.index("app_user")] = "App_User"
    code, out, _ = run(argv, capsys)
    assert code == 1
    assert "FAIL  DBUser equals the login user" in out
    assert "reason db_user_mismatch, RDS error InvalidToken" in out
    assert "hint: DB user names are case-sensitive" in out
    assert "RDS would report db_user_mismatch" in out


def test_expired_at_a_later_time(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [TOKEN, *GOOD]
    argv[argv.index("2024-05-01T12:00:30Z")] = "20240501T121501Z"  # the token's own format
    code, out, _ = run(argv, capsys)
    assert code == 1 and "reason expired, RDS error ExpiredToken" in out


FORGED = replace_param(TOKEN, "X-Amz-Signature", "0" * 64)


def test_token_only_is_unverified_not_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([TOKEN, "--at", "2024-05-01T12:00:30+00:00"], capsys)
    assert code == 3 and "skip" in out and "needs --db-user" in out
    assert "result: UNVERIFIED (5 checks passed, 6 skipped)" in out
    assert "to verify it: pass --secret-access-key" in out and "PASS" not in out


def test_forged_signature_without_secret_is_unverified(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run([FORGED, "--at", "2024-05-01T12:00:30Z", "--json"], capsys)
    data = json.loads(out)
    assert code == 3 and data["verdict"] == "UNVERIFIED"
    assert data["signature_verified"] is False
    # with the secret the same forged token fails, exit 1
    code, out, _ = run([FORGED, *GOOD], capsys)
    assert code == 1 and "reason signature_mismatch" in out and "result: FAIL" in out


def test_pass_names_what_was_not_checked(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([TOKEN, *GOOD], capsys)
    assert code == 0 and "result: PASS (10 checks passed, 1 skipped)" in out
    assert "not checked: rds-db:connect authorization" in out


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(TOKEN))
    code, out, _ = run(["-", *GOOD], capsys)
    assert code == 0 and "result: PASS" in out and "note:" not in out


@pytest.mark.parametrize("raw", [TOKEN + "\n", TOKEN + "\r\n", " " + TOKEN])
def test_stdin_is_judged_as_sent(raw: str, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint refuses a token with a trailing newline, so explain must not PASS it."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(raw))
    code, out, _ = run(["-", *GOOD], capsys)
    assert code == 1 and "RDS would report malformed_token" in out
    assert "note: the token as given" in out and "PASS" not in out


def test_region_inferred_from_rds_host(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [TOKEN, *GOOD, "--json"]
    del argv[argv.index("--region"):argv.index("--region") + 2]
    code, out, _ = run(argv, capsys)
    data = json.loads(out)
    assert code == 0, out
    by_name = {c["name"]: c for c in data["checks"]}
    assert by_name["credential scope region"]["status"] == "pass"
    assert any("region us-east-1 taken from the endpoint host name" in n for n in data["notes"])
    # a token signed for another region fails the inferred region
    other = build_token(principal=TEMP, region="eu-west-1")
    code, out, _ = run([other, *argv[1:]], capsys)
    assert code == 1 and json.loads(out)["reason"] == "region_mismatch"


def test_region_not_inferable_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([TOKEN, "--at", "2024-05-01T12:00:30Z", "--endpoint", "127.0.0.1:5432"],
                       capsys)
    assert code == 1  # host_mismatch
    assert ("skip  credential scope region       needs --region: the endpoint host name "
            "'127.0.0.1' is not an RDS one") in out


@pytest.mark.parametrize(
    ("host", "region"),
    [
        (HOST, "us-east-1"),
        ("app.cluster-ro-c0abc.eu-west-2.rds.amazonaws.com.", "eu-west-2"),
        ("p.proxy-c0abc.AP-SOUTHEAST-1.rds.amazonaws.com", "ap-southeast-1"),
        ("db.c0abc.cn-north-1.rds.amazonaws.com.cn", "cn-north-1"),
        ("localhost", None),
        ("db.example.com", None),
        ("rds.amazonaws.com", None),
    ],
)
def test_region_from_host(host: str, region: str | None) -> None:
    assert region_from_host(host) == region


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [TOKEN, *GOOD, "--json"]
    argv[argv.index(f"{HOST}:{PORT}")] = f"{HOST}:3306"
    code, out, _ = run(argv, capsys)
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False and data["reason"] == "host_mismatch"
    assert data["verdict"] == "FAIL" and data["signature_verified"] is True
    assert data["rds_error_code"] == "InvalidToken"
    by_name = {c["name"]: c for c in data["checks"]}
    assert by_name["host binding"]["status"] == "fail"
    assert by_name["host binding"]["hint"] == "generate the token with Port=3306"
    assert by_name["signature"]["status"] == "pass"
    assert data["db_user"] == "app_user" and data["port"] == PORT
    assert data["signed_at"] == "2024-05-01T12:00:00Z"
    assert get_param(TOKEN, "X-Amz-Signature") not in out


def test_unreadable_token_with_a_secret_is_a_fail_not_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The key id comes from the token; a token too broken to name one is refused
    (malformed_token, exit 1), as the endpoint would refuse it: the secret is simply not used."""
    doubled = TOKEN + "&X-Amz-Signature=" + "0" * 64
    for token in ("garbage", doubled):
        code, out, _ = run([token, "--secret-access-key", "s", "--at", "2024-05-01T12:00:30Z"],
                           capsys)
        assert code == 1 and "malformed_token" in out
        assert "--secret-access-key was not used" in out


def test_malformed_token_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["not-a-token", "--at", "2024-05-01T12:00:30Z"], capsys)
    assert code == 1 and "reason malformed_token, RDS error InvalidToken" in out
    assert "not-a-token" not in out


def test_undecodable_argv_bytes_are_a_malformed_token(capsys: pytest.CaptureFixture[str]) -> None:
    """argv bytes that are not UTF-8 reach Python as lone surrogates (found by fuzzing: the
    command died with a UnicodeEncodeError traceback)."""
    code, out, err = run([TOKEN.replace("DBUser=", "DBUser=\udcff"), "--at",
                          "2024-05-01T12:00:30Z"], capsys)
    assert code == 1 and "reason malformed_token, RDS error InvalidToken" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([TOKEN, "--at", "yesterday"], "not an ISO 8601 time"),
        ([TOKEN, "--endpoint", HOST], "needs HOST:PORT"),
        ([TOKEN, "--endpoint", f"{HOST}:99999"], "--endpoint"),
        ([TOKEN, "--alias", "x.example.com"], "--alias needs --endpoint"),
        ([TOKEN, "--access-key-id", "AKIA"], "need --secret-access-key"),
        (["", "--at", "2024-05-01T12:00:30Z"], "no token"),
        ([TOKEN, "--max-skew", "-1"], "0 or more (got -1.0)"),
        ([TOKEN, "--max-skew", "nan"], "finite number of seconds"),
        ([TOKEN, "--max-skew", "inf"], "finite number of seconds"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["token", "explain"])
    assert info.value.code == 2
    assert main(["token"]) == 2


def test_parse_at() -> None:
    assert token_cmd.parse_at("2024-05-01T12:00:30Z").isoformat() == "2024-05-01T12:00:30+00:00"
    assert token_cmd.parse_at("2024-05-01T14:00:30+02:00").hour == 12
    assert token_cmd.parse_at("2024-05-01 12:00:30").tzinfo is not None


class _Hook:
    """A stand-in for the IAM package's hook: adds an option, supplies an authorizer."""

    def add_explain_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--allow-user", action="append", default=[])

    def explain_inputs(self, args: argparse.Namespace,
                       endpoint: Endpoint | None) -> token_cmd.ExplainInputs | None:
        allowed = set(args.allow_user)

        class Auth:
            def authorize(self, *, credential: ResolvedCredential, token: ParsedToken,
                          endpoint: Endpoint, db_user: str, now: datetime) -> Rejection | None:
                if db_user in allowed:
                    return None
                return Rejection(Reason.NOT_AUTHORIZED, f"{db_user} not allowed", None)

        return token_cmd.ExplainInputs(authorizer=Auth())


def test_hooks_add_options_and_an_authorizer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_cmd, "_HOOKS", [])
    token_cmd.register_explain_hook(_Hook())
    code, out, _ = run([TOKEN, *GOOD], capsys)
    assert code == 1 and "reason not_authorized, RDS error NotAuthorized" in out
    code, out, _ = run([TOKEN, *GOOD, "--allow-user", "app_user"], capsys)
    assert code == 0 and "pass  rds-db:connect authorization" in out


def test_console_script_end_to_end() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rdsiam_emulator.cli", "token", "explain", "-", *GOOD],
        input=TOKEN, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "result: PASS" in proc.stdout
