"""RdsIamEmulatorContainer against the Podman engine: the image starts, turns healthy, and an app
on this machine logs in with IAM tokens over verified TLS (psycopg, PyMySQL) by the endpoints the
module gives; a denied login shows its reason on /_rdsiam/events; stop() is a clean SIGTERM stop."""

from __future__ import annotations

import json
import time

import boto3
import psycopg
import pymysql
import pytest
from testcontainers.core.config import testcontainers_config
from testcontainers.core.exceptions import ContainerStartException

from image_engine import image_engine  # noqa: F401 - session fixture
from rdsiam_emulator.server.config import ConfigError
from rdsiam_emulator.testcontainers import EmulatorStartError, RdsIamEmulatorContainer

# a cold machine builds the images inside the first test's set-up (scripts/bootstrap prebuilds them)
pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture
def engine(image_engine: dict[str, str],  # noqa: F811
           monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in image_engine.items():
        monkeypatch.setenv(key, value)
    # testcontainers reads TESTCONTAINERS_RYUK_DISABLED once per process and caches it: an earlier
    # test in this worker may have read it unset (Ryuk's image does not exist here)
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled",
                        image_engine["TESTCONTAINERS_RYUK_DISABLED"] == "true")
    return image_engine


def app_keys(emu: RdsIamEmulatorContainer, name: str, resources: list[str]) -> boto3.Session:
    iam = emu.aws_client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": resources}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"], region_name=emu.region)


def test_container_gives_endpoints_api_and_ca_and_apps_log_in(engine: dict[str, str]) -> None:
    emu = RdsIamEmulatorContainer(region="eu-west-1")
    assert emu.image == engine["RDSIAM_EMULATOR_IMAGE"]
    started = time.monotonic()
    with emu:
        startup = time.monotonic() - started
        eps = emu.endpoints()
        assert set(eps) == {"orders", "inventory"}
        orders, inventory = eps["orders"], eps["inventory"]
        assert (orders.engine, inventory.engine) == ("postgres", "mariadb")  # RDS engine names
        assert orders.address == "orders.c0testcontainer.eu-west-1.rds.amazonaws.com"
        assert orders.host == "localhost" and orders.port != inventory.port
        # the AWS API on the same URL reports the same instance
        described = emu.aws_client("rds").describe_db_instances(
            DBInstanceIdentifier="orders")["DBInstances"][0]
        assert described["DbiResourceId"] == orders.resource_id
        assert described["IAMDatabaseAuthenticationEnabled"] is True
        with open(emu.ca_bundle) as fh:
            assert fh.read().startswith("-----BEGIN CERTIFICATE-----")

        def arn(ep: object, user: str) -> str:
            return (f"arn:aws:rds-db:eu-west-1:{ep.account_id}:dbuser:"  # type: ignore[attr-defined]
                    f"{ep.resource_id}/{user}")  # type: ignore[attr-defined]

        app = app_keys(emu, "tc-app", [arn(orders, "app_user"), arn(inventory, "app_user")])
        rds = app.client("rds")
        token = rds.generate_db_auth_token(DBHostname=orders.host, Port=orders.port,
                                           DBUsername="app_user")
        with psycopg.connect(host=orders.host, port=orders.port, user="app_user", password=token,
                             dbname=orders.dbname, sslmode="verify-full",
                             sslrootcert=emu.ca_bundle, connect_timeout=10) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("app_user",)
        token = rds.generate_db_auth_token(DBHostname=inventory.host, Port=inventory.port,
                                           DBUsername="app_user")
        conn2 = pymysql.connect(host=inventory.host, port=inventory.port, user="app_user",
                                password=token, ssl={"ca": emu.ca_bundle, "check_hostname": True},
                                connect_timeout=10)
        try:
            with conn2.cursor() as cur:
                cur.execute("SELECT CURRENT_USER()")
                assert cur.fetchone()[0].startswith("app_user@")
        finally:
            conn2.close()

        denied = app_keys(emu, "tc-denied", [arn(orders, "someone_else")])
        token = denied.client("rds").generate_db_auth_token(
            DBHostname=orders.host, Port=orders.port, DBUsername="app_user")
        with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
            psycopg.connect(host=orders.host, port=orders.port, user="app_user", password=token,
                            dbname=orders.dbname, sslmode="verify-full",
                            sslrootcert=emu.ca_bundle, connect_timeout=10).close()
        refused = emu.events(outcome="deny", instance="orders")
        assert [e["reason"] for e in refused] == ["not_authorized"]
        assert refused[0]["principal_arn"].endswith(":user/tc-denied")
    # stop(): SIGTERM, the emulator shut its servers down and exited 0 (then it was removed)
    assert emu.exit_code == 0
    print(f"testcontainers: start → healthy {startup:.1f} s")


def test_bad_configuration_fails_before_any_container(engine: dict[str, str]) -> None:
    emu = RdsIamEmulatorContainer().with_instance("bad--name", "postgres")
    with pytest.raises(ConfigError, match=r"instances\[0\]\.identifier"):
        emu.start()
    with pytest.raises(ContainerStartException):  # no container was created
        emu.get_wrapped_container()


def test_no_engine_is_one_clear_error(tmp_path, monkeypatch):
    """Container trial #14: without an engine, docker-py's "Error while fetching server API
    version" traceback became one error naming DOCKER_HOST and what to start."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(EmulatorStartError, match=r"no Docker-API engine reachable \(DOCKER_HOST="
                       r"unix://.*none\.sock\).*docs/container\.md"):
        RdsIamEmulatorContainer()


def test_missing_image_names_how_to_build_it(engine: dict[str, str]) -> None:
    """Container trial #14: a missing image was docker-py's ImageNotFound; now it says how to
    build it and how to name it."""
    emu = RdsIamEmulatorContainer(image="localhost/rdsiam-emulator:no-such-tag")
    with pytest.raises(EmulatorStartError, match=r"no-such-tag.*scripts/emulator-image build"):
        emu.start()
