"""Aurora clusters in ``serve``: real writers and replicas (``backends.replication``) behind
``clusters.start_cluster``, their moto records, the lines ``serve`` prints (docs/server.md).

Clusters come from ``[[clusters]]`` (started at boot, like ``[[instances]]``) or from the RDS API
(``create_db_cluster`` records one with no members; each ``create_db_instance`` naming it starts
a member: the first the writer, later ones replicas of it). Every method is thread-safe: the
HTTP server calls in from its request threads.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rdsiam_emulator.backends import BackendHandle, BackendSpec
from rdsiam_emulator.server.cluster_config import ClusterSpec
from rdsiam_emulator.versions import short_version

if TYPE_CHECKING:  # importing clusters imports moto (seconds)
    from rdsiam_emulator.clusters import EmulatedCluster
    from rdsiam_emulator.server.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class ClusterSlot:
    """One cluster the server knows about, whatever its state."""

    spec: ClusterSpec
    region: str
    state: str = "creating"
    """``creating`` (a member is starting), ``available``, ``failed``, ``deleting``."""
    cluster: EmulatedCluster | None = None
    handles: dict[str, BackendHandle] = field(default_factory=dict)
    """instance id → its running server (writer and readers)."""
    creating: set[str] = field(default_factory=set)
    """API-made members still starting."""
    error: str | None = None
    from_api: bool = False
    resource_id: str | None = None
    boot_seconds: float | None = None
    booting: Future[tuple[BackendHandle, list[BackendHandle]]] | None = None
    deleted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Serialises member changes (start, add, failover, delete) of this cluster."""


def backend_spec(spec: ClusterSpec) -> BackendSpec:
    """What the members' local servers run."""
    return BackendSpec(spec.server_engine, provider="local", version=spec.version,
                       dbname=spec.dbname, master_username=spec.master_username,
                       master_password=spec.master_password)


def boot(spec: ClusterSpec, readers: int | None = None
         ) -> tuple[BackendHandle, list[BackendHandle]]:
    """Start a writer and ``readers`` (default ``spec.readers``) replicas of it. Raises
    ``BackendError``/``BackendUnavailable`` (what started is stopped again)."""
    from rdsiam_emulator.backends.replication import (
        start_local_mariadb_cluster,
        start_local_postgres_cluster,
    )

    count = spec.readers if readers is None else readers
    if spec.server_engine == "postgres":
        pg_writer, pg_readers = start_local_postgres_cluster(backend_spec(spec), readers=count)
        return pg_writer, list(pg_readers)
    my_writer, my_readers = start_local_mariadb_cluster(backend_spec(spec), readers=count)
    return my_writer, list(my_readers)


