"""Shared fixtures for the MySQL endpoint tests: a real local MariaDB, the emulator CA, and a
running ``MysqlEndpoint`` (in a background event loop, so synchronous drivers can connect)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from rdsiam_emulator.auth.authenticator import Authenticator
from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.backends.local_mysql import start_local_mysql
from rdsiam_emulator.backends.spec import BackendSpec
from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.mysql import MysqlEndpoint
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.tls import EmulatorCA

REGION = "us-east-1"
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HOST = "localhost"


class LoopThread:
    """An asyncio loop in a daemon thread; ``run`` executes a coroutine there."""

    def __init__(self, *, uvloop: bool = False) -> None:
        if uvloop:
            import uvloop as uv

            self.loop = uv.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class MyEnv:
    endpoint: MysqlEndpoint
    events: EventLog
    backend: object
    ca: EmulatorCA
    loop: LoopThread

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def ca_file(self) -> str:
        return str(self.ca.bundle_path)

    @property
    def master(self) -> tuple[str, str]:
        return self.backend.master_user, self.backend.master_password  # type: ignore[attr-defined]

    def token(self, user: str, *, port: int | None = None, host: str = HOST,
              secret: str = SECRET) -> str:
        client = boto3.client("rds", region_name=REGION, aws_access_key_id=AKID,
                              aws_secret_access_key=secret)
        return client.generate_db_auth_token(DBHostname=host, Port=port or self.port,
                                             DBUsername=user, Region=REGION)


@pytest.fixture(scope="session")
def mariadb():
    handle = start_local_mysql(BackendSpec(engine="mysql", provider="local"))
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def emulator_ca(tmp_path_factory) -> EmulatorCA:
    return EmulatorCA(Path(tmp_path_factory.mktemp("ca")))


def _make_env(mariadb, emulator_ca, *, iam_enabled: bool = True,
              host: str = HOST, uvloop: bool = False, settings=None,
              backend_port: int | None = None) -> Iterator[MyEnv]:
    loop = LoopThread(uvloop=uvloop)
    events = EventLog()
    cert = emulator_ca.server_certificate(list(dict.fromkeys([host, HOST, "127.0.0.1"])))
    endpoint = MysqlEndpoint(
        # the server's private socket (it has no TCP); backend_port: a dead loopback port
        backend=(BackendAddress("127.0.0.1", backend_port, mariadb.admin_user,
                                mariadb.admin_password) if backend_port is not None
                 else BackendAddress(mariadb.host, mariadb.port, mariadb.admin_user,
                                     mariadb.admin_password, unix_socket=mariadb.unix_socket)),
        authenticator=None,  # type: ignore[arg-type] - set below, once the port is known
        instance_secret=b"s" * 32,
        tls_context=cert.server_context(),
        settings=settings,
        catalog_version=mariadb.catalog_version if backend_port is None else None,
    )
    loop.run(endpoint.start())
    endpoint.authenticator = Authenticator(
        instance_id="mydb", engine="mysql",
        endpoint=Endpoint(host, endpoint.port, REGION, aliases=(HOST, "127.0.0.1"),
                          account_id="123456789012", resource_id="db-ABCDEFGHIJKLMNOP",
                          instance_id="mydb"),
        credentials=StaticCredentials({AKID: (SECRET, None)}), events=events,
        iam_enabled=iam_enabled,
    )
    env = MyEnv(endpoint, events, mariadb, emulator_ca, loop)
    try:
        yield env
    finally:
        loop.run(endpoint.close())
        loop.stop()


@pytest.fixture
def myenv(mariadb, emulator_ca) -> Iterator[MyEnv]:
    yield from _make_env(mariadb, emulator_ca)


RDS_HOST = "mydb.c0abcdefghij.us-east-1.rds.amazonaws.com"


@pytest.fixture
def myenv_rds_name(mariadb, emulator_ca) -> Iterator[MyEnv]:
    """The endpoint under an RDS-style name that resolves to 127.0.0.1 in this process only."""
    from rdsiam_emulator import resolver

    resolver.register(RDS_HOST)
    try:
        yield from _make_env(mariadb, emulator_ca, host=RDS_HOST)
    finally:
        resolver.unregister(RDS_HOST)


@pytest.fixture
def myenv_uvloop(mariadb, emulator_ca) -> Iterator[MyEnv]:
    """The endpoint on a uvloop event loop (its transports are not asyncio's classes)."""
    yield from _make_env(mariadb, emulator_ca, uvloop=True)


@pytest.fixture
def myenv_no_iam(mariadb, emulator_ca) -> Iterator[MyEnv]:
    yield from _make_env(mariadb, emulator_ca, iam_enabled=False)


def unique(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"
