import re

import boto3
import pytest
from moto import mock_aws

from rdsiam_emulator.aws.rds import RdsRegistration, register, set_iam_enabled


def _reg(**kw):
    base = dict(instance_id="orders", engine="postgres", region="eu-west-1",
                account_id="123456789012",
                address="orders.cabcdefghijk.eu-west-1.rds.amazonaws.com", port=55432,
                resource_id="db-ABCDEFGHIJKLMNOPQRSTUVWXY2", master_username="postgres",
                dbname="app")
    base.update(kw)
    return RdsRegistration(**base)


@mock_aws
def test_describe_db_instances_reports_the_emulated_endpoint():
    register(_reg())
    rds = boto3.client("rds", region_name="eu-west-1")
    [db] = rds.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"]
    assert db["Endpoint"]["Address"] == "orders.cabcdefghijk.eu-west-1.rds.amazonaws.com"
    assert db["Endpoint"]["Port"] == 55432
    assert db["DbiResourceId"] == "db-ABCDEFGHIJKLMNOPQRSTUVWXY2"
    assert db["IAMDatabaseAuthenticationEnabled"] is True
    assert db["Engine"] == "postgres" and db["MasterUsername"] == "postgres"


@mock_aws
def test_instances_created_by_apps_keep_moto_addresses_and_get_unique_ids():
    register(_reg())
    rds = boto3.client("rds", region_name="eu-west-1")
    for name in ("a1", "a2"):
        rds.create_db_instance(DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro",
                               Engine="mysql", MasterUsername="admin",
                               MasterUserPassword="password123", AllocatedStorage=20)
    dbs = {d["DBInstanceIdentifier"]: d for d in rds.describe_db_instances()["DBInstances"]}
    assert dbs["a1"]["Endpoint"]["Address"].startswith("a1.")
    assert dbs["a1"]["DbiResourceId"] != dbs["a2"]["DbiResourceId"]
    for d in dbs.values():
        assert re.fullmatch(r"db-[A-Z0-9]{26}", d["DbiResourceId"])


@mock_aws
def test_reregistering_replaces_and_iam_flag_can_change():
    register(_reg(port=1111))
    register(_reg(port=2222, iam_enabled=False))
    rds = boto3.client("rds", region_name="eu-west-1")
    [db] = rds.describe_db_instances()["DBInstances"]
    assert db["Endpoint"]["Port"] == 2222 and db["IAMDatabaseAuthenticationEnabled"] is False
    set_iam_enabled("123456789012", "eu-west-1", "orders", True)
    [db] = rds.describe_db_instances()["DBInstances"]
    assert db["IAMDatabaseAuthenticationEnabled"] is True


@pytest.mark.parametrize("engine", ["mysql", "mariadb"])
@mock_aws
def test_mysql_family_engines(engine):
    register(_reg(engine=engine, port=3307, master_username="admin"))
    rds = boto3.client("rds", region_name="eu-west-1")
    [db] = rds.describe_db_instances()["DBInstances"]
    assert db["Engine"] == engine and db["Endpoint"]["Port"] == 3307
