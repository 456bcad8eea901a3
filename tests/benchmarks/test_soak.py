"""bench/soak.py (issue #16 trial): the server it starts has room for the idle phase, and its
summary flags failures that are not what a phase tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # soak.py imports its sibling bench_postgres

import soak  # noqa: E402

PAM = 'FATAL 28000 PAM authentication failed for user "soak_iam"'
SLOTS = "FATAL 53300 sorry, too many clients already"


def test_postgres_gets_room_for_the_idle_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trial's ``--idle 300`` died with "remaining connection slots are reserved": the
    setting soak.py made was overwritten by start_tls_postgres's default of 100."""
    from rdsiam_emulator.backends import local_mysql, local_postgres

    # start_backend tweaks these module tables for its process: not for the rest of this run
    monkeypatch.setattr(local_postgres, "FAST_SETTINGS", dict(local_postgres.FAST_SETTINGS))
    monkeypatch.setattr(local_mysql, "MARIADB_FAST", list(local_mysql.MARIADB_FAST))
    work = Path(tempfile.mkdtemp(prefix="rdsiam-test-soak-"))
    try:
        work.chmod(0o711)  # the server account reads its TLS files below
        (work / "pg").mkdir(mode=0o711)
        handle, ca = soak.start_backend("postgres", work / "pg" / "ca", idle=450)
        try:
            assert ca.is_file()
            rows = handle.admin_execute("SHOW max_connections")
            assert rows[0][0] == "550"
            assert handle.admin_execute("SHOW ssl")[0][0] == "on"
        finally:
            handle.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def throttle(**phases: Any) -> dict[str, Any]:
    return {"throttle": phases}


def test_summary_flags_refusals_for_another_reason_than_the_phase_tests() -> None:
    # the trial's PostgreSQL run: the server's own limit refused part of the burst
    got = throttle(held_300_distinct_tokens_one_identity={
        "outcomes": {"ok": 95, SLOTS: 105, PAM: 100},
        "event_reasons": {"allow": 200, "throttled": 100, "too_many_connections": 105}})
    flags = soak.unexpected_failures(got)
    assert flags == ["throttle/held_300_distinct_tokens_one_identity: 105 refused as "
                     "too_many_connections"]


def test_summary_flags_throttling_of_a_reused_token() -> None:
    got = throttle(held_250_one_reused_token={"outcomes": {"ok": 240, PAM: 10},
                                              "event_reasons": {"allow": 240, "throttled": 10}})
    assert soak.unexpected_failures(got) == ["throttle/held_250_one_reused_token: 10 refused "
                                             "as throttled"]


def test_summary_flags_refusals_without_an_endpoint_reason() -> None:
    got = throttle(drivers_distinct_tokens={"outcomes": {"ok": 50, "timeout expired": 3},
                                            "event_reasons": {"allow": 50}})
    (flag,) = soak.unexpected_failures(got)
    assert "3 of 3 refusals on the wire without an endpoint reason" in flag
    assert "timeout expired" in flag


def test_summary_flags_soak_failures_and_idle_leftovers() -> None:
    got = {"soak": {"failed": 2, "errors": ["boom"]},
           "idle": {"after": {"tasks": 1, "connections": 2}}}
    assert soak.unexpected_failures(got) == [
        "soak: 2 failed connections: ['boom']",
        "idle: after closing, 1 tasks and 2 connections left"]


def test_a_clean_run_has_no_flags() -> None:
    got = {"soak": {"failed": 0, "errors": []},
           "idle": {"after": {"tasks": 0, "connections": 0}},
           **throttle(
               held_300_distinct_tokens_one_identity={
                   "outcomes": {"ok": 200, PAM: 100},
                   "event_reasons": {"allow": 200, "throttled": 100}},
               held_250_one_reused_token={"outcomes": {"ok": 250},
                                          "event_reasons": {"allow": 250}})}
    assert soak.unexpected_failures(got) == []


def test_help_lists_defaults_and_the_default_out_is_not_in_docs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--help"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    for option in ("--engines", "--seconds", "--direct-seconds", "--idle",
                   "--throttle-seconds", "--out", "--phases", "--merge"):
        assert option in out
    assert "(default: 1000)" in out and "(default: soak.json)" in out
    assert not soak.DEFAULT_OUT.startswith("docs")
