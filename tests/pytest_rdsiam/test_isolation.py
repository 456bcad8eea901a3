"""Per-test isolation of the shared instances: what one test changes, the next does not see."""

# cryptography's Rust bindings break if a pytester run is the first to import it and it is then
# re-imported: keep it imported by this process (pytester only drops what the inner run added)
import rdsiam_emulator.tls  # noqa: F401

ISOLATION_TESTS = r'''
import psycopg
import pymysql
import pytest

ENGINES = pytest.mark.parametrize("rds_iam_db", ["postgres", "mysql"], indirect=True)


@ENGINES
def test_a_changes_the_shared_instance(rds_iam_db):
    auth = rds_iam_db.instance.authenticator
    rds_iam_db.set_iam_enabled(False)
    auth.require_tls = False
    # a burst of 20 distinct identities: the RDS limit per second, reached
    assert [auth.throttle.admit(f"tok-{i}", f"who-{i}") for i in range(20)] == [None] * 20
    assert rds_iam_db.iam_enabled is False


@ENGINES
def test_b_gets_the_instance_as_configured(rds_iam_db):
    auth = rds_iam_db.instance.authenticator
    assert auth.throttle.admit("fresh-token", "fresh-identity") is None
    assert (rds_iam_db.iam_enabled, auth.require_tls) == (True, True)
    rds_iam_db.create_iam_db_user("app_user")
    token = rds_iam_db.generate_token("app_user", rds_iam_db.iam_session("app_user"))
    connect = psycopg.connect if rds_iam_db.engine == "postgres" else pymysql.connect
    connect(**rds_iam_db.connect_kwargs("app_user", token)).close()
    assert [e.outcome for e in rds_iam_db.auth_events if e.method == "iam"] == ["allow"]
'''


def test_changes_to_the_shared_instance_end_with_the_test(pytester):
    pytester.makepyfile(test_user_isolation=ISOLATION_TESTS)
    result = pytester.runpytest("--rdsiam-emulator", "--rdsiam-backend", "local",
                                "--rdsiam-throttling", "-p", "no:xdist")
    result.assert_outcomes(passed=4)
