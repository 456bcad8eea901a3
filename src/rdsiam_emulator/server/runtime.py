"""What ``serve`` runs: real backends and endpoints through ``instances.Emulator``, their moto
records, and the lines it prints.

One ``Runtime`` per process. Start-up overlaps the slow parts: ``begin`` boots the configured
backends in threads while ``open`` imports moto and builds the ``Emulator``; ``start_configured``
then puts endpoints in front of them. Instances also come from ``create_db_instance``
(``create_from_api``, in a thread; moto shows ``creating`` until the endpoint is up). Every
method is thread-safe: the HTTP server calls in from its request threads.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rdsiam_emulator.backends import BackendHandle, BackendSpec, start_backend
from rdsiam_emulator.events import AuthEvent, EventLog
from rdsiam_emulator.server.config import ENGINE_PORTS, WILDCARDS, Config, InstanceSpec
from rdsiam_emulator.versions import short_version

if TYPE_CHECKING:  # importing instances imports moto (seconds): done in Runtime.open
    from rdsiam_emulator.instances import EmulatedInstance, Emulator
    from rdsiam_emulator.proxies import EmulatedProxy
    from rdsiam_emulator.server.cluster_runtime import ClusterSlot

log = logging.getLogger(__name__)

STATES = ("creating", "available", "failed", "deleting")
"""The values of ``Slot.state`` (RDS's status words), as ``/_rdsiam/instances`` reports them."""


class StartError(RuntimeError):
    """A configured instance could not be started (the message names it and says why)."""


@dataclass
class Slot:
    """One instance the server knows about, whatever its state."""

    spec: InstanceSpec
    region: str
    state: str = "creating"
    instance: EmulatedInstance | None = None
    backend: BackendHandle | None = None
    error: str | None = None
    from_api: bool = False
    boot_seconds: float | None = None
    """How long its backend took to start (for the progress line)."""
    booting: Future[BackendHandle] | None = None
    deleted: bool = False
    """Set by ``delete``: a start still in progress stops what it made instead of going on."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards ``deleted`` against the starting thread's ``backend``/``instance``."""


class Runtime:
    """Backends, endpoints and their moto records for one ``serve`` process."""

    def __init__(self, config: Config, state_dir: Path, out: TextIO,
                 stop: threading.Event | None = None) -> None:
        self.config = config
        self.stop = stop if stop is not None else threading.Event()
        """Set by a signal: instances not yet started are not started."""
        self.out = out
        self.state_dir = state_dir
        self._out_lock = threading.Lock()
        self.events = EventLog()
        self._emulator: Emulator | None = None
        from rdsiam_emulator.instances import new_dns_label  # no moto: cheap here

        self.dns_label = config.server.dns_label or new_dns_label()
        # configured instances are known (and "creating") from the start: health is 503 until
        # they all run, never 200 for a moment before they are registered
        self._slots: dict[str, Slot] = {
            spec.identifier: Slot(spec=spec, region=config.server.region)
            for spec in config.instances}
        self._lock = threading.Lock()
        self._closed = False
        self.started = False
        """Set by ``serve`` once start-up (seed, configured instances) is complete."""
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(config.instances) + len(config.clusters)),
            thread_name_prefix="rdsiam-backend")
        from rdsiam_emulator.server.cluster_runtime import ClusterRuntime

        self.clusters = ClusterRuntime(self)
        """The Aurora clusters (``[[clusters]]`` and API-made)."""
        self.events.subscribe(self._print_event)

    @property
    def emulator(self) -> Emulator:
        """The endpoints' host; raises ``RuntimeError`` before ``open``."""
        if self._emulator is None:
            raise RuntimeError("the server is still starting")
        return self._emulator

    def begin(self) -> None:
        """Start booting every configured backend in the background (no endpoints yet)."""
        for slot in self.slots():
            if not slot.from_api and slot.booting is None:
                slot.booting = self._pool.submit(self._boot, slot)
        self.clusters.begin(self._pool)

    def open(self) -> None:
        """Build the ``Emulator`` (imports moto: the slow part of start-up)."""
        from rdsiam_emulator.instances import Emulator

        self._emulator = Emulator(self.state_dir, events=self.events)
        self._start_proxies_on_register()

    def _start_proxies_on_register(self) -> None:
        """``register_db_proxy_targets`` (API or ``[[proxies]]``) starts a real proxy."""
        from rdsiam_emulator.proxies import auto_start

        self._proxy_starter = auto_start(self.emulator, placement=self._proxy_listen,
                                         on_start=self._proxy_started)
        self._proxy_starter.__enter__()

    def _proxy_listen(self, name: str, engine: str) -> tuple[str, int]:
        """Where a proxy listens: its ``[[proxies]]`` ``listen``, else (API-made) as an
        API-made instance of its engine."""
        for spec in self.config.proxies:
            if spec.name == name:
                return spec.listen_host, spec.listen_port
        return self._create_listen(engine)

    def _proxy_started(self, proxy: EmulatedProxy) -> None:
        self.say(f"RDS Proxy '{proxy.name}' for '{proxy.target_id}': endpoint "
                 f"{proxy.host}:{proxy.port} (listening on {proxy.config.listen_host}:"
                 f"{proxy.port})")

    # -- output -----------------------------------------------------------------------------------
    def say(self, line: str) -> None:
        """One progress line on stdout (flushed: compose and tests read it live)."""
        with self._out_lock:
            self.out.write(line + "\n")
            self.out.flush()

    def _print_event(self, event: AuthEvent) -> None:
        # the event holds no secrets (see events.py); the RDS line is what RDS's log would show
        self.say(json.dumps({"auth_event": event.to_dict()}, sort_keys=True))
        rds_line = event.rds_log_line()
        if rds_line is not None:
            self.say(f"{event.time.isoformat()} iam-db-auth-error {event.instance_id}: {rds_line}")

    # -- reading ----------------------------------------------------------------------------------
    def slots(self) -> list[Slot]:
        """A snapshot of every instance slot (configured and API-created)."""
        with self._lock:
            return list(self._slots.values())

    def get(self, identifier: str) -> Slot | None:
        """The slot of instance ``identifier``, or None."""
        with self._lock:
            return self._slots.get(identifier)

    def ready(self) -> bool:
        """Every known backend and endpoint is up (and there is nothing half-made)."""
        return (self.started and all(slot.state == "available" for slot in self.slots())
                and self.clusters.ready())

    def host_name(self, identifier: str, region: str) -> str:
        """The RDS-style endpoint name ``<id>.<dns label>.<region>.rds.amazonaws.com``."""
        return f"{identifier}.{self.dns_label}.{region}.rds.amazonaws.com"

    def hosts_lines(self, slots: list[Slot] | None = None) -> list[str]:
        """``/etc/hosts`` lines that make the RDS-style names (and name aliases) resolve."""
        lines = []
        for slot in slots if slots is not None else self.slots():
            if slot.instance is None:
                continue
            names = [slot.instance.host, *(a for a in slot.spec.aliases if not _is_ip(a))]
            lines.append(f"{connect_address(slot.spec.listen_host)} {' '.join(names)}")
        if slots is None and self._emulator is not None:
            lines.extend(f"{connect_address(p.config.listen_host)} {p.host}"
                         for p in self._emulator.proxies)
        if slots is None:
            lines.extend(self.clusters.hosts_lines())
        return lines

    # -- starting ---------------------------------------------------------------------------------
    def start_configured(self) -> None:
        """Put endpoints in front of the configured backends (call ``open`` first); raises
        ``StartError`` for the first that failed (``close`` stops whatever did start)."""
        self.begin()
        with self._lock:
            slots = [s for s in self._slots.values() if not s.from_api]
        clusters = [c for c in self.clusters.slots() if not c.from_api]
        if not slots and not clusters:
            return
        with ThreadPoolExecutor(max_workers=len(slots) + len(clusters),
                                thread_name_prefix="rdsiam-start") as pool:
            results = list(pool.map(self._start_slot_catching, slots))
            cluster_results = list(pool.map(self._start_cluster_catching, clusters))
        for slot, exc in zip(slots, results, strict=True):
            if exc is not None:
                raise StartError(f"instance '{slot.spec.identifier}': {slot.error}") from exc
        for cslot, exc in zip(clusters, cluster_results, strict=True):
            if exc is not None:
                raise StartError(f"cluster '{cslot.spec.name}': {cslot.error}") from exc

    def _start_cluster_catching(self, slot: ClusterSlot) -> BaseException | None:
        try:
            self.clusters.start_configured_slot(slot)
        except BaseException as exc:  # reported by the caller; keep starting the others
            slot.state, slot.error = "failed", one_line(exc)
            return exc
        return None

    def _start_slot_catching(self, slot: Slot) -> BaseException | None:
        try:
            self._start_slot(slot, register=True)
        except BaseException as exc:  # reported by the caller; keep starting the others
            slot.state, slot.error = "failed", one_line(exc)
            return exc
        return None

    @staticmethod
    def _boot(slot: Slot) -> BackendHandle:
        spec, began = slot.spec, time.perf_counter()
        handle = start_backend(BackendSpec(
            engine=spec.engine, provider=spec.backend, version=spec.version, dbname=spec.dbname,
            master_username=spec.master_username, master_password=spec.master_password,
            external_admin_url=spec.url), audience="cli")
        slot.boot_seconds = time.perf_counter() - began
        return handle

    def _start_slot(self, slot: Slot, *, register: bool, resource_id: str | None = None) -> None:
        from rdsiam_emulator.instances import InstanceConfig

        spec = slot.spec
        backend = slot.booting.result() if slot.booting is not None else self._boot(slot)
        with slot.lock:
            slot.backend = backend
            deleted = slot.deleted
        if deleted:  # delete_db_instance while creating: nothing of it may stay running
            backend.stop()
            raise StartError("deleted while it was being created")
        if self._closed:  # close() may have passed this slot already: stop what we started
            backend.stop()
            raise RuntimeError("the server is shutting down")
        if self.stop.is_set():  # close() stops slot.backend
            raise StartError("the server is shutting down")
        instance = self.emulator.start_instance(InstanceConfig(
            instance_id=spec.identifier, engine=spec.engine, region=slot.region,
            account_id=self.config.server.account_id, iam_enabled=spec.iam_enabled,
            dns_label=self.dns_label, listen_host=spec.listen_host,
            listen_port=spec.listen_port, aliases=spec.aliases, resource_id=resource_id,
            throttling=self.config.server.throttling,
        ), backend)
        with slot.lock:
            slot.instance = instance
            deleted = slot.deleted
        if deleted:
            _stop_slot(slot)
            raise StartError("deleted while it was being created")
        if register:
            instance.register_in_moto().engine_version = short_version(backend.version)
        for user in spec.iam_db_users:
            create_iam_db_user(instance, user)
        if self.stop.is_set():  # no "ready" line after the signal
            raise StartError("the server is shutting down")
        slot.state = "available"
        version = short_version(backend.version)
        self.say(f"{instance.rds_engine} {version} for '{spec.identifier}': ready in "
                 f"{slot.boot_seconds or 0:.1f} s; endpoint {instance.host}:{instance.port} "
                 f"(listening on {spec.listen_host}:{instance.port})")

    # -- the RDS API's effects --------------------------------------------------------------------
    def create_from_api(self, identifier: str, engine: str, region: str, iam_enabled: bool,
                        on_ready: Callable[[Slot], None], *,
                        resource_id: str | None = None, master_username: str | None = None,
                        master_password: str | None = None, dbname: str = "app") -> Slot:
        """Start a backend and endpoint for an instance moto has just created; returns at once.

        ``engine``: the RDS engine (postgres, mysql, mariadb). ``on_ready`` runs (in the starting
        thread) once the endpoint accepts logins, or after a failure (``slot.state``).
        """
        kind = "postgres" if engine == "postgres" else "mysql"
        host, port = self._create_listen(kind)
        slot = Slot(spec=InstanceSpec(identifier=identifier, engine=kind,  # type: ignore[arg-type]
                                      listen_host=host, listen_port=port,
                                      iam_enabled=iam_enabled, dbname=dbname,
                                      master_username=master_username,
                                      master_password=master_password),
                    region=region, from_api=True)
        with self._lock:
            old = self._slots.get(identifier)
            if old is not None and old.state != "failed":
                raise ValueError(f"instance {identifier!r} already exists")
            self._slots[identifier] = slot

        def run() -> None:
            try:
                self._start_slot(slot, register=False, resource_id=resource_id)
                self.say("\n".join(["/etc/hosts:", *self.hosts_lines([slot])]))
            except BaseException as exc:
                slot.state, slot.error = "failed", one_line(exc)
                self.say(f"{engine} for '{identifier}': FAILED: {slot.error}")
            on_ready(slot)

        thread = threading.Thread(target=run, name=f"rdsiam-create-{identifier}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return slot

    def track(self, thread: threading.Thread) -> None:
        """A starting thread ``close`` waits for (bounded)."""
        with self._lock:
            self._threads.append(thread)

    def _create_listen(self, engine: str) -> tuple[str, int]:
        """Where a new API-made instance listens: the engine's standard port on the next free
        127.0.0.x (or on ``server.create_listen_host``)."""
        port = ENGINE_PORTS[engine]
        wanted = self.config.server.create_listen_host
        if wanted != "loopback":
            return wanted, port if _can_bind(wanted, port) else 0
        with self._lock:
            used = {(s.spec.listen_host, s.spec.listen_port) for s in self._slots.values()}
        for last in range(2, 255):
            host = f"127.0.0.{last}"
            if (host, port) not in used and _can_bind(host, port):
                return host, port
        return "127.0.0.1", 0

    def delete(self, identifier: str) -> bool:
        """Stop the instance's endpoint and backend (and forget it); False if unknown."""
        with self._lock:
            slot = self._slots.pop(identifier, None)
        if slot is None:
            return False
        slot.state = "deleting"
        with slot.lock:  # a start in progress sees this and stops what it makes later
            slot.deleted = True
        _stop_slot(slot)
        self.say(f"'{identifier}': deleted (endpoint and backend stopped)")
        return True

    def set_iam_enabled(self, identifier: str, enabled: bool) -> None:
        """Switch IAM database authentication of a running instance (``modify_db_instance``)."""
        slot = self.get(identifier)
        if slot is not None and slot.instance is not None:
            slot.instance.set_iam_enabled(enabled)
            slot.spec = _replace_iam(slot.spec, enabled)
            self.say(f"'{identifier}': IAM database authentication "
                     f"{'enabled' if enabled else 'disabled'}")

    # -- views ------------------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        """The ``/_rdsiam/instances`` entries (docs/server.md has the shape)."""
        out = []
        for slot in self.slots():
            inst = slot.instance
            out.append({
                "id": slot.spec.identifier,
                "engine": inst.rds_engine if inst else slot.spec.engine,
                "version": short_version(inst.backend.version) if inst else None,
                "host": inst.host if inst else self.host_name(slot.spec.identifier, slot.region),
                "address": connect_address(slot.spec.listen_host),
                "listen": f"{slot.spec.listen_host}:{inst.port if inst else slot.spec.listen_port}",
                "port": inst.port if inst else None,
                "region": slot.region,
                "account_id": self.config.server.account_id,
                "resource_id": inst.resource_id if inst else None,
                "iam_enabled": inst.iam_enabled if inst else slot.spec.iam_enabled,
                "aliases": list(slot.spec.aliases),
                "dbname": slot.spec.dbname,
                "master_username": inst.backend.master_user if inst else None,
                "iam_db_users": list(slot.spec.iam_db_users),
                "state": slot.state,
                "error": slot.error,
                "created_by": "api" if slot.from_api else "config",
                "backend_pid": inst.backend.server_pid if inst else None,
            })
        return out

    def describe_proxies(self) -> list[dict[str, Any]]:
        """The ``/_rdsiam/proxies`` entries (docs/server.md has the shape)."""
        if self._emulator is None:
            return []
        return [{
            "name": p.name, "target": p.target_id, "host": p.host,
            "address": connect_address(p.config.listen_host),
            "listen": f"{p.config.listen_host}:{p.port}", "port": p.port,
            "resource_id": p.resource_id, "arn": p.arn, "engine_family":
                "POSTGRESQL" if p.door.engine == "postgres" else "MYSQL",
            "require_tls": p.door.require_tls,
            "default_auth_scheme": p.door.default_auth_scheme,
            "endpoints": [{
                "name": e.name, "target_role": e.target_role, "host": e.host,
                "address": connect_address(e.server.settings.listen_host), "port": e.port,
            } for e in p.endpoints.values()],
            "created_by": "config" if any(s.name == p.name for s in self.config.proxies)
            else "api",
        } for p in self._emulator.proxies]

    # -- stopping ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every endpoint, then every backend (also those still booting: waits for them)."""
        self._closed = True
        starter = getattr(self, "_proxy_starter", None)
        if starter is not None:
            starter.__exit__(None, None, None)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            if slot.backend is None and slot.booting is not None:
                try:
                    slot.backend = slot.booting.result()
                except Exception:  # it never started: nothing to stop
                    log.debug("backend of %s did not start", slot.spec.identifier)
            _stop_slot(slot)
        self.clusters.close()
        self._pool.shutdown(wait=True)
        if self._emulator is not None:
            self._emulator.close()


def _stop_slot(slot: Slot) -> None:
    try:
        if slot.instance is not None:
            slot.instance.close()
    finally:
        if slot.backend is not None:
            slot.backend.stop()


_HANDLE_REPR = re.compile(r"<\w+Handle [^<>]*?via (\S+?)>|<\w+Handle[^<>]*>")


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line: libpq's multi-line errors collapsed, and a backend
    handle's repr (``<PostgresHandle … via external:db:5432>``) shown as its address."""
    text = _HANDLE_REPR.sub(lambda m: m.group(1) or "the server", str(exc))
    return f"{type(exc).__name__}: {' '.join(text.split())}"


def installed_server(engine: str, version: str | None = None) -> tuple[str, str] | None:
    """``(RDS engine name, short version)`` of the local server an instance of ``engine``
    (``postgres`` | ``mysql``) would run, e.g. ``("mariadb", "10.11.19")``; None when no server
    binary is found (starting it then fails with its own message)."""
    from rdsiam_emulator.backends.errors import BackendError

    try:
        if engine == "postgres":
            from rdsiam_emulator.backends import local_postgres

            bindir = local_postgres.find_bindir(version)
            return "postgres", short_version(local_postgres._binary_version(bindir))
        from rdsiam_emulator.backends import local_mysql

        path, flavour = local_mysql.find_server()
        return flavour, short_version(local_mysql._server_version(path))
    except (BackendError, OSError, subprocess.CalledProcessError):
        return None


def version_problem(engine: str, wanted: str) -> str | None:
    """Why a local ``engine`` instance cannot run version ``wanted`` (None: what runs is that
    version, or no server is installed at all)."""
    found = installed_server(engine, wanted)
    if found is None:
        return None
    flavour, version = found
    if version == wanted or version.startswith(wanted + "."):
        return None
    return (f"{wanted!r} is not what runs: this machine's {engine} server is {flavour} "
            f"{version}; leave version out or set it to {'.'.join(version.split('.')[:2])!r}")


def _replace_iam(spec: InstanceSpec, enabled: bool) -> InstanceSpec:
    from dataclasses import replace

    return replace(spec, iam_enabled=enabled)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def connect_address(listen_host: str) -> str:
    """The address a client on this host uses for an endpoint listening on ``listen_host``."""
    if listen_host in WILDCARDS:
        return "::1" if ":" in listen_host else "127.0.0.1"
    return listen_host


def _can_bind(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as asyncio's listeners do, so a port in TIME_WAIT is not reported busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_listen(host: str, port: int) -> str | None:
    """Why an endpoint cannot listen on ``host:port`` (None: it can)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def create_iam_db_user(instance: EmulatedInstance, name: str) -> None:
    """Create ``name`` as RDS documents it and grant it what a master user would, through the
    backend's admin session (not the endpoint: the emulator's own set-up is no auth event).
    Idempotent.

    PostgreSQL: ``CREATE USER``, ``GRANT rds_iam`` (CONNECT and USAGE on ``public`` come from
    PUBLIC). MySQL: the account, ``ALL PRIVILEGES ON <dbname>.*``, and its entry in the IAM-user
    catalog (what the endpoint records for ``IDENTIFIED WITH AWSAuthenticationPlugin``); its
    backend password is a throw-away that the endpoint replaces with the derived one at the
    first IAM login. Raises ``backends.BackendError`` when the server refuses.
    """
    from rdsiam_emulator.backends.mysql_handle import MysqlHandle, quote_ident

    backend = instance.backend
    if isinstance(backend, MysqlHandle):
        backend.admin_execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s",
                              [name, secrets.token_urlsafe(24)])
        backend.admin_execute(f"GRANT ALL PRIVILEGES ON {quote_ident(backend.dbname)}.* "
                              "TO %s@'%%'", [name])
        backend.record_iam_user(name)
        return
    ident = '"' + name.replace('"', '""') + '"'
    if not backend.admin_execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]):
        backend.admin_execute(f"CREATE USER {ident}")
    backend.admin_execute(f"GRANT rds_iam TO {ident}")
