"""RDS Proxy in ``rdsiam-emulator serve``: ``[[proxies]]`` in the config and ``create_db_proxy`` +
``register_db_proxy_targets`` through the server's port, driven from outside (boto3 against the
port, psycopg over verified TLS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from serve_proc import ACCOUNT, APP_KEY, APP_SECRET, REGION, Serve, free_port

from rdsiam_emulator import cli

MASTER, MASTER_PASSWORD = "master", "Master-Pass-1"
CONNECT_ANY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "rds-db:connect",
    "Resource": f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:prx-*/*"}]})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    port = free_port()
    config = f"""
[server]
port = {port}
region = "{REGION}"
account_id = "{ACCOUNT}"

[[instances]]
identifier = "orders"
engine = "postgres"
iam_db_users = ["app_user"]
master_username = "{MASTER}"
master_password = "{MASTER_PASSWORD}"

[[proxies]]
name = "orders-proxy"
target = "orders"
require_tls = true
[[proxies.auth]]
username = "{MASTER}"
password = "{MASTER_PASSWORD}"
iam_auth = "REQUIRED"

[[proxies]]
name = "orders-e2e"
target = "orders"
default_auth_scheme = "IAM_AUTH"
role_may_connect_as = ["app_user"]

[[iam.users]]
name = "app"
inline_policies = {{ connect = '{CONNECT_ANY}' }}
access_keys = [{{ access_key_id = "{APP_KEY}", secret_access_key = "{APP_SECRET}" }}]
"""
    serve = Serve(config, tmp_path_factory.mktemp("serve-proxy"))
    try:
        serve.wait_ready(port)
        serve.ca.write_bytes(serve.get("/_rdsiam/ca.pem").content)
        yield serve
    finally:
        code = serve.stop()
        assert code == 0, serve.stderr()
        assert serve.stderr() == ""


def _proxy(serve: Serve, name: str) -> dict[str, Any]:
    found = [p for p in serve.json("/_rdsiam/proxies")["proxies"] if p["name"] == name]
    assert found, serve.output()
    return found[0]


def _login(serve: Serve, proxy: dict[str, Any], user: str, password: str,
           sslmode: str = "verify-full") -> str:
    with psycopg.connect(host=proxy["host"], hostaddr=proxy["address"], port=proxy["port"],
                         user=user, password=password, dbname="app", sslmode=sslmode,
                         sslrootcert=str(serve.ca), connect_timeout=20) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def _token(serve: Serve, proxy: dict[str, Any], user: str) -> str:
    return str(serve.client("rds", APP_KEY, APP_SECRET).generate_db_auth_token(
        DBHostname=proxy["host"], Port=proxy["port"], DBUsername=user, Region=REGION))


def test_configured_proxies(server: Serve) -> None:
    proxy = _proxy(server, "orders-proxy")
    assert proxy["host"].startswith("orders-proxy.proxy-")
    assert proxy["resource_id"].startswith("prx-")
    assert (proxy["target"], proxy["require_tls"], proxy["created_by"]) == (
        "orders", True, "config")
    assert f"RDS Proxy 'orders-proxy' for 'orders': endpoint {proxy['host']}" in server.output()
    hosts = [line for line in server.output().splitlines() if proxy["host"] in line]
    assert hosts
    assert _login(server, proxy, MASTER, _token(server, proxy, MASTER)) == MASTER
    with pytest.raises(psycopg.OperationalError, match="This RDS Proxy requires TLS"):
        _login(server, proxy, MASTER, _token(server, proxy, MASTER), sslmode="disable")
    rds = server.client("rds")
    [described] = rds.describe_db_proxies(DBProxyName="orders-proxy")["DBProxies"]
    assert described["Endpoint"] == proxy["host"]
    [target] = rds.describe_db_proxy_targets(DBProxyName="orders-proxy")["Targets"]
    assert target["TargetHealth"] == {"State": "AVAILABLE"}

    e2e = _proxy(server, "orders-e2e")
    assert _login(server, e2e, "app_user", _token(server, e2e, "app_user")) == "app_user"


def test_proxy_through_the_api(server: Serve) -> None:
    sm, ec2, rds = server.client("secretsmanager"), server.client("ec2"), server.client("rds")
    arn = sm.create_secret(Name="api-master", SecretString=json.dumps(
        {"username": MASTER, "password": MASTER_PASSWORD}))["ARN"]
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    rds.create_db_proxy(DBProxyName="api-proxy", EngineFamily="POSTGRESQL",
                        Auth=[{"SecretArn": arn, "IAMAuth": "DISABLED"}],
                        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/any", VpcSubnetIds=[subnet])
    rds.register_db_proxy_targets(DBProxyName="api-proxy", DBInstanceIdentifiers=["orders"])
    proxy = _proxy(server, "api-proxy")
    assert proxy["created_by"] == "api"
    assert _login(server, proxy, MASTER, MASTER_PASSWORD) == MASTER  # DISABLED: the secret's
    with pytest.raises(psycopg.OperationalError, match="no credentials for the role"):
        _login(server, proxy, MASTER, "not-the-secret")
    rds.delete_db_proxy(DBProxyName="api-proxy")
    assert all(p["name"] != "api-proxy" for p in server.json("/_rdsiam/proxies")["proxies"])


GOOD = '[[instances]]\nidentifier = "orders"\n'
BAD = [
    (GOOD + '[[proxies]]\nname = "p"\ntarget = "nope"\n',
     "proxies[0].target: 'nope' is not the identifier of one of the [[instances]]"),
    (GOOD + '[[proxies]]\nname = "p"\ntarget = "orders"\n',
     "proxies[0].auth: needs at least one [[proxies.auth]] user"),
    (GOOD + '[[proxies]]\nname = "p"\ntarget = "orders"\n[[proxies.auth]]\nusername = "u"\n'
            'password = "x"\niam_auth = "ENABLED"\n',
     "proxies[0].auth[0].iam_auth: must be one of REQUIRED, DISABLED"),
    (GOOD + '[[proxies]]\nname = "P_1"\ntarget = "orders"\n',
     "proxies[0].name: 'P_1' is not an RDS proxy name"),
    (GOOD + '[[proxies]]\nname = "p"\ntarget = "orders"\ndefault_auth_scheme = "X"\n',
     "proxies[0].default_auth_scheme: must be one of NONE, IAM_AUTH"),
    (GOOD + '[[proxies]]\nname = "p"\ntarget = "orders"\ndefault_auth_scheme = "IAM_AUTH"\n'
            '[[proxies.endpoints]]\nname = "reads"\ntarget_role = "READ_ONLY"\n',
     "proxies[0].endpoints[0].target_role: READ_ONLY needs a proxy whose target is an Aurora "
     "cluster"),
]


@pytest.mark.parametrize(("toml", "message"), BAD, ids=[m.split(":")[0] + str(i)
                                                        for i, (_, m) in enumerate(BAD)])
def test_bad_proxy_config_exits_2_naming_the_key(toml: str, message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert cli.main(["serve", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"rdsiam-emulator serve: bad config: {message}"), err


def test_documented_proxies_example_is_valid() -> None:
    import re
    import tomllib

    from rdsiam_emulator.server import config

    doc = (Path(__file__).resolve().parents[3] / "docs" / "server.md").read_text()
    runnable, _compose, proxies = re.findall(r"```toml\n(.*?)```", doc, re.S)[:3]
    parsed = config.parse(tomllib.loads(runnable + proxies))
    assert [(p.name, p.target, p.default_auth_scheme) for p in parsed.proxies] == [
        ("shop-proxy", "shop", "NONE"), ("orders-e2e", "orders", "IAM_AUTH")]
    # the example's secret is the shop instance's master account, so it works as written
    shop = parsed.instances[1]
    secret = parsed.proxies[0].auth[0]
    assert (secret.username, secret.password) == (shop.master_username, shop.master_password)
    assert parsed.proxies[1].role_may_connect_as == parsed.instances[0].iam_db_users


def test_proxy_endpoints_and_cluster_targets_in_the_config() -> None:
    import tomllib

    from rdsiam_emulator.server.config import ConfigError, InstanceSpec
    from rdsiam_emulator.server.proxy_config import ProxyEndpointSpec, parse_proxies

    data = tomllib.loads("""
