"""Shared by the PostgreSQL endpoint tests: a real PostgreSQL 15 (backends package), the emulator
CA and a running endpoint. Fixtures are re-exported by conftest.py; tests import helpers as
``pg_env`` (a unique module name, unlike ``conftest``).

The endpoint runs on its own event loop in a background thread so blocking drivers (psycopg,
psycopg2, psql) can be used from the test thread exactly as applications use them.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import psycopg
import pytest

from rdsiam_emulator.auth.authenticator import Authenticator
from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.backends import ADMIN_USER, BackendSpec, PostgresHandle, start_local
from rdsiam_emulator.clock import SystemClock
from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.event_loops import new_event_loop
from rdsiam_emulator.endpoint.postgres import PostgresEndpoint, PostgresEndpointSettings
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.secrets import new_instance_secret
from rdsiam_emulator.tls import EmulatorCA, endpoint_names

RDS_HOST = "mydb.c9akciq32example.us-east-1.rds.amazonaws.com"
REGION = "us-east-1"
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
T = TypeVar("T")


@dataclass
class PgServer:
    """The backends package's local PostgreSQL 15 (RDS-like bootstrap), plus a SQL helper."""

    handle: PostgresHandle

    @property
    def host(self) -> str:
        return self.handle.host

    @property
    def port(self) -> int:
        return self.handle.port

    @property
    def admin_password(self) -> str:
        return self.handle.admin_password

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        return (f"host={self.host} port={self.port} user={ADMIN_USER} "
                f"password={self.admin_password} dbname={dbname} sslmode=disable")

    def sql(self, *statements: str, dbname: str = "postgres") -> list[Any]:
        out: list[Any] = []
        with psycopg.connect(self.admin_conninfo(dbname), autocommit=True) as conn:
            for stmt in statements:
                cur = conn.execute(stmt)
                out.append(cur.fetchall() if cur.description else None)
        return out


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    handle = start_local(BackendSpec(engine="postgres", provider="local", version="15",
                                     dbname="app"))
    assert isinstance(handle, PostgresHandle)
    try:
        yield PgServer(handle)
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> EmulatorCA:
    return EmulatorCA(tmp_path_factory.mktemp("ca"))


class LoopThread:
    """An event loop in a daemon thread; ``run`` executes a coroutine there and waits for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        # the product's asyncio loop (event_loops: its clock is not the app's time.monotonic)
        self.loop = loop if loop is not None else new_event_loop("asyncio")
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class RunningEndpoint:
    endpoint: PostgresEndpoint
    authenticator: Authenticator
    events: EventLog
    ca: EmulatorCA
    server: PgServer
    loop: LoopThread
    port: int
    host: str = RDS_HOST

    def token(self, user: str, *, port: int | None = None, host: str | None = None) -> str:
        client = boto3.client("rds", region_name=REGION, aws_access_key_id=AKID,
                              aws_secret_access_key=SECRET)
        return str(client.generate_db_auth_token(
            DBHostname=host or RDS_HOST, Port=port or self.port, DBUsername=user))

    def conninfo(self, user: str, password: str, *, dbname: str = "app",
                 sslmode: str = "verify-full", **extra: str) -> str:
        parts = {"host": RDS_HOST, "hostaddr": "127.0.0.1", "port": str(self.port),
                 "user": user, "password": password, "dbname": dbname, "sslmode": sslmode,
                 "sslrootcert": str(self.ca.bundle_path), **extra}
        return " ".join(f"{k}='{v}'" for k, v in parts.items())

    def iam_user(self, prefix: str = "iam") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.server.sql(f"CREATE ROLE {name} LOGIN", f"GRANT rds_iam TO {name}",
                        f"GRANT ALL ON DATABASE app TO {name}")
        self.server.sql(f"GRANT ALL ON SCHEMA public TO {name}", dbname="app")
        return name

    def wait_until_sleeping(self, user: str, timeout: float = 10.0) -> None:
        """Until ``user``'s ``select pg_sleep(...)`` runs on the server: a cancel sent before
        the query starts is a no-op, so cancel tests wait for this instead of a fixed delay."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.server.sql(
                f"select count(*) from pg_stat_activity where usename = '{user}' "
                "and query like 'select pg_sleep%' and state = 'active'")
            if rows[0][0][0]:
                return
            time.sleep(0.05)
        raise AssertionError(f"{user}'s pg_sleep did not start running within {timeout} s")

    def password_user(self, prefix: str = "pw") -> tuple[str, str]:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        password = uuid.uuid4().hex
        self.server.sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        return name, password


def make_endpoint(server: PgServer, ca: EmulatorCA, loop: LoopThread,
                  settings: PostgresEndpointSettings | None = None,
                  backend_port: int | None = None) -> RunningEndpoint:
    events = EventLog()
    cert = ca.server_certificate(endpoint_names([RDS_HOST]))
    target = BackendAddress.from_handle(server.handle)
    if backend_port is not None:
        # a dead loopback port (the server itself has no TCP)
        target = BackendAddress("127.0.0.1", backend_port, ADMIN_USER, server.admin_password)

    async def start() -> tuple[PostgresEndpoint, Authenticator]:
        placeholder: Any = None
        ep = PostgresEndpoint(backend=target, authenticator=placeholder,
                              instance_secret=new_instance_secret(),
                              tls_context=cert.server_context(), settings=settings)
        await ep.start()
        auth = Authenticator(
            instance_id="mydb", engine="postgres",
            endpoint=Endpoint(RDS_HOST, ep.port, REGION, aliases=("localhost", "127.0.0.1")),
            credentials=StaticCredentials({AKID: (SECRET, None)}), events=events,
            clock=SystemClock())
        ep.authenticator = auth
        return ep, auth

    ep, auth = loop.run(start())
    return RunningEndpoint(ep, auth, events, ca, server, loop, ep.port)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def endpoint(pg_server: PgServer, ca: EmulatorCA,
             loop_thread: LoopThread) -> Iterator[RunningEndpoint]:
    running = make_endpoint(pg_server, ca, loop_thread)
    yield running
    close_and_check(running)


def close_and_check(running: RunningEndpoint) -> None:
    """Close the endpoint; every serving task and connection must have ended first (no leaks):
    fails if any is still there after a bounded wait."""
    try:
        tasks, conns = running.loop.run(_settle(running.endpoint))
    finally:
        running.loop.run(running.endpoint.close())
    assert (tasks, conns) == (0, 0), f"{tasks} tasks and {conns} connections still open"


async def _settle(ep: PostgresEndpoint, timeout: float = 5.0) -> tuple[int, int]:
    """Wait until no serving task or connection is left; returns what is left at the end."""
    deadline = time.monotonic() + timeout
    while (ep.active_tasks or ep.active_connections) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return ep.active_tasks, ep.active_connections

