"""Registering an Aurora cluster in moto: describe_db_clusters tells the emulator's truth, members
report the cluster's IAM flag, ModifyDBCluster switches it (moto 5.2 gets both wrong)."""

import boto3
from moto import mock_aws

from rdsiam_emulator.aws import rds as moto_rds

REG = moto_rds.ClusterRegistration(
    cluster_id="orders", engine="aurora-postgresql", region="us-east-1",
    account_id="123456789012", dns_label="c0123456789a", port=45123,
    resource_id="cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ", master_username="postgres", dbname="app",
    members=(("orders-1", "orders-1.c0123456789a.us-east-1.rds.amazonaws.com",
              "db-AAAAAAAAAAAAAAAAAAAAAAAAAA"),
             ("orders-2", "orders-2.c0123456789a.us-east-1.rds.amazonaws.com",
              "db-BBBBBBBBBBBBBBBBBBBBBBBBBB")),
    writer="orders-1")


def test_describe_db_clusters_reports_the_registration():
    with mock_aws():
        moto_rds.register_cluster(REG)
        rds = boto3.client("rds", region_name="us-east-1")
        [c] = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"]
        assert c["Endpoint"] == "orders.cluster-c0123456789a.us-east-1.rds.amazonaws.com"
        assert c["ReaderEndpoint"] == "orders.cluster-ro-c0123456789a.us-east-1.rds.amazonaws.com"
        assert (c["Port"], c["DbClusterResourceId"]) == (45123, REG.resource_id)
        assert c["IAMDatabaseAuthenticationEnabled"] is True
        assert [(m["DBInstanceIdentifier"], m["IsClusterWriter"])
                for m in c["DBClusterMembers"]] == [("orders-1", True), ("orders-2", False)]
        instances = rds.describe_db_instances()["DBInstances"]
        assert {(d["DBInstanceIdentifier"], d["Endpoint"]["Address"], d["Endpoint"]["Port"],
                 d["DbiResourceId"], d["DBClusterIdentifier"]) for d in instances} == {
            (i, host, 45123, rid, "orders") for i, host, rid in REG.members}
        # registering again replaces it
        moto_rds.register_cluster(REG)
        assert len(rds.describe_db_clusters()["DBClusters"]) == 1


def test_members_report_the_clusters_iam_flag_and_modify_switches_it():
    with mock_aws():
        moto_rds.register_cluster(REG)
        rds = boto3.client("rds", region_name="us-east-1")
        flags = {d["IAMDatabaseAuthenticationEnabled"]
                 for d in rds.describe_db_instances()["DBInstances"]}
        assert flags == {True}  # moto alone: False on every member
        rds.modify_db_cluster(DBClusterIdentifier="orders", ApplyImmediately=True,
                              EnableIAMDatabaseAuthentication=False)
        [c] = rds.describe_db_clusters()["DBClusters"]
        assert c["IAMDatabaseAuthenticationEnabled"] is False  # moto alone: still True
        assert {d["IAMDatabaseAuthenticationEnabled"]
                for d in rds.describe_db_instances()["DBInstances"]} == {False}
        moto_rds.set_cluster_iam_enabled("123456789012", "us-east-1", "orders", True)
        moto_rds.set_cluster_writer("123456789012", "us-east-1", "orders", "orders-2")
        [c] = rds.describe_db_clusters()["DBClusters"]
        assert c["IAMDatabaseAuthenticationEnabled"] is True
        assert [m["DBInstanceIdentifier"] for m in c["DBClusterMembers"]
                if m["IsClusterWriter"]] == ["orders-2"]
