"""The fuzz targets' checks (fuzz/checks.py) in CI: a short, derandomized hypothesis run of every
target, and every input a campaign ever crashed on (fuzz/regressions/<target>/) replayed.

The long coverage-guided campaigns run the same checks under atheris (docs/fuzzing.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
sys.path.insert(0, str(FUZZ))
import checks  # noqa: E402

REGRESSIONS = sorted((FUZZ / "regressions").glob("*/*"))

SHORT = settings(max_examples=60, deadline=2000, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _tokens_built() -> None:
    checks.genuine_tokens()  # botocore once, outside any example's deadline


def test_every_target_has_a_runner() -> None:
    runners = {p.stem.removeprefix("fuzz_") for p in FUZZ.glob("fuzz_*.py")}
    assert runners == set(checks.TARGETS)


@pytest.mark.parametrize("target", sorted(checks.TARGETS))
@SHORT
@given(data=st.binary(max_size=600))
def test_target_holds(target: str, data: bytes) -> None:
    checks.TARGETS[target](data)


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_campaign_crash_stays_fixed(path: Path) -> None:
    check: Callable[[bytes], None] = checks.TARGETS[path.parent.name]
    check(path.read_bytes())


@pytest.mark.parametrize("mode", ["mutated", "re-signed"])
def test_the_forgery_oracle_is_not_vacuous(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A verifier that accepted everything would be caught: a botocore token with one letter of
    its DBUser changed, and a token signed with another secret, fail check_token once
    verify_token (and the ordered checks) say ok."""
    real = checks.verify_token

    def accept_all(token: str, **kwargs: object) -> checks.VerifyResult:
        result = real(token, **kwargs)  # type: ignore[arg-type]
        return checks.VerifyResult(ok=True, token=result.token)

    monkeypatch.setattr(checks, "verify_token", accept_all)
    monkeypatch.setattr(checks, "run_checks", lambda *_a, **_k: iter(()))
    if mode == "mutated":  # mode 1, token 0, one mutation: op 2 (swap case) at 'a' of app_user
        at = checks.genuine_tokens()[0].index("DBUser=app_user") + len("DBUser=")
        data = bytes([1, 0, 0, 2]) + at.to_bytes(2, "big")
        expected = "nobody signed"
    else:  # mode 2, key 0, a 15-byte secret, user 0, X-Amz-Expires 900
        data = bytes([2, 0, 15]) + b"attacker-secret" + bytes([0, 3, 0x84])
        expected = "forgery accepted"
    with pytest.raises(AssertionError, match=expected):
        checks.check_token(data)
