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
from rdsiam_emulator.auth.tokens import TokenFormatError, parse_token

def test_malformed():
    with pytest.raises(TokenFormatError):
        parse_token("not a token")

def test_algorithm():
    with pytest.raises(TokenFormatError):
        parse_token(replace_param(build_token(), "X-Amz-Algorithm", "AWS4-HMAC-SHA512"))
'''

MADE_UP_REASONS = '''
from rdsiam_emulator.auth.authenticator import Authenticator, ClientInfo
from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
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


UNEXPLAINED = '''
from rdsiam_emulator.auth.authenticator import Authenticator, ClientInfo
from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.reasons import Reason

# Stands for an endpoint module of the library: the guard judges refusals by the code that
# records them, so this source runs under a library module name.
ENDPOINT_SOURCE = """
def refuse(auth, client):
    auth.reject(db_user="u", client=client, reason=Reason.TLS_REQUIRED,
                detail="no hint given here")
    auth.record_password_login(db_user="v", client=client, ok=False, detail="no reason here")
    auth.reject(db_user="w", client=client, reason=Reason.TLS_REQUIRED,
                detail="explained", hint="connect with TLS")
"""


def _auth():
    return Authenticator(instance_id="db", engine="postgres",
                         endpoint=Endpoint("db.example.com", 5432, "us-east-1"),
                         credentials=StaticCredentials({}), events=EventLog())


def test_library_refusals():
    namespace = {"__name__": "rdsiam_emulator.endpoint.fake", "Reason": Reason}
    exec(compile(ENDPOINT_SOURCE, "fake_endpoint.py", "exec"), namespace)
    auth = _auth()
    namespace["refuse"](auth, ClientInfo("127.0.0.1", 1, False))
    assert len(auth.events.all()) == 3


def test_refusals_made_up_by_the_test():
    auth = _auth()
    auth.record_password_login(db_user="x", client=ClientInfo("127.0.0.1"), ok=False,
                               detail="the test chose this")
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


@pytest.mark.slow
def test_refusals_without_reason_or_hint_fail_the_run_and_are_listed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_unexplained=UNEXPLAINED)
    path = os.pathsep.join((str(TESTS), str(TESTS / "rdsiam_emulator")))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("RDSIAM_REASON_COVERAGE", "1")
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2)
    out = result.outlines
    head = next(i for i, x in enumerate(out) if x.startswith("refusals without a reason"))
    assert out[head].startswith("refusals without a reason or a hint: 2 distinct")
    listed = [x.strip() for x in out[head + 1:head + 3]]
    assert listed[0].startswith("rdsiam_emulator.endpoint.fake.refuse:3 [postgres] "
                                "reason=tls_required hint=None: no hint given here")
    assert listed[1].startswith("rdsiam_emulator.endpoint.fake.refuse:5 [postgres] "
                                "reason=None hint=None: no reason here")
    assert not any("the test chose this" in x or "explained" in x for x in out)


def test_explained_refusals_pass_the_guard(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suite(pytester, monkeypatch)
    monkeypatch.setenv("RDSIAM_REASON_COVERAGE", "1")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert "refusals without a reason or a hint: none" in result.outlines
