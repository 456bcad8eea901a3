"""Servers in containers through testcontainers and any Docker-API engine (Docker, Podman's API).

What the provider assumes about an image — the official ``postgres`` / ``mysql`` / ``mariadb``
contract, which the stand-in images in docker/ also implement (docs/backends.md):
  * postgres: ``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB``; port 5432; password (SCRAM)
  auth
    for TCP from anywhere; "database system is ready to accept connections" in the log; TCP open
    only once the final server runs; extra ``-c key=value`` arguments after ``postgres``.
  * mysql/mariadb: ``MYSQL_ROOT_PASSWORD`` and ``MYSQL_DATABASE`` (MariaDB accepts the MYSQL_ names
    too); root@'%' exists; port 3306; "ready for connections" in the log; TCP only once the final
    server runs; arguments starting with ``-`` are passed to the server.
Readiness = the log line, then a successful login with the admin password (robust on both).

Exposure: the server port is published on 127.0.0.1 only, and that port is how the endpoint
reaches the server, so it cannot be closed: any local process can log in there with a password it
knows (the master's, by design). The admin password is random per container (not reused across
containers unless ``reuse``), held in memory and in the container's environment, which the engine's
users can read (``docker inspect``).

No orphans: each container is removed by ``stop()`` (also at exit/SIGTERM via lifecycle). With
``reuse`` the container is labelled, left running, and found again by its label next time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import socket
import time
from typing import Any

from rdsiam_emulator.engines import POSTGRES

from .errors import ENGINE_HOWTO, BackendError, BackendUnavailable
from .handle import BackendHandle
from .mysql_handle import MysqlHandle
from .postgres_handle import ADMIN_DB, PostgresHandle
from .spec import ADMIN_USER, BackendSpec

READY_TIMEOUT = 180.0
LABEL = "io.rdsiam-emulator"
LABEL_REUSE_KEY = "io.rdsiam-emulator.reuse-key"
PG_FAST_ARGS = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
MY_FAST_ARGS = ["--innodb-flush-log-at-trx-commit=0", "--skip-name-resolve"]


NEEDS_EXTRA = ("the container provider needs testcontainers, which is not installed: "
               "pip install 'rdsiam-emulator[containers]'")


def _docker_client() -> Any:
    # testcontainers first: the docker SDK alone may be installed by something else (it is
    # testcontainers' dependency, not ours), and then a missing extra looked like a missing engine
    if importlib.util.find_spec("testcontainers") is None:
        raise BackendUnavailable(NEEDS_EXTRA)
    try:
        import docker
    except ImportError as exc:
        raise BackendUnavailable(NEEDS_EXTRA) from exc
    client = None
    try:
        _probe_unix_socket()
        client = docker.from_env(timeout=5)  # type: ignore[attr-defined]
        client.ping()
    except Exception as exc:
        if client is not None:
            client.close()
        raise BackendUnavailable(
            f"no Docker-API engine reachable ({_where()}): {exc}. To get one: {ENGINE_HOWTO}"
        ) from exc
    return client


def _probe_unix_socket() -> None:
    """Connect to a unix-socket engine once ourselves: docker-py leaves its socket open when the
    connect fails (an fd per failed probe). Raises OSError when nothing listens there."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(host.removeprefix("unix://"))


def _where() -> str:
    return (
        f"DOCKER_HOST={os.environ['DOCKER_HOST']}"
        if os.environ.get("DOCKER_HOST")
        else "default socket"
    )


def engine_available() -> bool:
    """Is a Docker-API engine reachable right now (a cheap ping)?"""
    try:
        _docker_client().close()
    except BackendUnavailable:
        return False
    return True


