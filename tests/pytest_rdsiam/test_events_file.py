"""--rdsiam-events-file: checked at start-up; a sink that fails later never fails a login."""

# cryptography's Rust bindings break if a pytester run is the first to import it and it is then
# re-imported: keep it imported by this process (pytester only drops what the inner run added)
import rdsiam_emulator.tls  # noqa: F401

SINK_TESTS = r'''
import shutil
from pathlib import Path

import psycopg


def _login(db, session):
    psycopg.connect(**db.connect_kwargs("app", db.generate_token("app", session))).close()


def test_logins_go_on_when_the_events_file_goes_away(rds_iam_db, request, caplog):
    events_file = Path(request.config.getoption("rdsiam_events_file"))
    rds_iam_db.create_iam_db_user("app")
    session = rds_iam_db.iam_session("app")
    _login(rds_iam_db, session)
    shutil.rmtree(events_file.parent)
    _login(rds_iam_db, session)
    _login(rds_iam_db, session)
    assert events_file.parent.exists() is False
    warnings = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1 and str(events_file) in warnings[0]
    assert [e.outcome for e in rds_iam_db.auth_events if e.method == "iam"] == ["allow"] * 3
'''


def test_unwritable_events_file_is_a_usage_error(pytester):
    pytester.makepyfile(test_never_run="def test_x(rds_iam_db):\n    raise AssertionError\n")
    result = pytester.runpytest("-p", "no:xdist", "--rdsiam-emulator", "--rdsiam-backend", "local",
                                "--rdsiam-events-file=/nonexistent/dir/ev.jsonl")
    assert result.ret == 4  # pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rdsiam-events-file/rdsiam_events_file: cannot write "
                                 "'/nonexistent/dir/ev.jsonl': No such file or directory*"])


def test_a_sink_that_fails_later_does_not_fail_logins(pytester, tmp_path):
    sink = tmp_path / "sink"
    sink.mkdir()
    events_file = sink / "ev.jsonl"
    pytester.makepyfile(test_sink=SINK_TESTS)
    result = pytester.runpytest("-p", "no:xdist", "--rdsiam-emulator", "--rdsiam-backend", "local",
                                f"--rdsiam-events-file={events_file}")
    result.assert_outcomes(passed=1)
