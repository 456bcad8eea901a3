"""Project-wide test policy: no silent skips (docs/testing.md).

A test that skips quietly because a tool is missing passes CI without testing anything, so any
skip whose reason is not on ``ALLOWED_SKIPS`` is reported as a failure. ``scripts/bootstrap``
installs every tool the tests use as an oracle (AWS CLI, node packages, mariadb CLI, DBD::mysql).
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

pytest_plugins = ["reason_coverage"]  # RDSIAM_REASON_COVERAGE=1: every declared reason produced

collect_ignore = ["smoke_project"]  # a user's project, run against the wheel by scripts/smoke-wheel

ALLOWED_SKIPS: dict[str, str] = {
    "no podman and not root: scripts/podman-engine cannot install it here":
        "installing Podman needs root; CI runs as root, so there the container tests run",
    "mysql-connector C extension not loadable here":
        "its vendored libssl needs a newer libcrypto than the platform's; the pure-Python "
        "connector is tested regardless",
}
"""Exact skip reason → why it may skip. Keep this short and keep docs/testing.md in step."""


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason given to ``pytest.skip``/``skipif`` (pytest stores "Skipped: <reason>")."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def policed(reason: str) -> str | None:
    """The failure text for a skip whose reason is not on the allow-list, else None."""
    if reason in ALLOWED_SKIPS:
        return None
    return (f"skipped, but the reason is not on the allow-list (tests/conftest.py ALLOWED_SKIPS, "
            f"docs/testing.md); install what it needs: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        failure = policed(skip_reason(report))
    elif hasattr(report, "wasxfail") and item.get_closest_marker("xfail") is None:
        # pytest.xfail() called in the test body is a skip by another name: a declared
        # @pytest.mark.xfail (a known bug, visible where the test is) is what may stay an xfail
        failure = policed(str(report.wasxfail).removeprefix("reason: "))
    else:
        failure = None
    if failure is not None:
        report.outcome = "failed"
        report.longrepr = failure
        if hasattr(report, "wasxfail"):
            del report.wasxfail
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A module-level skip (``allow_module_level=True``) or ``pytest.importorskip`` skips at
    collection, before any test report exists: the same allow-list applies there."""
    report = yield
    if report.skipped:
        failure = policed(skip_reason(report))  # type: ignore[arg-type]
        if failure is not None:
            report.outcome = "failed"
            report.longrepr = failure
    return report
