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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rdsiam_emulator.backends import BackendHandle, BackendSpec
from rdsiam_emulator.server.cluster_config import ClusterSpec
from rdsiam_emulator.versions import short_version

if TYPE_CHECKING:  # importing clusters imports moto (seconds)
    from rdsiam_emulator.clusters import EmulatedCluster
    from rdsiam_emulator.instances import EmulatedInstance
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
    next_server_id: int = 100
    """MariaDB ``server_id`` of the last replica added through the API (unique per cluster)."""
    deleted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards the fields above against the starting threads."""
    starting: threading.Lock = field(default_factory=threading.Lock)
    """Held while a member starts: members of one cluster start one at a time (the writer
    must run before its replicas are copied from it)."""


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
        """DB instances the clusters hold or are starting (they count against the quota); a
        configured cluster still booting counts as configured."""
        return sum(len(set(s.handles) | s.creating) if s.from_api or s.handles
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
            resource_id=slot.resource_id, dns_label=self.runtime.dns_label, instance_ids=ids,
            throttling=server.throttling)
        cluster = start_cluster(self.runtime.emulator, config, writer, readers)
        with slot.lock:
            deleted = slot.deleted
            if not deleted:
                slot.cluster = cluster
        if deleted:  # _stop has run (or will find no cluster): close what was just made
            cluster.close()
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

    # -- the RDS API's effects --------------------------------------------------------------------
    def create_from_api(self, spec: ClusterSpec, region: str, resource_id: str) -> ClusterSlot:
        """Record a cluster ``create_db_cluster`` made: no members (no servers) yet. Raises
        ValueError when it exists."""
        slot = ClusterSlot(spec=spec, region=region, state="available", from_api=True,
                           resource_id=resource_id)
        with self._lock:
            if spec.name in self._slots:
                raise ValueError(f"cluster {spec.name!r} already exists")
            self._slots[spec.name] = slot
        self.runtime.say(f"cluster '{spec.name}' ({spec.engine}): created, no instances yet")
        return slot

    def add_member_from_api(self, slot: ClusterSlot, instance_id: str,
                            on_ready: Callable[[EmulatedInstance | None, str | None], None]
                            ) -> None:
        """Start member ``instance_id`` in a thread: the writer when the cluster has none, else
        a replica of the writer. ``on_ready(instance, error)`` runs in that thread once it
        accepts logins (``instance``) or failed (``error``). Returns at once."""
        with slot.lock:
            slot.creating.add(instance_id)
            slot.state = "creating"

        def run() -> None:
            began = time.perf_counter()
            try:
                instance = self._add_member(slot, instance_id)
            except BaseException as exc:
                from rdsiam_emulator.server.runtime import one_line

                error = one_line(exc)
                self.runtime.say(f"cluster '{slot.spec.name}' instance '{instance_id}': "
                                 f"FAILED: {error}")
                with slot.lock:
                    deleted = instance_id not in slot.creating  # delete_db_instance meanwhile
                    slot.creating.discard(instance_id)
                    if not deleted:  # as a failed instance, it keeps health at 503
                        slot.state, slot.error = "failed", error
                    elif slot.state != "failed":
                        slot.state = "creating" if slot.creating else "available"
                _call(on_ready, None, error)
                return
            with slot.lock:
                slot.creating.discard(instance_id)
                if not slot.creating and slot.state != "failed":
                    slot.state = "available"
            role = "writer" if instance.instance_id == self._writer_of(slot) else "reader"
            self.runtime.say(
                f"cluster '{slot.spec.name}': {role} '{instance_id}' ready in "
                f"{time.perf_counter() - began:.1f} s; endpoint {instance.host}:{instance.port}"
                "\n" + "\n".join(["/etc/hosts:", *self._hosts_of(slot)]))
            _call(on_ready, instance, None)

        thread = threading.Thread(target=run, name=f"rdsiam-member-{instance_id}", daemon=True)
        self.runtime.track(thread)
        thread.start()

    @staticmethod
    def _writer_of(slot: ClusterSlot) -> str | None:
        return slot.cluster.topology.writer if slot.cluster is not None else None

    def _hosts_of(self, slot: ClusterSlot) -> list[str]:
        c = slot.cluster
        if c is None:
            return []
        return [f"{c.address_of(n)} {n}" for n in (c.host, c.reader_host,
                                                    *(m.host for m in c.topology.members))]

    def _add_member(self, slot: ClusterSlot, instance_id: str) -> EmulatedInstance:
        """Start the server and endpoint of a new member (one at a time per cluster)."""
        with slot.starting:
            return self._add_member_locked(slot, instance_id)

    def _add_member_locked(self, slot: ClusterSlot, instance_id: str) -> EmulatedInstance:
        from rdsiam_emulator.backends.mysql_handle import MysqlHandle
        from rdsiam_emulator.backends.postgres_handle import PostgresHandle
        from rdsiam_emulator.backends.replication import (
            start_local_mariadb_replica,
            start_local_postgres_replica,
        )

        with slot.lock:
            cluster, deleted = slot.cluster, slot.deleted
        if deleted or self._closed:
            raise RuntimeError("the cluster is being deleted")
        if cluster is None:  # the first instance: the writer
            writer, _ = boot(slot.spec, readers=0)
            with slot.lock:
                gone = slot.deleted or instance_id not in slot.creating
                if not gone:
                    slot.handles[instance_id] = writer
            if gone:  # deleted while its server started
                writer.stop()
                raise RuntimeError("deleted while it was being created")
            cluster = self._start(slot, writer, [], (instance_id,))
            self._register_cluster_endpoints(slot, cluster)
            return cluster.writer
        current = cluster.writer.backend
        if isinstance(current, PostgresHandle):
            backend: BackendHandle = start_local_postgres_replica(current)
        else:
            assert isinstance(current, MysqlHandle)
            slot.next_server_id += 1
            backend = start_local_mariadb_replica(backend_spec(slot.spec), current,
                                                  slot.next_server_id)
        with slot.lock:
            gone = slot.deleted or instance_id not in slot.creating
            if not gone:
                slot.handles[instance_id] = backend
        if gone:  # deleted while its server started
            backend.stop()
            raise RuntimeError("deleted while it was being created")
        return self._attach_reader(cluster, instance_id, backend)

    def _register_cluster_endpoints(self, slot: ClusterSlot, cluster: EmulatedCluster) -> None:
        """Make moto's cluster (made by ``create_db_cluster``) report our names and port."""
        from moto.rds.models import rds_backends

        backend = rds_backends[self.runtime.config.server.account_id][slot.region]
        moto_cluster = backend.clusters.get(slot.spec.name)
        if moto_cluster is not None:
            moto_cluster.url_identifier = cluster.dns_label
            moto_cluster.port = cluster.port
            moto_cluster.engine_version = short_version(cluster.writer.backend.version)

    def _attach_reader(self, cluster: EmulatedCluster, instance_id: str,
                       backend: BackendHandle) -> EmulatedInstance:
        from rdsiam_emulator.clusters import Member
        from rdsiam_emulator.endpoint.backend import BackendAddress
        from rdsiam_emulator.endpoint.postgres import PostgresEndpoint
        from rdsiam_emulator.endpoint.replica_admin import ReplicaAdminClient
        from rdsiam_emulator.instances import InstanceConfig

        config = cluster.config
        address = pick_member_address(cluster)
        instance = self.runtime.emulator.start_instance(InstanceConfig(
            instance_id=instance_id, engine=config.engine, region=config.region,
            account_id=config.account_id, iam_enabled=cluster.iam_enabled,
            require_tls=config.require_tls, future_skew=config.future_skew,
            throttling=config.throttling, global_keys=config.global_keys,
            dns_label=cluster.dns_label, listen_host=address, listen_port=cluster.port,
        ), backend, secret=cluster.writer.secret, tls_names=(cluster.host, cluster.reader_host))
        if isinstance(instance.server, PostgresEndpoint):  # derived passwords go to the writer
            instance.server.admin = ReplicaAdminClient(
                BackendAddress.from_handle(backend),
                timeout=instance.server.settings.backend_timeout)
        cluster.topology.add_member(Member(instance_id, instance.host, address))
        cluster.attach(instance, backend)  # accepted names, admin writer, Aurora's catalog
        return instance

    def remove_member(self, slot: ClusterSlot, instance_id: str) -> None:
        """``delete_db_instance`` of a member: a reader stops; the writer first fails over to a
        reader (as Aurora does), or, being the last member, takes the cluster's endpoints with
        it. Raises ``BackendError`` when the failover fails."""
        with slot.lock:
            cluster = slot.cluster
            handle = slot.handles.pop(instance_id, None)
            slot.creating.discard(instance_id)
            if cluster is not None and instance_id not in cluster.members:
                cluster = None  # still starting: its thread finds the handle gone
            if cluster is not None and len(cluster.members) == 1:
                slot.cluster = None
        try:
            if cluster is not None and len(cluster.members) == 1:
                cluster.close()
            elif cluster is not None:
                if cluster.topology.writer == instance_id:
                    cluster.failover()
                cluster.detach(instance_id).close()
        finally:
            if handle is not None:
                handle.stop()
        self.runtime.say(f"cluster '{slot.spec.name}': instance '{instance_id}' deleted "
                         "(endpoint and server stopped)")

    def set_iam_enabled(self, name: str, enabled: bool) -> None:
        """``modify_db_cluster(EnableIAMDatabaseAuthentication)``: every member at once."""
        slot = self.get(name)
        if slot is None:
            return
        from dataclasses import replace

        with slot.lock:
            slot.spec = replace(slot.spec, iam_enabled=enabled)
            cluster = slot.cluster
        if cluster is not None:
            cluster.set_iam_enabled(enabled)
        self.runtime.say(f"cluster '{name}': IAM database authentication "
                         f"{'enabled' if enabled else 'disabled'}")

    def failover(self, name: str, target: str | None) -> str:
        """``failover_db_cluster``: promote ``target`` (None: the first reader) for real;
        returns the new writer. Raises ValueError (no such cluster, no reader, not a reader)
        or ``BackendError``."""
        slot = self.get(name)
        if slot is None or slot.cluster is None:
            raise ValueError(f"cluster {name!r} has no running instances")
        with slot.lock:
            if slot.creating:
                raise ValueError(f"cluster {name!r} has instances being created")
            new = slot.cluster.failover(target)
        self.runtime.say(f"cluster '{name}': failed over, writer is now '{new}'")
        return new

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
            with slot.lock:  # a member still starting stops what it makes
                slot.deleted = True
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


def _call(on_ready: Callable[[EmulatedInstance | None, str | None], None],
          instance: EmulatedInstance | None, error: str | None) -> None:
    try:
        on_ready(instance, error)
    except Exception:  # a thread's exception would only reach stderr
        log.exception("recording the new member in moto failed")


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

