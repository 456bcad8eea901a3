"""aurora-postgresql's own objects on real replicas (backends.aurora_catalog): the setting in
pg_settings and both functions on every member and in every database, each member's own identity,
the writer reported by every member before and after a real switch-over."""

import pytest

from rdsiam_emulator.backends import BackendSpec
from rdsiam_emulator.backends.aurora_catalog import AuroraCatalog
from rdsiam_emulator.backends.replication import start_local_postgres_cluster, switch_over

STATUS = ("SELECT server_id, session_id, last_update_timestamp IS NULL, replica_lag_in_msec, cpu "
          "FROM pg_catalog.aurora_replica_status() ORDER BY server_id")


@pytest.fixture(scope="module")
def members():
    writer, readers = start_local_postgres_cluster(
        BackendSpec("postgres", provider="local", dbname="app"), readers=2)
    try:
        yield [("m-1", writer), ("m-2", readers[0]), ("m-3", readers[1])]
    finally:
        for handle in (*readers, writer):
            handle.stop()


def _writers(handle, dbname=None):
    rows = handle.admin_execute(STATUS, dbname=dbname)
    return [r[0] for r in rows if r[1] == "MASTER_SESSION_ID"], rows


def test_aurora_objects_on_every_member_and_database(members):
    catalog = AuroraCatalog(members)
    catalog.install("m-1")
    writer = members[0][1]
    writer.admin_execute("CREATE DATABASE later")  # from template1: inherits the functions
    for instance_id, handle in members:
        assert handle.admin_execute(
            "SELECT setting, context FROM pg_catalog.pg_settings "
            "WHERE name = 'rds.extensions'", dbname="app") == [("aurora_stat_utils", "sighup")]
        assert handle.admin_execute("SHOW rds.extensions", dbname="app") == [
            ("aurora_stat_utils",)]
        for dbname in ("postgres", "template1", "app"):
            assert handle.admin_execute("SELECT pg_catalog.aurora_db_instance_identifier()",
                                        dbname=dbname) == [(instance_id,)]
            ids, rows = _writers(handle, dbname)
            assert ids == ["m-1"]
            # the instance asked has no last_update_timestamp (Aurora PostgreSQL >= 13.9)
            assert [r[0] for r in rows if r[2]] == [instance_id]
            assert [r[0] for r in rows] == ["m-1", "m-2", "m-3"]
    catalog.set_writer("m-1")  # readers replay CREATE DATABASE before this returns
    for instance_id, handle in members[1:]:
        assert handle.admin_execute("SELECT pg_catalog.aurora_db_instance_identifier()",
                                    dbname="later") == [(instance_id,)]
    # readers' session ids are UUIDs, stable per member
    sessions = {r[0]: r[1] for r in members[2][1].admin_execute(STATUS)}
    assert sessions["m-1"] == "MASTER_SESSION_ID"
    assert len({sessions["m-2"], sessions["m-3"]}) == 2 and len(sessions["m-2"]) == 36

    switch_over(members[0][1], members[1][1], (members[2][1],))
    catalog.set_writer("m-2")
    for instance_id, handle in members:
        assert handle.admin_execute("SELECT pg_catalog.aurora_db_instance_identifier(), "
                                    "pg_catalog.pg_is_in_recovery()", dbname="app") == [
            (instance_id, instance_id != "m-2")]
        assert _writers(handle, "app")[0] == ["m-2"]
        assert _writers(handle, "template1")[0] == ["m-2"]
        assert handle.admin_execute(
            "SELECT setting FROM pg_catalog.pg_settings WHERE name = 'rds.extensions'",
            dbname="template1") == [
            ("aurora_stat_utils",)]
    # the functions belong to the superuser, are not in public, and run for anyone
    [(owner, definer)] = members[0][1].admin_execute(
        "SELECT pg_catalog.pg_get_userbyid(proowner), prosecdef FROM pg_catalog.pg_proc "
        "WHERE proname = 'aurora_db_instance_identifier'", dbname="app")
    assert (owner, definer) == (members[0][1].admin_user, True)
    assert members[0][1].admin_execute(
        "SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n "
        "ON n.oid = p.pronamespace WHERE p.proname LIKE 'aurora%%' AND n.nspname <> "
        "'pg_catalog'", dbname="app") == [(0,)]


def test_members_must_be_distinct_servers(members):
    with pytest.raises(ValueError, match="distinct"):
        AuroraCatalog([("a", members[0][1]), ("b", members[0][1])])
    with pytest.raises(ValueError, match="at least one"):
        AuroraCatalog([])
