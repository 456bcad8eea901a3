"""moto's RDS is imported only by a test that calls the RDS API, and then reports the instance.

Importing ``moto.rds`` is most of the plugin's first-test time (bench/bench_plugin.py); the
instance's registration waits for that import (``aws.rds.register_when_imported``)."""

import pytest

USER_TESTS = r'''
import sys

import boto3
import psycopg


def test_1_login_without_rds_calls(rds_iam_db):
    db = rds_iam_db
    db.create_iam_db_user("app")
    token = db.generate_token("app", db.iam_session("app"))
    psycopg.connect(**db.connect_kwargs("app", token)).close()
    assert db.auth_events[-1].outcome == "allow"
    db.set_iam_enabled(False)   # while the registration waits: kept for when it is made
    assert "moto.rds" not in sys.modules


def test_2_first_rds_call_finds_this_tests_instance(rds_iam_db_factory):
    db = rds_iam_db_factory(engine="postgres", region="eu-west-1")
    db.set_iam_enabled(False)
    assert "moto.rds" not in sys.modules
    rds = boto3.client("rds", region_name="eu-west-1")
    [desc] = rds.describe_db_instances()["DBInstances"]   # imports moto.rds now
    assert desc["DBInstanceIdentifier"] == db.instance_id
    assert desc["DbiResourceId"] == db.resource_id
    assert (desc["Endpoint"]["Address"], desc["Endpoint"]["Port"]) == (db.host, db.port)
    assert desc["IAMDatabaseAuthenticationEnabled"] is False
    # the earlier test's instance (us-east-1) was never made: its moto state ended with it
    assert boto3.client("rds", region_name="us-east-1").describe_db_instances()["DBInstances"] == []


def test_3_registered_at_once_once_imported(rds_iam_db):
    db = rds_iam_db
    assert "moto.rds" in sys.modules
    [desc] = boto3.client("rds", region_name=db.region).describe_db_instances()["DBInstances"]
    assert desc["DbiResourceId"] == db.resource_id
    assert desc["IAMDatabaseAuthenticationEnabled"] is True   # the shared instance, restored
'''


def test_moto_rds_is_imported_by_the_first_rds_call(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    # a subprocess: this process may have imported moto.rds already
    result = pytester.runpytest_subprocess("--rdsiam-emulator", "--rdsiam-backend", "local",
                                           "-p", "no:xdist", "-p", "no:randomly",
                                           "-p", "no:cacheprovider", "-p", "no:pytest_postgresql")
    result.assert_outcomes(passed=3)
