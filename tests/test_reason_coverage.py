"""The reason-coverage plugin (tests/reason_coverage.py) run on small suites of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdsiam_emulator.reasons import Reason

TESTS = Path(__file__).parent

CONFTEST = 'pytest_plugins = ["reason_coverage"]\n'

LIBRARY_REASONS = '''
import pytest
from tokenkit import build_token, replace_param
from rdsiam_emulator.tokens import TokenFormatError, parse_token

def test_malformed():
    with pytest.raises(TokenFormatError):
        parse_token("not a token")

def test_algorithm():
    with pytest.raises(TokenFormatError):
        parse_token(replace_param(build_token(), "X-Amz-Algorithm", "AWS4-HMAC-SHA512"))
'''

MADE_UP_REASONS = '''
from rdsiam_emulator.authenticator import Authenticator, ClientInfo
from rdsiam_emulator.credentials import StaticCredentials
from rdsiam_emulator.endpoint_spec import Endpoint
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.reasons import Reason, Rejection

def test_made_up_by_the_test():
    Rejection(Reason.EXPIRED, "a fake authorizer's answer")
    auth = Authenticator(instance_id="db", engine="postgres",
                         endpoint=Endpoint("db.example.com", 5432, "us-east-1"),
                         credentials=StaticCredentials({}), events=EventLog())
    auth.reject(db_user="u", client=ClientInfo("127.0.0.1", 1, True),
                reason=Reason.NOT_IAM_USER, detail="the test chose this")
    assert auth.events.all()[-1].reason is Reason.NOT_IAM_USER
'''


def _suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_library=LIBRARY_REASONS, test_made_up=MADE_UP_REASONS)
    path = os.pathsep.join((str(TESTS), str(TESTS / "rdsiam_emulator")))
    monkeypatch.setenv("PYTHONPATH", path)


@pytest.mark.slow
def test_missing_reasons_fail_the_run_across_workers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suite(pytester, monkeypatch)
    monkeypatch.setenv("RDSIAM_REASON_COVERAGE", "1")
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=3)
    line = next(x for x in result.outlines if x.startswith("reason coverage: "))
    missing = line.split(": ", 2)[2].split(" (")[0].split(", ")
    # produced by library code on the workers, merged by the controller
    assert "malformed_token" not in missing and "unsupported_algorithm" not in missing
    # chosen by test code: a hand-made Rejection, a reason handed to Authenticator.reject
    assert "expired" in missing and "not_iam_user" in missing
    assert len(missing) == len(Reason) - 2


def test_off_without_the_environment_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suite(pytester, monkeypatch)
    monkeypatch.delenv("RDSIAM_REASON_COVERAGE", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3)
    assert not [x for x in result.outlines if x.startswith("reason coverage")]
