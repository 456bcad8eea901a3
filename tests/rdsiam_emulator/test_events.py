import json
import logging
import shutil
import threading
from datetime import UTC, datetime

import pytest

from rdsiam_emulator.events import AuthEvent, EventLog, check_jsonl_path, iam_metrics
from rdsiam_emulator.reasons import Reason

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _event(outcome="deny", reason=Reason.EXPIRED, method="iam", **kw):
    return AuthEvent(time=T0, instance_id="db1", engine="postgres", db_user="app",
                     method=method, outcome=outcome, reason=reason, detail="d", **kw)


def test_record_stamps_sequence_and_mark_since():
    log = EventLog()
    log.record(_event())
    cursor = log.mark()
    second = log.record(_event(outcome="allow", reason=None))
    assert second.seq == 2
    assert log.since(cursor) == [second]
    assert len(log.all()) == 2


def test_filter_by_instance():
    log = EventLog()
    log.record(_event())
    log.record(AuthEvent(time=T0, instance_id="other", engine="mysql", db_user="u",
                         method="iam", outcome="allow"))
    assert [e.instance_id for e in log.since(0, instance_id="other")] == ["other"]


def test_json_lines_mirror_and_no_secret_fields(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(jsonl_path=path)
    log.record(_event(principal_arn="arn:aws:iam::123456789012:user/a", access_key_id="AKIAX"))
    [line] = path.read_text().splitlines()
    data = json.loads(line)
    assert data["reason"] == "expired"
    assert data["rds_error_code"] == "ExpiredToken"
    assert data["time"] == T0.isoformat()
    assert "token" not in data and "password" not in data


def test_rds_log_lines_match_rds_wording():
    expired = _event(reason=Reason.EXPIRED).rds_log_line()
    assert expired == ("[ERROR] Failed to authenticate the connection request for user app because "
                       "the token age is longer than 15 minutes. (Status Code: 400, Error Code: "
                       "ExpiredToken)")
    denied = _event(reason=Reason.NOT_AUTHORIZED,
                    principal_arn="arn:aws:sts::123456789012:assumed-role/R/S").rds_log_line()
    assert denied is not None
    assert "'arn:aws:sts::123456789012:assumed-role/R/S' is not authorized to perform " \
           "rds-db:connect on the DB instance" in denied
    assert "(Status Code: 403, Error Code: NotAuthorized)" in denied
    invalid = _event(reason=Reason.SIGNATURE_MISMATCH).rds_log_line()
    assert invalid is not None and "malformed or otherwise invalid" in invalid
    assert _event(reason=Reason.TLS_REQUIRED).rds_log_line() is None
    assert _event(outcome="allow", reason=None).rds_log_line() is None


def test_summary_mentions_reason_and_hint():
    text = _event(hint="mint a fresh token").summary()
    assert "DENY" in text and "expired" in text and "ExpiredToken" in text
    assert "mint a fresh token" in text


def test_metrics_count_like_cloudwatch():
    events = [
        _event(outcome="allow", reason=None),
        _event(reason=Reason.SIGNATURE_MISMATCH),
        _event(reason=Reason.NOT_AUTHORIZED),
        _event(reason=Reason.THROTTLED),
        _event(reason=Reason.TLS_REQUIRED),  # engine-level: not an IAM request RDS would count
        _event(method="password", outcome="allow", reason=None),
    ]
    m = iam_metrics(events)
    assert m["IamDbAuthConnectionRequests"] == 4
    assert m["IamDbAuthConnectionSuccess"] == 1
    assert m["IamDbAuthConnectionFailure"] == 3
    assert m["IamDbAuthConnectionFailureInvalidToken"] == 1
    assert m["IamDbAuthConnectionFailureInsufficientPermissions"] == 1
    assert m["IamDbAuthConnectionFailureThrottling"] == 1


def test_listeners_and_concurrent_writers():
    log = EventLog(maxlen=100_000)
    seen = []
    unsubscribe = log.subscribe(seen.append)

    def writer():
        for _ in range(500):
            log.record(_event())

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    unsubscribe()
    log.record(_event())
    assert len(seen) == 2000
    assert sorted(e.seq for e in log.all()) == list(range(1, 2002))


def test_client_supplied_strings_are_capped_and_marked(tmp_path):
    """Issue #12 §7: a 100,000-character user name became a 100,404-character log line."""
    huge = "u" * 100_000
    path = tmp_path / "events.jsonl"
    log = EventLog(jsonl_path=path)
    for engine in ("mysql", "postgres"):
        stamped = log.record(AuthEvent(
            time=T0, instance_id="db1", engine=engine, db_user=huge, method="iam",
            outcome="deny", reason=Reason.DB_USER_MISMATCH, detail=f"DBUser {huge!r} differs",
            hint="h" * 50_000, database="d" * 100_000))
        for text in (stamped.db_user, stamped.database):
            assert text is not None and len(text) == 256
            assert text.endswith("…[+100000 chars total, truncated]")
        assert len(stamped.detail) == 1024 and "truncated]" in stamped.detail
        assert stamped.hint is not None and len(stamped.hint) == 1024
        assert len(stamped.summary()) < 3000
        line = stamped.rds_log_line()
        assert line is not None and len(line) < 600
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(len(line) < 4000 for line in lines)


def test_clip_is_idempotent_and_keeps_short_text():
    from rdsiam_emulator.events import clip

    assert clip("app") == "app"
    once = clip("x" * 1000, 100)
    assert len(once) == 100 and clip(once, 100) == once


def test_a_failing_events_file_is_logged_once_and_never_raises(tmp_path, caplog):
    folder = tmp_path / "sink"
    folder.mkdir()
    path = folder / "events.jsonl"
    log = EventLog(jsonl_path=path)
    log.record(_event())
    shutil.rmtree(folder)  # like a cleaned-up directory or a full disk: every write now fails
    with caplog.at_level(logging.WARNING, logger="rdsiam_emulator.events"):
        recorded = [log.record(_event()) for _ in range(3)]
    assert [e.seq for e in recorded] == [2, 3, 4]
    assert len(log.all()) == 4  # kept in memory
    failures = [r.getMessage() for r in caplog.records]
    assert len(failures) == 1 and "cannot write" in failures[0] and str(path) in failures[0]
    folder.mkdir()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rdsiam_emulator.events"):
        log.record(_event())
    assert [r.getMessage() for r in caplog.records] == [
        f"auth events file {path}: writing works again"]
    assert len(path.read_text().splitlines()) == 1


def test_check_jsonl_path_names_the_problem(tmp_path):
    check_jsonl_path(tmp_path / "ok.jsonl")
    assert (tmp_path / "ok.jsonl").exists()
    with pytest.raises(FileNotFoundError):
        check_jsonl_path(tmp_path / "missing" / "ev.jsonl")
    with pytest.raises(IsADirectoryError):
        check_jsonl_path(tmp_path)