class ClusterRuntime:
    """The clusters of one ``serve`` process (``Runtime.clusters``)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._slots: dict[str, ClusterSlot] = {
            spec.name: ClusterSlot(spec=spec, region=runtime.config.server.region)
            for spec in runtime.config.clusters}
        self._closed = False

    # -- reading ----------------------------------------------------------------------------------
    def slots(self) -> list[ClusterSlot]:
        """A snapshot of every cluster slot."""
        with self._lock:
            return list(self._slots.values())

    def get(self, name: str) -> ClusterSlot | None:
        """The slot of cluster ``name``, or None."""
        with self._lock:
            return self._slots.get(name)

    def member_count(self) -> int:
        """DB instances the clusters hold or are starting (they count against the quota)."""
        return sum(len(s.handles | dict.fromkeys(s.creating)) if s.from_api
                   else s.spec.readers + 1 for s in self.slots())

    def member_of(self, instance_id: str) -> ClusterSlot | None:
        """The cluster ``instance_id`` is (or is becoming) a member of, or None."""
        for slot in self.slots():
            if instance_id in slot.handles or instance_id in slot.creating:
                return slot
            if not slot.from_api and instance_id in slot.spec.member_ids:
                return slot
        return None

    def ready(self) -> bool:
        """No cluster is creating, failed or half-made."""
        return all(s.state == "available" for s in self.slots())

    def hosts_lines(self) -> list[str]:
        """``/etc/hosts`` lines for every endpoint name of the running clusters."""
        lines: list[str] = []
        for slot in self.slots():
            cluster = slot.cluster
            if cluster is None:
                continue
            for name in (cluster.host, cluster.reader_host,
                         *(m.host for m in cluster.topology.members)):
                lines.append(f"{cluster.address_of(name)} {name}")
        return lines

    def describe(self) -> list[dict[str, Any]]:
        """The ``/_rdsiam/clusters`` entries (docs/server.md has the shape)."""
        out = []
        for slot in self.slots():
            c = slot.cluster
            members = []
            if c is not None:
                for m in c.topology.members:
                    inst = c.members[m.instance_id]
                    members.append({
                        "id": m.instance_id, "host": m.host, "address": m.address,
                        "is_writer": m.instance_id == c.topology.writer,
                        "resource_id": inst.resource_id,
                        "backend_pid": inst.backend.server_pid})
            out.append({
                "id": slot.spec.name, "engine": slot.spec.engine,
                "version": short_version(c.writer.backend.version) if c else None,
                "host": c.host if c else None, "reader_host": c.reader_host if c else None,
                "address": c.topology.cluster_address if c else None,
                "reader_address": c.topology.reader_address if c else None,
                "port": c.port if c else None, "region": slot.region,
                "account_id": self.runtime.config.server.account_id,
                "resource_id": c.resource_id if c else slot.resource_id,
                "iam_enabled": c.iam_enabled if c else slot.spec.iam_enabled,
                "dbname": slot.spec.dbname,
                "master_username": c.writer.backend.master_user if c else None,
                "iam_db_users": list(slot.spec.iam_db_users),
                "writer": c.topology.writer if c else None,
                "members": members, "creating": sorted(slot.creating),
                "state": slot.state, "error": slot.error,
                "created_by": "api" if slot.from_api else "config",
            })
        return out

    # -- configured clusters ------------------------------------------------------------------
    def begin(self, pool: ThreadPoolExecutor) -> None:
        """Start booting every configured cluster's servers in ``pool`` (no endpoints yet)."""
        for slot in self.slots():
            if not slot.from_api and slot.booting is None:
                slot.booting = pool.submit(self._boot_timed, slot)

    @staticmethod
    def _boot_timed(slot: ClusterSlot) -> tuple[BackendHandle, list[BackendHandle]]:
        began = time.perf_counter()
        result = boot(slot.spec)
        slot.boot_seconds = time.perf_counter() - began
        return result

    def start_configured_slot(self, slot: ClusterSlot) -> None:
        """Put endpoints in front of a configured cluster's servers, register it in moto and
        create its IAM DB users. Raises what failed (the caller reports it)."""
        from rdsiam_emulator.backends.replication import wait_for_replay
        from rdsiam_emulator.server.runtime import create_iam_db_user

        assert slot.booting is not None
        writer, readers = slot.booting.result()
        with slot.lock:
            slot.handles = dict(zip(slot.spec.member_ids, (writer, *readers), strict=True))
        if self._closed or self.runtime.stop.is_set():
            raise RuntimeError("the server is shutting down")  # close() stops the handles
        cluster = self._start(slot, writer, readers, slot.spec.member_ids)
        cluster.register_in_moto().engine_version = short_version(writer.version)
        for user in slot.spec.iam_db_users:
            create_iam_db_user(cluster.writer, user)
        for reader in readers:
            wait_for_replay(writer, reader)
        slot.state = "available"
        self._say_ready(slot, cluster)

    def _start(self, slot: ClusterSlot, writer: BackendHandle, readers: list[BackendHandle],
               ids: tuple[str, ...]) -> EmulatedCluster:
        from rdsiam_emulator.clusters import ClusterConfig, start_cluster

        server = self.runtime.config.server
        config = ClusterConfig(
            cluster_id=slot.spec.name, engine=slot.spec.server_engine, readers=len(readers),
            region=slot.region, account_id=server.account_id, iam_enabled=slot.spec.iam_enabled,
            resource_id=slot.resource_id, dns_label=self.runtime.dns_label, instance_ids=ids)
        cluster = start_cluster(self.runtime.emulator, config, writer, readers)
        with slot.lock:
            slot.cluster = cluster
            deleted = slot.deleted
        if deleted:
            raise RuntimeError("deleted while it was being created")
        return cluster

    def _say_ready(self, slot: ClusterSlot, cluster: EmulatedCluster) -> None:
        version = short_version(cluster.writer.backend.version)
        readers = len(cluster.topology.readers)
        self.runtime.say(
            f"{slot.spec.engine} {version} cluster '{slot.spec.name}' (writer + {readers} "
            f"reader{'s' if readers != 1 else ''}): ready in {slot.boot_seconds or 0:.1f} s; "
            f"cluster endpoint {cluster.host}:{cluster.port}, reader endpoint "
            f"{cluster.reader_host}:{cluster.port} (each name on its own loopback address)")

    # -- stopping ---------------------------------------------------------------------------------
    def delete(self, name: str) -> bool:
        """Stop the cluster's endpoints and servers (and forget it); False if unknown."""
        with self._lock:
            slot = self._slots.pop(name, None)
        if slot is None:
            return False
        slot.state = "deleting"
        with slot.lock:
            slot.deleted = True
        _stop(slot)
        self.runtime.say(f"cluster '{name}': deleted (endpoints and servers stopped)")
        return True

    def close(self) -> None:
        """Stop every cluster (also those still booting: waits for their servers)."""
        self._closed = True
        with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            if not slot.handles and slot.booting is not None:
                try:
                    writer, readers = slot.booting.result()
                    slot.handles = {str(i): h for i, h in enumerate((writer, *readers))}
                except Exception:  # it never started: nothing to stop
                    log.debug("servers of cluster %s did not start", slot.spec.name)
            try:
                _stop(slot)
            except Exception:  # keep stopping the others
                log.exception("stopping cluster %s", slot.spec.name)


def _stop(slot: ClusterSlot) -> None:
    """Stop a slot's endpoints, then every server (readers first)."""
    with slot.lock:
        cluster, handles = slot.cluster, list(slot.handles.values())
    try:
        if cluster is not None:
            cluster.close()
    finally:
        for handle in reversed(handles):
            handle.stop()


def pick_member_address(cluster: EmulatedCluster) -> str:
    """A further loopback address on the cluster's /24 where its port is free (a new member
    listens there, keeping Aurora's one port); raises ``OSError`` when none is."""
    net = cluster.topology.cluster_address.rsplit(".", 1)[0]
    used = {cluster.topology.cluster_address, cluster.topology.reader_address,
            *(m.address for m in cluster.topology.members)}
    for last in range(3, 255):
        address = f"{net}.{last}"
        if address in used:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((address, cluster.port))
            except OSError:
                continue
        return address
    raise OSError(f"no address on {net}.0/24 has port {cluster.port} free")

