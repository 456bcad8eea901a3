"""``rds_iam_proxy_factory``: RDS Proxies in front of a test's instance or Aurora cluster, created
through boto3 against the plugin's moto (docs/pytest.md, docs/rds-proxy.md).

The proxy starts when its target is registered (``rdsiam_emulator.proxies.auto_start``, active
for every test of the plugin), so a test's own ``create_db_proxy`` + ``register_db_proxy_targets``
calls start one too; ``rds_iam_proxy_factory.get(name)`` finds it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

import boto3
import pytest

from pytest_rdsiam.cluster import RdsIamCluster
from pytest_rdsiam.db import RdsIamDb, moto_account
from pytest_rdsiam.plugin_state import EVENT_SOURCES
from rdsiam_emulator.auth.proxy import AUTH_SCHEMES, IAM_AUTH_MODES
from rdsiam_emulator.instances import Emulator
from rdsiam_emulator.proxies import ENGINE_FAMILIES, EmulatedProxy

_names = itertools.count(1)


class ProxyFactory:
    """Callable fixture value: ``factory(db, secrets={"user": "password"}, iam_auth="REQUIRED",
    default_auth_scheme="NONE", require_tls=False, role_may_connect_as=(), name=None,
    read_only_endpoint=None)``, or ``factory(target=cluster, ...)`` for an Aurora cluster."""

    def __init__(self, request: pytest.FixtureRequest, emulator: Emulator,
                 start: Callable[[], None]) -> None:
        self._request = request
        self._emulator = emulator
        self._start = start

    def __call__(self, db: RdsIamDb | RdsIamCluster | None = None, *,
                 target: RdsIamDb | RdsIamCluster | None = None,
                 secrets: dict[str, str] | None = None,
                 iam_auth: str = "REQUIRED", default_auth_scheme: str = "NONE",
                 require_tls: bool = False, role_may_connect_as: Sequence[str] = (),
                 name: str | None = None,
                 read_only_endpoint: str | None = None) -> EmulatedProxy:
        """Create a proxy in front of ``db``'s instance, or of the Aurora cluster ``target``
        (``rds_iam_cluster``: the proxy follows its writer), with ``create_db_proxy`` and
        ``register_db_proxy_targets`` (boto3, the plugin's moto, the target's account and
        region) and return the running proxy.

        ``secrets``: DB user → password; each becomes a Secrets Manager secret in the proxy's
        ``Auth`` with ``IAMAuth=iam_auth`` (``REQUIRED``/``DISABLED``). ``default_auth_scheme``
        ``IAM_AUTH``: end-to-end IAM (no secrets needed). The proxy's role is created for it;
        ``role_may_connect_as`` lists the DB users it may ``rds-db:connect`` as on the
        **database's** resource (a cluster's ``cluster-…`` one). ``read_only_endpoint``: the
        name of a ``READ_ONLY`` proxy endpoint to create too (cluster targets with a reader;
        ``proxy.endpoints[name]``). ``ValueError`` for a scheme or mode RDS does not accept,
        or for none or both of ``db`` and ``target``; a ``botocore`` ``ClientError`` for what
        the API refuses.
        """
        if (db is None) == (target is None):
            raise ValueError("give the proxy's target: rds_iam_proxy_factory(db) or "
                             "rds_iam_proxy_factory(target=cluster)")
        fronted = db if db is not None else target
        assert fronted is not None
        if iam_auth not in IAM_AUTH_MODES:
            raise ValueError(f"iam_auth must be one of {IAM_AUTH_MODES}, not {iam_auth!r}")
        if default_auth_scheme not in AUTH_SCHEMES:
            raise ValueError(f"default_auth_scheme must be one of {AUTH_SCHEMES}, "
                             f"not {default_auth_scheme!r}")
        self._start()
        name = name or f"proxy-{next(_names)}"
        with moto_account(fronted.account_id):
            region = fronted.region
            ec2 = boto3.client("ec2", region_name=region)
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
            iam = boto3.client("iam", region_name=region)
            role = iam.create_role(RoleName=f"rdsiam-{name}", AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "rds.amazonaws.com"}}]}))["Role"]
            if role_may_connect_as:
                iam.put_role_policy(RoleName=role["RoleName"], PolicyName="rds-db-connect",
                                    PolicyDocument=json.dumps({
                                        "Version": "2012-10-17",
                                        "Statement": [{
                                            "Effect": "Allow", "Action": "rds-db:connect",
                                            "Resource": [fronted.db_user_arn(u)
                                                         for u in role_may_connect_as]}]}))
            sm = boto3.client("secretsmanager", region_name=region)
            auth: list[dict[str, Any]] = [
                {"SecretArn": sm.create_secret(
                    Name=f"rdsiam-{name}-{user}",
                    SecretString=json.dumps({"username": user, "password": password}))["ARN"],
                 "IAMAuth": iam_auth}
                for user, password in (secrets or {}).items()]
            rds = boto3.client("rds", region_name=region)
            rds.create_db_proxy(
                DBProxyName=name, EngineFamily=ENGINE_FAMILIES[fronted.engine], Auth=auth,
                RoleArn=role["Arn"], VpcSubnetIds=[subnet], RequireTLS=require_tls,
                DefaultAuthScheme=default_auth_scheme)
            if isinstance(fronted, RdsIamCluster):
                rds.register_db_proxy_targets(DBProxyName=name,
                                              DBClusterIdentifiers=[fronted.cluster_id])
            else:
                rds.register_db_proxy_targets(DBProxyName=name,
                                              DBInstanceIdentifiers=[fronted.instance_id])
            if read_only_endpoint is not None:
                rds.create_db_proxy_endpoint(DBProxyName=name,
                                             DBProxyEndpointName=read_only_endpoint,
                                             VpcSubnetIds=[subnet], TargetRole="READ_ONLY")
        return self.get(name)

    def get(self, name: str) -> EmulatedProxy:
        """The running proxy ``name`` (also one the test created with its own boto3 calls);
        its auth events join the test's failure report. ``KeyError`` if none runs."""
        proxy = self._emulator.proxy(name)
        sources = self._request.node.stash.setdefault(EVENT_SOURCES, [])
        if all(source is not proxy for source, _ in sources):
            sources.append((proxy, self._emulator.events.mark()))
        return proxy
