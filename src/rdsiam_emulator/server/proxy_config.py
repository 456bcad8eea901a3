"""``[[proxies]]`` in the serve config, and creating them at start-up through the RDS API.

Each entry becomes a Secrets Manager secret per ``[[proxies.auth]]`` user, an IAM role for the
proxy, ``create_db_proxy``, ``register_db_proxy_targets`` (``DBInstanceIdentifiers`` or, for an
Aurora cluster, ``DBClusterIdentifiers``) and one ``create_db_proxy_endpoint`` per
``[[proxies.endpoints]]`` — the same calls an application makes against the server's port, which
start the real proxy (``proxies.auto_start``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rdsiam_emulator.auth.proxy import AUTH_SCHEMES, IAM_AUTH_MODES
from rdsiam_emulator.server.config import (
    Config,
    ConfigError,
    InstanceSpec,
    _bool,
    _listen,
    _only,
    _str,
    _str_list,
    _tables,
)

_PROXY_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
"""RDS proxy names: a letter, then letters, digits and single hyphens (stored in lower case)."""


@dataclass(frozen=True)
class ProxyUserSpec:
    """One ``[[proxies.auth]]`` entry: a DB user, its password (the secret) and ``IAMAuth``."""

    username: str
    password: str
    iam_auth: str = "REQUIRED"


@dataclass(frozen=True)
class ProxyEndpointSpec:
    """One ``[[proxies.endpoints]]`` entry: a proxy endpoint of its own name and ``TargetRole``."""

    name: str
    target_role: str = "READ_WRITE"


@dataclass(frozen=True)
class ProxySpec:
    """One ``[[proxies]]`` entry: an RDS Proxy to create at boot in front of ``target``."""

    name: str
    target: str
    auth: tuple[ProxyUserSpec, ...] = ()
    default_auth_scheme: str = "NONE"
    require_tls: bool = False
    role_may_connect_as: tuple[str, ...] = ()
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    endpoints: tuple[ProxyEndpointSpec, ...] = ()


def parse_proxies(data: Mapping[str, Any], instances: tuple[InstanceSpec, ...],
                  clusters: Iterable[str] = ()) -> tuple[ProxySpec, ...]:
    """The ``proxies`` array of the parsed TOML ``data``; ``ConfigError`` naming the key.
    ``clusters``: the identifiers of the configured Aurora clusters, which a proxy may front
    too (``READ_ONLY`` endpoints only for them)."""
    raw = data.get("proxies", [])
    if not isinstance(raw, list):
        raise ConfigError("proxies", "must be an array of tables ([[proxies]])")
    targets = {i.identifier for i in instances}
    cluster_ids = set(clusters)
    specs: list[ProxySpec] = []
    for i, entry in enumerate(raw):
        key = f"proxies[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(key, "must be a table")
        _only(entry, key, {"name", "target", "auth", "default_auth_scheme", "require_tls",
                           "role_may_connect_as", "listen", "endpoints"})
        name = _str(entry, key, "name", "")
        if not _PROXY_NAME.match(name) or len(name) > 63:
            raise ConfigError(f"{key}.name", f"{name!r} is not an RDS proxy name (a lower-case "
                              "letter, then up to 62 letters, digits or single hyphens)")
        if any(s.name == name for s in specs):
            raise ConfigError(f"{key}.name", f"{name!r} is already used")
        target = _str(entry, key, "target", "")
        if target not in targets | cluster_ids:
            raise ConfigError(f"{key}.target", f"{target!r} is not the identifier of one of the "
                              "[[instances]]" + (" or [[clusters]]" if cluster_ids else ""))
        scheme = _str(entry, key, "default_auth_scheme", "NONE")
        if scheme not in AUTH_SCHEMES:
            raise ConfigError(f"{key}.default_auth_scheme",
                              f"must be one of {', '.join(AUTH_SCHEMES)}, got {scheme!r}")
        users = tuple(_user(f"{key}.auth[{j}]", u)
                      for j, u in enumerate(_tables(entry, key, "auth")))
        if not users and scheme != "IAM_AUTH":
            raise ConfigError(f"{key}.auth", "needs at least one [[proxies.auth]] user unless "
                              'default_auth_scheme = "IAM_AUTH"')
        host, port = "127.0.0.1", 0
        if "listen" in entry:
            host, port = _listen(_str(entry, key, "listen", ""), f"{key}.listen")
        endpoints = tuple(_endpoint(f"{key}.endpoints[{j}]", e, target in cluster_ids)
                          for j, e in enumerate(_tables(entry, key, "endpoints")))
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ConfigError(f"{key}.endpoints", "endpoint names must differ")
        specs.append(ProxySpec(
            name=name, target=target, auth=users, default_auth_scheme=scheme,
            require_tls=_bool(entry, key, "require_tls", False),
            role_may_connect_as=_str_list(entry, key, "role_may_connect_as"),
            listen_host=host, listen_port=port, endpoints=endpoints))
    return tuple(specs)


def _endpoint(key: str, raw: Mapping[str, Any], cluster: bool) -> ProxyEndpointSpec:
    _only(raw, key, {"name", "target_role"})
    name = _str(raw, key, "name", "")
    if not _ENDPOINT_NAME.match(name) or len(name) > 63 or name == "default":
        raise ConfigError(f"{key}.name", f"{name!r} is not a proxy endpoint name (a letter, "
                          "then letters, digits or single hyphens, at most 63, not 'default')")
    role = _str(raw, key, "target_role", "READ_WRITE")
    if role not in ("READ_WRITE", "READ_ONLY"):
        raise ConfigError(f"{key}.target_role", f"must be READ_WRITE or READ_ONLY, got {role!r}")
    if role == "READ_ONLY" and not cluster:
        raise ConfigError(f"{key}.target_role",
                          "READ_ONLY needs a proxy whose target is an Aurora cluster")
    return ProxyEndpointSpec(name, role)


_ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$")


def _user(key: str, raw: Mapping[str, Any]) -> ProxyUserSpec:
    _only(raw, key, {"username", "password", "iam_auth"})
    username = _str(raw, key, "username", "")
    password = _str(raw, key, "password", "")
    if not username or not password:
        raise ConfigError(key, "needs username and password (the proxy's secret)")
    iam_auth = _str(raw, key, "iam_auth", "REQUIRED")
    if iam_auth not in IAM_AUTH_MODES:
        raise ConfigError(f"{key}.iam_auth",
                          f"must be one of {', '.join(IAM_AUTH_MODES)}, got {iam_auth!r}")
    return ProxyUserSpec(username, password, iam_auth)


def create_proxies(config: Config, api_url: str) -> None:
    """Create every configured proxy through the API at ``api_url`` (the server's own port);
    ``ConfigError`` naming the entry if the API refuses it."""
    from botocore.exceptions import ClientError

    for i, spec in enumerate(config.proxies):
        try:
            _create(config, spec, api_url)
        except ClientError as exc:
            raise ConfigError(f"proxies[{i}]", str(exc)) from None


def _create(config: Config, spec: ProxySpec, api_url: str) -> None:
    import boto3

    from rdsiam_emulator.proxies import ENGINE_FAMILIES

    region = config.server.region
    kwargs: dict[str, Any] = {"region_name": region, "endpoint_url": api_url,
                              "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    iam, sm = boto3.client("iam", **kwargs), boto3.client("secretsmanager", **kwargs)
    ec2, rds = boto3.client("ec2", **kwargs), boto3.client("rds", **kwargs)
    target, engine, resource_id = _target(rds, spec.target)
    role = iam.create_role(RoleName=f"rdsiam-proxy-{spec.name}",
                           AssumeRolePolicyDocument=json.dumps({
                               "Version": "2012-10-17",
                               "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                              "Principal": {"Service": "rds.amazonaws.com"}}]}))
    if spec.role_may_connect_as:
        arns = [f"arn:aws:rds-db:{region}:{config.server.account_id}:dbuser:"
                f"{resource_id}/{user}" for user in spec.role_may_connect_as]
        iam.put_role_policy(RoleName=role["Role"]["RoleName"], PolicyName="rds-db-connect",
                            PolicyDocument=json.dumps({
                                "Version": "2012-10-17",
                                "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                                               "Resource": arns}]}))
    auth = [{"SecretArn": sm.create_secret(
                Name=f"rdsiam-proxy-{spec.name}-{user.username}",
                SecretString=json.dumps({"username": user.username,
                                         "password": user.password}))["ARN"],
             "IAMAuth": user.iam_auth} for user in spec.auth]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    family = ENGINE_FAMILIES["postgres" if "postgres" in engine else "mysql"]
    rds.create_db_proxy(DBProxyName=spec.name, EngineFamily=family, Auth=auth,
                        RoleArn=role["Role"]["Arn"], VpcSubnetIds=[subnet],
                        RequireTLS=spec.require_tls, DefaultAuthScheme=spec.default_auth_scheme)
    rds.register_db_proxy_targets(DBProxyName=spec.name, **target)
    for endpoint in spec.endpoints:
        rds.create_db_proxy_endpoint(DBProxyName=spec.name, DBProxyEndpointName=endpoint.name,
                                     VpcSubnetIds=[subnet], TargetRole=endpoint.target_role)


def _target(rds: Any, identifier: str) -> tuple[dict[str, list[str]], str, str]:
    """``register_db_proxy_targets`` keyword for ``identifier`` (an instance, else a cluster),
    its engine and the resource id end-to-end IAM policies name (``db-…`` / ``cluster-…``)."""
    from botocore.exceptions import ClientError

    try:
        [db] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    except ClientError as exc:
        if "DBInstanceNotFound" not in str(exc):
            raise
    else:
        return ({"DBInstanceIdentifiers": [identifier]}, str(db["Engine"]),
                str(db["DbiResourceId"]))
    [cluster] = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"]
    return ({"DBClusterIdentifiers": [identifier]}, str(cluster["Engine"]),
            str(cluster["DbClusterResourceId"]))
