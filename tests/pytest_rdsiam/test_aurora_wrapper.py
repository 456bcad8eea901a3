"""The AWS Advanced Python Wrapper's ``failover`` and ``iam`` plugins against an emulated
aurora-postgresql cluster (docs/aurora.md): its own dialect detection and topology queries answered
by the members' Aurora catalog objects, its own IAM tokens, a real failover mid-session. Run by
pytester (the ``rds_iam_cluster`` fixtures as users meet them) with warnings as errors."""

USER_TESTS = r'''
import psycopg
import pytest
import aws_advanced_python_wrapper
from aws_advanced_python_wrapper import AwsWrapperConnection
from aws_advanced_python_wrapper.database_dialect import AuroraPgDialect
from aws_advanced_python_wrapper.errors import FailoverSuccessError

WHO = "SELECT pg_catalog.aurora_db_instance_identifier(), pg_catalog.pg_is_in_recovery()"


@pytest.fixture
def app(rds_iam_cluster_factory, monkeypatch):
    """A cluster (writer + 2 readers) and its IAM user ``app``; the wrapper's iam plugin signs
    with the default boto3 credentials: this IAM user's keys."""
    c = rds_iam_cluster_factory(readers=2)
    c.create_iam_db_user("app")
    creds = c.iam_session("app").get_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield c
    aws_advanced_python_wrapper.release_resources()  # the wrapper's monitor threads


def wrapper_connect(c, host, **props):
    conninfo = (f"host={host} port={c.port} dbname={c.dbname} user=app sslmode=verify-full "
                f"sslrootcert={c.ca_bundle} connect_timeout=10")
    return AwsWrapperConnection.connect(
        psycopg.Connection.connect, conninfo, plugins="failover,iam", iam_region=c.region,
        failover_timeout_sec=60, autocommit=True, **props)


def who(conn):
    cur = conn.cursor()
    cur.execute(WHO)
    return cur.fetchone()


def test_writer_failover_mid_session(app):
    c = app
    first, second = c.cluster_id + "-instance-1", c.cluster_id + "-instance-2"
    conn = wrapper_connect(c, c.host)
    try:
        assert isinstance(conn._plugin_service.database_dialect, AuroraPgDialect)
        assert who(conn) == (first, False)
        topology = {h.host_id: h.role.name for h in conn._plugin_service.all_hosts}
        assert topology == {first: "WRITER", second: "READER",
                            c.cluster_id + "-instance-3": "READER"}
        mark = len(c.auth_events)
        assert c.failover() == second
        cur = conn.cursor()
        with pytest.raises(FailoverSuccessError):
            cur.execute("SELECT 1")
        assert who(conn) == (second, False)      # the app's retry runs on the new writer
        cur = conn.cursor()
        cur.execute("CREATE TABLE after_failover (x int)")
        cur.execute("INSERT INTO after_failover VALUES (1)")
        new = [e for e in c.auth_events[mark:] if e.method == "iam" and e.outcome == "allow"]
        assert second in {e.instance_id for e in new}  # a fresh token, signed by the wrapper
    finally:
        conn.close()


def test_detection_through_an_instance_endpoint(app):
    """An instance endpoint is only "RDS" by its name: the wrapper upgrades the dialect to Aurora
    by querying rds.extensions and aurora_replica_status()."""
    c = app
    conn = wrapper_connect(c, c.reader_instance_hosts[1])
    try:
        assert isinstance(conn._plugin_service.database_dialect, AuroraPgDialect)
        assert who(conn) == (c.cluster_id + "-instance-3", True)
    finally:
        conn.close()


def test_reader_failover_of_a_read_only_connection(app):
    """A reader's server restarts under a strict-reader session: the wrapper moves it to a
    reader (the same one once back, or the other)."""
    c = app
    second, third = c.cluster_id + "-instance-2", c.cluster_id + "-instance-3"
    conn = wrapper_connect(c, c.instance_hosts[third], failover_mode="strict_reader")
    try:
        assert who(conn) == (third, True)
        c.cluster.backends[third].restart()      # its sessions are cut
        cur = conn.cursor()
        with pytest.raises(FailoverSuccessError):
            cur.execute("SELECT 1")
        assert who(conn) in {(second, True), (third, True)}
    finally:
        conn.close()


def test_aurora_objects_are_not_the_apps(app):
    """The app's IAM user (and the master user, rds_superuser) may run the Aurora functions but
    not replace, drop or re-own them; nothing of them is in the app's public schema."""
    c = app
    token = c.generate_token("app", c.iam_session("app", name="app-direct"))
    with psycopg.connect(**c.connect_kwargs("app", token), autocommit=True) as conn:
        assert conn.execute("SELECT pg_catalog.aurora_db_instance_identifier()").fetchone() == (
            c.cluster_id + "-instance-1",)
        assert conn.execute("SELECT setting FROM pg_settings WHERE name = 'rds.extensions'"
                            ).fetchall() == [("aurora_stat_utils",)]
        assert conn.execute(
            "SELECT routine_schema, routine_name, security_type FROM information_schema.routines "
            "WHERE routine_schema = 'public' OR routine_name LIKE 'aurora%' ORDER BY 2"
        ).fetchall() == [("pg_catalog", "aurora_db_instance_identifier", "DEFINER"),
                         ("pg_catalog", "aurora_replica_status", "INVOKER")]
        assert conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.proname LIKE 'aurora%' AND n.nspname = 'public'").fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'aurora%'").fetchone() == (2,)
        for statement, error in (
            ("CREATE OR REPLACE FUNCTION pg_catalog.aurora_db_instance_identifier() "
             "RETURNS text LANGUAGE sql AS $$SELECT 'x'$$", psycopg.errors.InsufficientPrivilege),
            ("DROP FUNCTION pg_catalog.aurora_replica_status()",
             psycopg.errors.InsufficientPrivilege),
            ("ALTER FUNCTION pg_catalog.aurora_replica_status() OWNER TO app",
             psycopg.errors.InsufficientPrivilege),
            ("ALTER SYSTEM SET rds.extensions = ''", psycopg.errors.InsufficientPrivilege),
            ("CREATE OR REPLACE VIEW pg_catalog.pg_settings AS SELECT 1",
             psycopg.errors.InsufficientPrivilege),
        ):
            with pytest.raises(error):
                conn.execute(statement)
    master = c.connect_master()
    try:
        cur = master.cursor()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cur.execute("DROP FUNCTION pg_catalog.aurora_db_instance_identifier()")
    finally:
        master.close()
'''


def test_wrapper_failover_against_an_emulated_aurora_cluster(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("--rdsiam-emulator", "--rdsiam-backend", "local",
                                "-p", "no:xdist", "-p", "no:randomly",
                                "-W", "error", "-W", "ignore::ResourceWarning")
    result.assert_outcomes(passed=4)
