"""Switch-over of real local replicas (docs/aurora.md, "Failover"): replay waits after a
failover and back, and failover with a dead member (the case failover exists for)."""

import os
import signal
import time

import pytest

from rdsiam_emulator.backends import BackendError, BackendSpec
from rdsiam_emulator.backends.replication import (
    is_replica,
    start_local_mariadb_cluster,
    start_local_postgres_cluster,
    switch_over,
    wait_for_replay,
)


@pytest.fixture
def mariadb_pair():
    writer, [reader] = start_local_mariadb_cluster(
        BackendSpec("mysql", provider="local", dbname="app"), readers=1)
    try:
        yield writer, reader
    finally:
        reader.stop()
        writer.stop()


@pytest.fixture
def pg_pair():
    writer, [reader] = start_local_postgres_cluster(
        BackendSpec("postgres", provider="local", dbname="app"), readers=1)
    try:
        yield writer, reader
    finally:
        reader.stop()
        writer.stop()


def _kill(handle):
    os.killpg(handle._process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while handle._process.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not handle._process.alive


def test_mariadb_replay_wait_after_failover_and_back(mariadb_pair):
    first, second = mariadb_pair
    first.admin_execute("CREATE TABLE app.t (x int primary key)")
    wait_for_replay(first, second)
    switch_over(first, second)
    second.admin_execute("INSERT INTO app.t VALUES (1)")  # a GTID the second member wrote
    wait_for_replay(second, first)
    switch_over(second, first)  # back: the second member's own GTID is the latest
    # nothing new: returns at once (MASTER_GTID_WAIT on the slave position never did)
    assert wait_for_replay(first, second, timeout=3) < 3
    switch_over(first, second)  # a third switch used to time out with the old writer read-only
    second.admin_execute("INSERT INTO app.t VALUES (2)")
    wait_for_replay(second, first, timeout=5)
    assert first.admin_execute("SELECT x FROM app.t ORDER BY x") == [(1,), (2,)]
    assert (is_replica(first), is_replica(second)) == (True, False)


def test_mariadb_replay_wait_still_times_out_when_behind(mariadb_pair):
    writer, reader = mariadb_pair
    reader.admin_execute("STOP SLAVE")
    writer.admin_execute("CREATE TABLE app.u (x int)")
    with pytest.raises(BackendError, match="did not replay GTID"):
        wait_for_replay(writer, reader, timeout=0.5)


def test_mariadb_switch_over_after_the_writer_died(mariadb_pair):
    writer, reader = mariadb_pair
    writer.admin_execute("CREATE TABLE app.t (x int)")
    wait_for_replay(writer, reader)
    _kill(writer)
    switch_over(writer, reader)  # used to fail: SET GLOBAL read_only on the dead writer (2003)
    assert not is_replica(reader)
    reader.admin_execute("INSERT INTO app.t VALUES (1)")


def test_pg_switch_over_to_a_dead_reader_leaves_the_writer(pg_pair):
    writer, reader = pg_pair
    _kill(reader)
    with pytest.raises(BackendError, match="does not answer: it cannot be promoted"):
        switch_over(writer, reader)
    # the writer was not stopped first
    assert writer.admin_execute("SELECT pg_is_in_recovery()") == [(False,)]


def test_mariadb_switch_over_cuts_both_members_sessions(mariadb_pair):
    import pymysql

    writer, reader = mariadb_pair
    sessions = [pymysql.connect(unix_socket=h.unix_socket, user=h.master_user,
                                password=h.master_password, autocommit=True)
                for h in (writer, reader)]
    try:
        switch_over(writer, reader)
        for conn in sessions:  # the reader's would now take writes: AWS drops both
            with pytest.raises(pymysql.err.OperationalError), conn.cursor() as cur:
                cur.execute("SELECT 1")
    finally:
        for conn in sessions:
            conn.close()