[[proxies]]
name = "orders-proxy"
target = "orders-cluster"
default_auth_scheme = "IAM_AUTH"
[[proxies.endpoints]]
name = "reads"
target_role = "READ_ONLY"
[[proxies.endpoints]]
name = "writes"
""")
    instances = (InstanceSpec(identifier="orders", engine="postgres"),)
    [spec] = parse_proxies(data, instances, clusters=("orders-cluster",))
    assert (spec.target, spec.endpoints) == ("orders-cluster", (
        ProxyEndpointSpec("reads", "READ_ONLY"), ProxyEndpointSpec("writes", "READ_WRITE")))
    with pytest.raises(ConfigError, match="not the identifier of one of the"):
        parse_proxies(data, instances)  # no such cluster configured


def test_proxy_endpoints_and_a_cluster_target_through_the_api(server: Serve) -> None:
    from botocore.exceptions import ClientError

    rds = server.client("rds")
    subnet = rds.describe_db_proxies(DBProxyName="orders-proxy")["DBProxies"][0]["VpcSubnetIds"]
    made = rds.create_db_proxy_endpoint(DBProxyName="orders-proxy", DBProxyEndpointName="more",
                                        VpcSubnetIds=subnet)["DBProxyEndpoint"]
    host = _proxy(server, "orders-proxy")["host"]
    assert made["Endpoint"] == host.replace("orders-proxy.proxy-", "more.endpoint.proxy-")
    assert made["TargetRole"] == "READ_WRITE"
    with pytest.raises(ClientError, match="READ_ONLY proxy endpoint needs"):
        rds.create_db_proxy_endpoint(DBProxyName="orders-proxy", DBProxyEndpointName="ro",
                                     VpcSubnetIds=subnet, TargetRole="READ_ONLY")
    names = [e["DBProxyEndpointName"] for e in rds.describe_db_proxy_endpoints(
        DBProxyName="orders-proxy")["DBProxyEndpoints"]]
    assert names == ["default", "more"]
    rds.delete_db_proxy_endpoint(DBProxyEndpointName="more")


def test_status_json_lists_the_proxies(server: Serve) -> None:
    """The status page's document carries the same proxies as /_rdsiam/proxies."""
    shown = server.json("/_rdsiam/status.json")["proxies"]
    assert shown == server.json("/_rdsiam/proxies")["proxies"]
    assert {p["name"] for p in shown} == {"orders-proxy", "orders-e2e"}
