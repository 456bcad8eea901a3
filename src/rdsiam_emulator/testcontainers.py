"""The emulator's container image from Python tests, without the pytest plugin (testcontainers).

``RdsIamEmulatorContainer`` starts the image (docker/Dockerfile; docs/container.md), waits until
``/_rdsiam/health`` answers 200, and gives what an app needs: the AWS API URL (port 4566), the CA
bundle and, per instance, a host and port to connect to and to sign tokens for::

    with RdsIamEmulatorContainer().with_instance("orders", "postgres", ["app_user"]) as emu:
        orders = emu.endpoint("orders")
        rds = emu.aws_client("rds")                 # IAM/STS/RDS of the emulator
        ...
        token = app_session.client("rds").generate_db_auth_token(
            DBHostname=orders.host, Port=orders.port, DBUsername="app_user")
        psycopg.connect(host=orders.host, port=orders.port, user="app_user", password=token,
                        dbname=orders.dbname, sslmode="verify-full", sslrootcert=emu.ca_bundle)

Why one host port per instance, the same inside and outside: an RDS token binds host *and* port,
so a port remapped by the engine would break the binding. Each instance listens in the container
on a port that was free on this host when ``start()`` ran and is published 1:1 on 127.0.0.1; the
host name the engine is reached by (``localhost`` for a local engine) is an extra name of each
endpoint (certificate SAN and token binding), declared as ``aliases`` like any other CNAME.

Needs the ``containers`` extra (``pip install 'rdsiam-emulator[containers]'``) and a Docker-API
engine (Docker, or Podman's API service: docs/backends.md).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, cast

from rdsiam_emulator.server import config as server_config

try:
    from testcontainers.core.container import DockerContainer

    from docker import errors as docker_errors
except ImportError as exc:  # pragma: no cover - depends on the extra being installed
    raise ImportError(
        "rdsiam_emulator.testcontainers needs testcontainers: "
        "pip install 'rdsiam-emulator[containers]'"
    ) from exc

IMAGE_ENV = "RDSIAM_EMULATOR_IMAGE"
DEFAULT_IMAGE = "rdsiam-emulator:latest"
API_PORT = 4566
CONFIG_PATH = "/etc/rdsiam/testcontainers.toml"
STARTUP_TIMEOUT = 180.0
"""Seconds from ``start()`` to health 200 (first start of a fresh container: both servers run
initdb / mariadb-install-db, about 10-20 s on 2 busy cores)."""


class EmulatorStartError(RuntimeError):
    """The container exited or did not become healthy in time; the message ends with its log."""


@dataclass(frozen=True)
class InstanceEndpoint:
    """One emulated DB instance as seen from the machine running the tests.

    ``host``/``port``: where to connect and what to sign tokens for (``DBHostname``/``Port``).
    ``address``: the RDS-style ``Endpoint.Address`` (resolves only inside the container's
    networks or with /etc/hosts lines). ``engine``: the RDS engine (``postgres``, ``mysql``,
    ``mariadb``).
    """

    identifier: str
    engine: str
    host: str
    port: int
    address: str
    resource_id: str
    dbname: str
    region: str
    account_id: str


@dataclass(frozen=True)
class _Instance:
    identifier: str
    engine: str
    iam_db_users: tuple[str, ...]
    dbname: str


class RdsIamEmulatorContainer(DockerContainer):
    """The emulator image under testcontainers; use as a context manager or start()/stop().

    ``image``: None means ``$RDSIAM_EMULATOR_IMAGE`` or ``rdsiam-emulator:latest``. With no
    ``with_instance`` call, one ``postgres`` instance ``orders`` and one ``mysql`` instance
    ``inventory`` with the DB user ``app_user`` are configured. ``iam_toml`` is appended to the
    generated configuration (``[[iam.users]]`` seeds and the like; docs/server.md).
    Raises ``server.config.ConfigError`` from ``start()`` for a bad configuration (nothing
    starts) and ``EmulatorStartError`` when the container does not become healthy.
    """

    def __init__(self, image: str | None = None, *, region: str = "us-east-1",
                 account_id: str = "123456789012", dns_label: str = "c0testcontainer",
                 iam_toml: str = "", startup_timeout: float = STARTUP_TIMEOUT,
                 **kwargs: Any) -> None:
        try:  # docker-py asks the engine for its version right here
            super().__init__(image or os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE, **kwargs)
        except docker_errors.DockerException as exc:
            raise EmulatorStartError(
                "no Docker-API engine reachable (DOCKER_HOST="
                f"{os.environ.get('DOCKER_HOST', 'unset')}): {exc}. Start Docker, or Podman's API "
                "service and export what it prints (docs/container.md)") from None
        self.region = region
        self.account_id = account_id
        self.dns_label = dns_label
        self.iam_toml = iam_toml
        self.startup_timeout = startup_timeout
        self._instances: list[_Instance] = []
        self._ports: dict[str, int] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._api_url: str | None = None
        self._endpoints: dict[str, InstanceEndpoint] = {}
        self.exit_code: int | None = None
        """The emulator's exit status after ``stop()`` (0: it shut down cleanly on SIGTERM)."""

    def with_instance(self, identifier: str, engine: str = "postgres",
                      iam_db_users: list[str] | tuple[str, ...] = (),
                      dbname: str = "app") -> Self:
        """Add an instance (engine ``postgres`` or ``mysql``/``mariadb``) before ``start()``."""
        self._instances.append(_Instance(identifier, engine, tuple(iam_db_users), dbname))
        return self

    # -- configuration ------------------------------------------------------------------------
    def config_toml(self, connect_host: str) -> str:
        """The TOML the container serves; ports must have been chosen (``start()`` does)."""
        lines = ["[server]", 'host = "0.0.0.0"', f"port = {API_PORT}",
                 f"region = {json.dumps(self.region)}",
                 f"account_id = {json.dumps(self.account_id)}",
                 f"dns_label = {json.dumps(self.dns_label)}", ""]
        for inst in self._instances:
            lines += ["[[instances]]", f"identifier = {json.dumps(inst.identifier)}",
                      f"engine = {json.dumps(inst.engine)}",
                      f'listen = "0.0.0.0:{self._ports[inst.identifier]}"',
                      f"iam_db_users = {json.dumps(list(inst.iam_db_users))}",
                      f"aliases = {json.dumps([connect_host])}",
                      f"dbname = {json.dumps(inst.dbname)}", ""]
        return "\n".join(lines) + "\n" + self.iam_toml

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the container and wait until ``/_rdsiam/health`` answers 200.

        Raises ``EmulatorStartError`` when it is not healthy within ``startup_timeout`` seconds.

        With no ``with_instance`` call, two instances are configured: ``orders`` (postgres) and
        ``inventory`` (mysql), each with the IAM DB user ``app_user``.
        """
        if not self._instances:
            self.with_instance("orders", "postgres", ["app_user"])
            self.with_instance("inventory", "mysql", ["app_user"])
        # the engine's host (ports are published there); known before the container exists
        connect_host = _alias_for(self.get_docker_client().host())
        self._ports = {inst.identifier: _free_port() for inst in self._instances}
        text = self.config_toml(connect_host)
        # validated here with the server's own parser: a bad value fails before any container
        import tomllib

        server_config.parse(tomllib.loads(text))
        self._tmp = tempfile.TemporaryDirectory(prefix="rdsiam-tc-")
        path = Path(self._tmp.name) / "emulator.toml"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)  # the container's user (uid 10001) must read it
        Path(self._tmp.name).chmod(0o755)
        self.with_volume_mapping(str(path), CONFIG_PATH, "ro")
        self.with_env("RDSIAM_CONFIG", CONFIG_PATH)
        # docker-py's forms: (ip,) = a random port on ip; (ip, port) = that port (untyped there)
        ports = cast(dict[str, Any], self.ports)
        ports[f"{API_PORT}/tcp"] = ("127.0.0.1",)  # loopback only
        for port in self._ports.values():
            ports[f"{port}/tcp"] = ("127.0.0.1", port)
        try:
            super().start()
        except docker_errors.ImageNotFound:
            self._cleanup_tmp()
            raise EmulatorStartError(
                f"image {self.image!r} not found: build it (scripts/emulator-image build tags "
                f"localhost/rdsiam-emulator:dev) and pass image= or set {IMAGE_ENV}") from None
        try:
            self._wait_healthy()
            self._endpoints = self._read_endpoints(connect_host)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        """SIGTERM first (the emulator stops its servers and exits 0; ``exit_code``), then
        remove the container."""
        container = self._container
        if container is not None:
            try:
                container.stop(timeout=15)
                container.reload()
                self.exit_code = int(container.attrs["State"]["ExitCode"])
            except Exception:  # noqa: S110 - already gone; removal below reports real trouble
                pass
        super().stop(force=force, delete_volume=delete_volume)
        self._cleanup_tmp()

    def _cleanup_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.api_url}/_rdsiam/health"
        last = "no answer yet"
        while time.monotonic() < deadline:
            wrapped = self.get_wrapped_container()
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                raise EmulatorStartError(f"the emulator container exited "
                                         f"({wrapped.attrs['State'].get('ExitCode')}):\n"
                                         f"{self._log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=3):  # noqa: S310 - our http URL
                    return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}"
                exc.close()
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise EmulatorStartError(f"{url} not healthy in {self.startup_timeout:.0f} s "
                                 f"(last: {last}):\n{self._log_tail()}")

    def _log_tail(self) -> str:
        out, err = self.get_logs()
        text = (out + err).decode(errors="replace")
        return "\n".join(text.splitlines()[-30:])

    def _read_endpoints(self, connect_host: str) -> dict[str, InstanceEndpoint]:
        with urllib.request.urlopen(f"{self.api_url}/_rdsiam/instances",  # noqa: S310
                                    timeout=5) as resp:
            data = json.load(resp)
        return {
            item["id"]: InstanceEndpoint(
                identifier=item["id"], engine=item["engine"], host=connect_host,
                port=int(item["port"]), address=item["host"], resource_id=item["resource_id"],
                dbname=item["dbname"], region=item["region"], account_id=item["account_id"])
            for item in data["instances"]
        }

    # -- what tests use -----------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """``http://host:port`` of the AWS APIs and ``/_rdsiam/`` (set AWS_ENDPOINT_URL to it)."""
        if self._api_url is None:
            host = self.get_docker_client().host()
            self._api_url = f"http://{host}:{self.get_exposed_port(API_PORT)}"
        return self._api_url

    @property
    def ca_bundle(self) -> str:
        """Path of a file with the CA bundle (PEM) every endpoint certificate chains to."""
        if self._tmp is None:
            raise RuntimeError("the container is not started")
        path = Path(self._tmp.name) / "rds-ca.pem"
        if not path.exists():
            with urllib.request.urlopen(f"{self.api_url}/_rdsiam/ca.pem",  # noqa: S310
                                        timeout=5) as resp:
                path.write_bytes(resp.read())
        return str(path)

    def endpoint(self, identifier: str) -> InstanceEndpoint:
        """The instance's endpoint. Raises KeyError for an unknown identifier."""
        return self._endpoints[identifier]

    def endpoints(self) -> dict[str, InstanceEndpoint]:
        """Every instance's endpoint, by identifier (a copy)."""
        return dict(self._endpoints)

    def events(self, **filters: str) -> list[dict[str, Any]]:
        """``/_rdsiam/events`` (filters: instance, db_user, outcome, since, limit)."""
        from urllib.parse import urlencode

        query = f"?{urlencode(filters)}" if filters else ""
        with urllib.request.urlopen(f"{self.api_url}/_rdsiam/events{query}",  # noqa: S310
                                    timeout=5) as resp:
            events: list[dict[str, Any]] = json.load(resp)["events"]
        return events

    def aws_client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for the emulator's IAM/STS/RDS (admin calls accept any key)."""
        import boto3

        kwargs.setdefault("region_name", self.region)
        kwargs.setdefault("aws_access_key_id", "AKIAEMULATORADMIN000")
        kwargs.setdefault("aws_secret_access_key", "emulator-admin-secret")
        return boto3.client(service, endpoint_url=self.api_url, **kwargs)


def _alias_for(host: str) -> str:
    """The name clients use for the engine's host; a loopback IP becomes ``localhost`` (an
    endpoint answers to names)."""
    return "localhost" if host in ("127.0.0.1", "::1", "0.0.0.0") else host  # noqa: S104


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
