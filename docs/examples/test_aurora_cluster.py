"""An Aurora PostgreSQL cluster: writer and reader endpoints, the cluster's resource id in the
policy, a real replica (reads replicated rows, refuses writes), failover."""

import psycopg
import pytest


def test_reader_endpoint_and_failover(rds_iam_cluster):
    c = rds_iam_cluster
    c.create_iam_db_user("app")                          # through the writer; the reader replays it
    session = c.iam_session("app")                       # allowed on dbuser:cluster-…/app
    assert c.resource_id in c.db_user_arn("app")
    with psycopg.connect(**c.connect_kwargs("app", c.generate_token("app", session))) as conn:
        conn.execute("CREATE TABLE orders (id int)")
        conn.execute("INSERT INTO orders VALUES (1)")
    c.wait_for_replicas()
    token = c.generate_token("app", session, host=c.reader_host)   # sign for the host you use
    with psycopg.connect(**c.connect_kwargs("app", token, host=c.reader_host)) as conn:
        assert conn.execute("SELECT id FROM orders").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO orders VALUES (2)")
    new_writer = c.failover()                            # promotes the reader for real
    assert c.writer_host == c.instance_hosts[new_writer]
    with psycopg.connect(**c.connect_kwargs("app", c.generate_token("app", session))) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