def reuse_key(spec: BackendSpec, image: str) -> str:
    """The label value that identifies a reusable container: 20 hex digits of a SHA-256 over the
    engine, ``image``, database name and master user (equal specs share a container).
    """
    raw = "\x00".join([spec.engine, image, spec.dbname, spec.master_user, "v1"])
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def start_container(spec: BackendSpec) -> BackendHandle:
    """Run ``spec``'s server in a Docker-API container published on 127.0.0.1 (a random host port)
    and return its bootstrapped handle; with ``spec.reuse`` a matching labelled container is reused
    and ``stop`` leaves it running.

    Raises ``BackendUnavailable`` when no engine is reachable or the ``docker`` extra is missing;
    ``BackendError`` when the container does not start or its server does not become ready.
    """
    client = _docker_client()
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError as exc:
        client.close()
        raise BackendUnavailable(NEEDS_EXTRA) from exc
    image = spec.resolved_image()
    port_in = spec.engine_info.default_port
    key = reuse_key(spec, image)
    found = _find_reusable(client, key) if spec.reuse else None
    if found is not None:
        client.close()
        container_id, admin_password, host_port = found
        tc_container: Any = None
    else:
        admin_password = secrets.token_urlsafe(24)
        tc_container = DockerContainer(image)
        if spec.engine_info is POSTGRES:
            tc_container.with_envs(
                POSTGRES_USER=ADMIN_USER, POSTGRES_PASSWORD=admin_password, POSTGRES_DB=ADMIN_DB
            ).with_command(["postgres", *PG_FAST_ARGS])
        else:
            tc_container.with_envs(MYSQL_ROOT_PASSWORD=admin_password, MYSQL_DATABASE=spec.dbname)
            tc_container.with_command(MY_FAST_ARGS)
        # publish on loopback only: ("127.0.0.1",) = host IP with a random host port
        tc_container.ports[f"{port_in}/tcp"] = ("127.0.0.1",)
        labels = {
            LABEL: "1",
            f"{LABEL}.reuse": "true" if spec.reuse else "false",
            f"{LABEL}.owner-pid": str(os.getpid()),
        }
        if spec.reuse:
            labels[LABEL_REUSE_KEY] = key
        tc_container.with_kwargs(labels=labels)
        client.close()
        try:
            tc_container.start()
            container_id = tc_container.get_container_id()
            host_port = int(tc_container.get_exposed_port(port_in))
            _wait_log(tc_container, spec.engine_info.container_ready_line)
        except BaseException as exc:
            _remove(tc_container)
            if isinstance(exc, Exception) and not isinstance(exc, BackendError):
                raise BackendError(f"container {image} failed to start: {exc}") from exc
            raise

    def stopper() -> None:
        if tc_container is not None and not spec.reuse:
            _remove(tc_container)

    common: dict[str, Any] = {
        "flavour": spec.engine_info.flavour,
        "version": "?",
        "host": "127.0.0.1",
        "port": host_port,
        "admin_user": ADMIN_USER,
        "admin_password": admin_password,
        "master_user": spec.master_user,
        "master_password": spec.master_password or secrets.token_urlsafe(18),
        "dbname": spec.dbname,
        "provider": f"docker:{image}:{container_id[:12]}",
        "stopper": stopper,
    }
    boot: dict[str, Any]
    handle: BackendHandle
    if spec.engine_info is POSTGRES:
        boot = {
            "host": "127.0.0.1",
            "port": host_port,
            "user": ADMIN_USER,
            "password": admin_password,
            "dbname": ADMIN_DB,
        }
        handle = PostgresHandle(bootstrap_connect=boot, **common)
    else:
        boot = {"host": "127.0.0.1", "port": host_port, "user": "root", "password": admin_password}
        handle = MysqlHandle(bootstrap_connect=boot, **common)
    try:
        _retry_bootstrap(handle)
    except BaseException:
        handle.stop()
        if tc_container is not None and spec.reuse:
            _remove(tc_container)  # a reusable container that never became usable is not kept
        raise
    return handle


def _retry_bootstrap(handle: BackendHandle) -> None:
    """The port forwarder accepts before the server does; retry the first login until it works."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            handle.bootstrap()
            return
        except BackendError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _wait_log(tc_container: Any, line: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    wrapped = tc_container.get_wrapped_container()
    while time.monotonic() < deadline:
        logs = wrapped.logs().decode(errors="replace")
        if line in logs:
            return
        wrapped.reload()
        if wrapped.status in ("exited", "dead"):
            raise BackendError(f"container exited before it was ready: {logs[-2000:]}")
        time.sleep(0.05)
    raise BackendError(f"container not ready after {READY_TIMEOUT:.0f}s (no {line!r} in its log)")


def _find_reusable(client: Any, key: str) -> tuple[str, str, int] | None:
    for container in client.containers.list(filters={"label": f"{LABEL_REUSE_KEY}={key}"}):
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"] if "=" in item)
        password = env.get("POSTGRES_PASSWORD") or env.get("MYSQL_ROOT_PASSWORD")
        ports = container.attrs["NetworkSettings"]["Ports"] or {}
        for bindings in ports.values():
            if bindings and password:
                return str(container.id), password, int(bindings[0]["HostPort"])
    return None


def _remove(tc_container: Any) -> None:
    try:
        tc_container.stop(force=True, delete_volume=True)
    except Exception as exc:
        raise BackendError(f"could not remove container: {exc}") from exc
