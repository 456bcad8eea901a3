"""pytest-xdist: every worker has its own emulator and servers, so identical names never clash."""

WORKER_TESTS = r'''
import os

import psycopg
import pymysql
import pytest


@pytest.mark.parametrize("n", range(4))
@pytest.mark.parametrize("rds_iam_db", ["postgres", "mysql"], indirect=True)
def test_same_names_everywhere(rds_iam_db, n):
    db = rds_iam_db
    db.create_iam_db_user("app")                  # the same DB user name in every test/worker
    token = db.generate_token("app", db.iam_session("app", name="same-iam-user"))
    if db.engine == "postgres":
        conn = psycopg.connect(**db.connect_kwargs("app", token))
        conn.execute("create table t (worker text)")
        conn.execute("insert into t values (%s)", (os.environ["PYTEST_XDIST_WORKER"],))
        assert conn.execute("select count(*) from t").fetchone() == (1,)
    else:
        conn = pymysql.connect(**db.connect_kwargs("app", token))
        with conn.cursor() as cur:
            cur.execute("create table t (worker varchar(10))")
            cur.execute("insert into t values (%s)", (os.environ["PYTEST_XDIST_WORKER"],))
            cur.execute("select count(*) from t")
            assert cur.fetchone() == (1,)
    conn.close()
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"], db.port)
'''


def test_two_workers_do_not_clash(pytester):
    pytester.makepyfile(test_workers=WORKER_TESTS)
    result = pytester.runpytest_subprocess("--rdsiam-emulator", "--rdsiam-backend", "local",
                                           "-n", "2", "-p", "xdist", "-rA")
    result.assert_outcomes(passed=8)
    workers = {line.split()[1] for line in result.outlines if line.startswith("WORKER ")}
    assert workers == {"gw0", "gw1"}
