"""Emulated Aurora clusters: a writer and readers (real servers, real replicas), each with its own
instance endpoint, plus the cluster (writer) and reader endpoints (docs/aurora.md).

``ClusterTopology`` is the one new piece of the login flow, and it is pure: which member writes,
which host names a member's tokens may name (its ``Endpoint``: the member's own name plus the
cluster's; the reader name only on members the reader endpoint routes to), and where the shared
endpoints send the next connection. Members are ordinary ``EmulatedInstance`` endpoints whose
authenticators get the topology's ``Endpoint``; the shared endpoints are TCP forwarders
(``endpoint.forward``) in front of them, as Aurora's are DNS names in front of instances.

Every endpoint of a cluster listens on the same port (Aurora's one ``Port``), each name on its own
loopback address (127.x.y.z), so ``describe_db_clusters`` can give one ``Port`` for all of them.
"""

from __future__ import annotations

import itertools
import secrets
import socket
import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdsiam_emulator import resolver
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.aws import rds as moto_rds
from rdsiam_emulator.backends import BackendHandle
from rdsiam_emulator.backends.aurora_catalog import AuroraCatalog
from rdsiam_emulator.backends.postgres_handle import PostgresHandle
from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.forward import Forwarder, Target
from rdsiam_emulator.endpoint.postgres import PostgresEndpoint
from rdsiam_emulator.endpoint.replica_admin import ReplicaAdminClient
from rdsiam_emulator.engines import POSTGRES, Engine, EngineName
from rdsiam_emulator.engines import engine as engine_named
from rdsiam_emulator.instances import EmulatedInstance, Emulator, InstanceConfig
from rdsiam_emulator.secrets import new_instance_secret

_RESOURCE_ALPHABET = string.ascii_uppercase + string.digits
PORT_ATTEMPTS = 20


def new_cluster_resource_id() -> str:
    """A realistic DbClusterResourceId: ``cluster-`` and 26 upper-case alphanumerics."""
    return "cluster-" + "".join(secrets.choice(_RESOURCE_ALPHABET) for _ in range(26))


@dataclass(frozen=True)
class ClusterConfig:
    """One emulated Aurora cluster as the user describes it."""

    cluster_id: str
    """Lower-cased, as RDS stores it."""
    engine: EngineName = POSTGRES.name
    readers: int = 1
    """Reader instances besides the writer (0 or more)."""
    region: str = "us-east-1"
    account_id: str = "123456789012"
    iam_enabled: bool = True
    """``EnableIAMDatabaseAuthentication`` of the cluster (it is a cluster setting on Aurora)."""
    require_tls: bool = True
    throttling: bool = True
    future_skew: float = 300.0
    global_keys: str = "documented"
    resource_id: str | None = None
    """None: a fresh realistic DbClusterResourceId (``cluster-…``)."""
    dns_label: str | None = None
    instance_ids: tuple[str, ...] = ()
    """The members' identifiers, writer first (lower-cased, as RDS stores them); empty:
    ``<cluster>-instance-1`` … (as the console names them)."""

    def __post_init__(self) -> None:
        # RDS stores identifiers lower-cased (endpoint names, moto and ARNs follow)
        object.__setattr__(self, "cluster_id", self.cluster_id.lower())
        object.__setattr__(self, "instance_ids", tuple(i.lower() for i in self.instance_ids))
        engine_named(self.engine)
        if self.readers < 0:
            raise ValueError(f"readers must be 0 or more, not {self.readers}")
        if self.instance_ids and len(self.instance_ids) != self.readers + 1:
            raise ValueError(f"instance_ids names {len(self.instance_ids)} members; the cluster "
                             f"has {self.readers + 1} (a writer and {self.readers} readers)")
        if not self.cluster_id:
            raise ValueError("cluster_id must be a non-empty identifier")
        if len(set(self.instance_ids)) != len(self.instance_ids):
            raise ValueError(f"instance_ids must differ (ignoring case, as RDS): "
                             f"{', '.join(self.instance_ids)}")

    @property
    def engine_info(self) -> Engine:
        """The engine object ``engine`` names."""
        return engine_named(self.engine)

    @property
    def member_ids(self) -> tuple[str, ...]:
        """The members' identifiers, writer first."""
        if self.instance_ids:
            return self.instance_ids
        return tuple(f"{self.cluster_id}-instance-{i}" for i in range(1, self.readers + 2))

    def names(self, dns_label: str) -> tuple[str, str]:
        """(cluster endpoint, reader endpoint) host names with ``dns_label``."""
        tail = f"{dns_label}.{self.region}.rds.amazonaws.com"
        return f"{self.cluster_id}.cluster-{tail}", f"{self.cluster_id}.cluster-ro-{tail}"

    def member_host(self, member_id: str, dns_label: str) -> str:
        """A member's instance endpoint: ``<instance>.<dns_label>.<region>.rds.amazonaws.com``."""
        return f"{member_id}.{dns_label}.{self.region}.rds.amazonaws.com"


@dataclass(frozen=True, slots=True)
class Member:
    """One member's instance endpoint name and loopback address."""

    instance_id: str
    host: str
    address: str


class ClusterTopology:
    """Who writes, what each member's tokens may name, where shared endpoints route. Pure and
    thread-safe (the forwarders ask from the event loop, failover changes it from the caller).
    """

    def __init__(self, *, cluster_id: str, cluster_host: str, reader_host: str, port: int,
                 region: str, account_id: str, resource_id: str, members: tuple[Member, ...],
                 cluster_address: str, reader_address: str,
                 available: Callable[[str], bool] | None = None) -> None:
        if not members:
            raise ValueError("a cluster has at least one member (the writer)")
        self.cluster_id = cluster_id
        self.cluster_host = cluster_host
        self.reader_host = reader_host
        self.port = port
        self.region = region
        self.account_id = account_id
        self.resource_id = resource_id
        self.cluster_address = cluster_address
        self.reader_address = reader_address
        self._members = {m.instance_id: m for m in members}
        self._writer = members[0].instance_id
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._available = available or (lambda _member: True)
        self.on_change: Callable[[], None] | None = None
        """Called (outside the lock) when ``next_reader_target`` finds the reader targets
        changed (a reader died or came back): the cluster re-derives each member's names."""
        self._last_targets = self.reader_targets()

    @property
    def writer(self) -> str:
        """The writer's instance identifier."""
        return self._writer

    @property
    def members(self) -> tuple[Member, ...]:
        """Every member, in creation order."""
        return tuple(self._members.values())

    @property
    def readers(self) -> tuple[str, ...]:
        """The readers' identifiers (every member but the writer), in creation order."""
        return tuple(m for m in self._members if m != self._writer)

    def member(self, instance_id: str) -> Member:
        """The member called ``instance_id``; raises KeyError."""
        return self._members[instance_id]

    def reader_targets(self) -> tuple[str, ...]:
        """Members the reader endpoint routes to: the available readers (``available``: the
        server runs), or the writer when there are none (as on Aurora)."""
        return tuple(r for r in self.readers if self._available(r)) or (self._writer,)

    def accepted_hosts(self, instance_id: str) -> tuple[str, ...]:
        """Host names a token may be signed for when its connection lands on ``instance_id``:
        the member's own endpoint, the cluster endpoint, and the reader endpoint only on members
        it routes to (whether RDS accepts a reader-endpoint token on the writer is not
        documented: the stricter reading)."""
        names = [self._members[instance_id].host, self.cluster_host]
        if instance_id in self.reader_targets():
            names.append(self.reader_host)
        return tuple(names)

    def endpoint_for(self, instance_id: str,
                     member_resource_ids: tuple[str, ...] = ()) -> Endpoint:
        """The ``Endpoint`` tokens landing on ``instance_id`` are checked against: its accepted
        hosts at the cluster's port, the cluster's resource id in the dbuser ARN."""
        own, *others = self.accepted_hosts(instance_id)
        return Endpoint(host=own, port=self.port, region=self.region, aliases=tuple(others),
                        account_id=self.account_id, resource_id=self.resource_id,
                        instance_id=instance_id, cluster_id=self.cluster_id,
                        cluster_host=self.cluster_host, member_resource_ids=member_resource_ids)

    def writer_target(self) -> Target:
        """Where the cluster endpoint sends a new connection."""
        with self._lock:
            return self._members[self._writer].address, self.port

    def next_reader_target(self) -> Target:
        """Where the reader endpoint sends the next new connection: round robin over
        ``reader_targets()``."""
        with self._lock:
            targets = self.reader_targets()
            changed, self._last_targets = targets != self._last_targets, targets
            chosen = targets[next(self._turn) % len(targets)]
        if changed and self.on_change is not None:
            self.on_change()  # before the client's login reaches the member
        return self._members[chosen].address, self.port

    def fail_over(self, target: str | None = None) -> str:
        """Make ``target`` (None: the first reader) the writer; returns the old writer, now a
        reader. Raises ValueError when there is no such reader."""
        with self._lock:
            readers = self.readers
            if target is None:
                if not readers:
                    raise ValueError(f"cluster {self.cluster_id} has no reader to fail over to")
                target = readers[0]
            if target not in readers:
                raise ValueError(f"{target!r} is not a reader of cluster {self.cluster_id} "
                                 f"(readers: {', '.join(readers) or 'none'})")
            old, self._writer = self._writer, target
            return old


    def add_member(self, member: Member) -> None:
        """A new reader (``create_db_instance`` into a running cluster): the reader endpoint
        routes to it from the next connection. Raises ValueError for a known identifier."""
        with self._lock:
            if member.instance_id in self._members:
                raise ValueError(f"{member.instance_id!r} is already a member")
            self._members[member.instance_id] = member

    def remove_member(self, instance_id: str) -> None:
        """Forget a reader (``delete_db_instance``); raises ValueError for the writer (fail
        over first) and KeyError for an unknown one."""
        with self._lock:
            if instance_id == self._writer:
                raise ValueError(f"{instance_id!r} is the writer of cluster {self.cluster_id}")
            del self._members[instance_id]


def _pick_addresses(count: int) -> tuple[list[str], int]:
    """``count`` loopback addresses on one random 127.x.y.0/24 and a port free on all of them."""
    last: OSError | None = None
    for _ in range(PORT_ATTEMPTS):
        net = f"127.{secrets.randbelow(250) + 3}.{secrets.randbelow(254) + 1}"
        addresses = [f"{net}.{i + 1}" for i in range(count)]
        socks: list[socket.socket] = []
        try:
            first = socket.socket()
            socks.append(first)
            first.bind((addresses[0], 0))
            port = int(first.getsockname()[1])
            for address in addresses[1:]:
                sock = socket.socket()
                socks.append(sock)
                sock.bind((address, port))
            return addresses, port
        except OSError as exc:
            last = exc
        finally:
            for sock in socks:
                sock.close()
    raise OSError(f"no port free on {count} loopback addresses after {PORT_ATTEMPTS} tries: "
                  f"{last}")


@dataclass
class EmulatedCluster:
    """A running emulated Aurora cluster; ``close()`` stops its endpoints (not the backends)."""

    config: ClusterConfig
    topology: ClusterTopology
    members: dict[str, EmulatedInstance]
    backends: dict[str, BackendHandle]
    dns_label: str
    _emulator: Emulator = field(repr=False)
    _forwarders: tuple[Forwarder, Forwarder] = field(repr=False)
    _aurora: AuroraCatalog | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def cluster_id(self) -> str:
        """The DB cluster identifier."""
        return self.config.cluster_id

    @property
    def engine(self) -> EngineName:
        """``postgres`` or ``mysql``."""
        return self.config.engine

    @property
    def rds_engine(self) -> str:
        """The engine RDS reports: ``aurora-postgresql`` or ``aurora-mysql``."""
        return "aurora-postgresql" if self.config.engine_info is POSTGRES else "aurora-mysql"

    @property
    def region(self) -> str:
        """The cluster's region (tokens must be scoped to it)."""
        return self.config.region

    @property
    def account_id(self) -> str:
        """The owning account (in the dbuser ARNs)."""
        return self.config.account_id

    @property
    def host(self) -> str:
        """The cluster (writer) endpoint: ``<c>.cluster-<label>.<region>.rds.amazonaws.com``."""
        return self.topology.cluster_host

    @property
    def reader_host(self) -> str:
        """The reader endpoint: ``<c>.cluster-ro-<label>.<region>.rds.amazonaws.com``."""
        return self.topology.reader_host

    @property
    def port(self) -> int:
        """The one port of every endpoint of the cluster."""
        return self.topology.port

    @property
    def resource_id(self) -> str:
        """The DbClusterResourceId (``cluster-…``) that ``rds-db:connect`` policies name."""
        return self.topology.resource_id

    @property
    def ca_bundle(self) -> Path:
        """The CA file clients verify every endpoint of the cluster with."""
        return self._emulator.ca_bundle

    @property
    def writer(self) -> EmulatedInstance:
        """The current writer's instance."""
        return self.members[self.topology.writer]

    @property
    def readers(self) -> tuple[EmulatedInstance, ...]:
        """The current readers' instances."""
        return tuple(self.members[r] for r in self.topology.readers)

    @property
    def iam_enabled(self) -> bool:
        """Whether the cluster accepts IAM logins (one switch for every member)."""
        return self.writer.authenticator.iam_enabled

    def address_of(self, host: str) -> str:
        """The loopback address a cluster, reader or instance endpoint name listens on (a
        client's ``hostaddr``); raises KeyError for other names."""
        lowered = host.lower()
        if lowered == self.host:
            return self.topology.cluster_address
        if lowered == self.reader_host:
            return self.topology.reader_address
        for member in self.topology.members:
            if member.host == lowered:
                return member.address
        raise KeyError(host)

    def db_user_arn(self, db_user: str) -> str:
        """``arn:aws:rds-db:<region>:<account>:dbuser:<DbClusterResourceId>/<db_user>``."""
        return (f"arn:aws:rds-db:{self.region}:{self.account_id}:dbuser:"
                f"{self.resource_id}/{db_user}")

    def set_iam_enabled(self, enabled: bool) -> None:
        """Like ``modify-db-cluster --(no-)enable-iam-database-authentication``: every member
        decides by it at once, and moto's cluster (when registered) reports it."""
        for member in self.members.values():
            member.authenticator.iam_enabled = enabled
        moto_rds.set_cluster_iam_enabled(self.account_id, self.region, self.cluster_id, enabled,
                                         missing_ok=True)

    def failover(self, target: str | None = None) -> str:
        """Like ``failover-db-cluster``: promote ``target`` (None: the first reader whose server
        runs; any case) for real, repoint the cluster and reader endpoints and each member's
        accepted names as soon as it takes writes, then cut the sessions on the two members,
        restart the old writer as a replica of it and make every PostgreSQL member's
        ``aurora_replica_status()`` report the new writer (``backends.aurora_catalog``).
        Returns the new writer's identifier.

        Raises ValueError for a target that is not a reader, ``BackendError`` when the servers
        cannot be switched (local servers of a cluster started here only; a dead target is
        refused before the writer is touched)."""
        from rdsiam_emulator.backends.replication import switch_over

        old = self.topology.writer
        target = None if target is None else target.lower()
        # Aurora picks a replica that is up; a named dead target is refused by switch_over
        up = tuple(r for r in self.topology.readers if self.backends[r].server_running)
        new = target if target is not None else (up or self.topology.readers or ("",))[0]
        if new not in self.topology.readers:
            self.topology.fail_over(target)  # raises the ValueError with the readers named
        others = tuple(self.backends[r] for r in self.topology.readers if r != new)

        def route_to_new_writer() -> None:
            # at promotion, before the old writer comes back as a standby: no new session
            # lands on a member in the wrong role in between
            self.topology.fail_over(new)
            self._refresh()

        switch_over(self.backends[old], self.backends[new], others, route_to_new_writer)
        try:
            if self._aurora is not None:  # once every member replays it (old writer included)
                self._aurora.set_writer(new)
        finally:
            moto_rds.set_cluster_writer(self.account_id, self.region, self.cluster_id, new,
                                        missing_ok=True)
        return new

    def attach(self, instance: EmulatedInstance, backend: BackendHandle) -> None:
        """A new reader (``create_db_instance`` into a running cluster; ``instance`` is already
        a ``Member`` of the topology): from now on part of failover and, on PostgreSQL, of
        Aurora's ``aurora_replica_status()``. Raises ``BackendError`` when its admin SQL fails."""
        self.members[instance.instance_id] = instance
        self.backends[instance.instance_id] = backend
        if self._aurora is not None and isinstance(backend, PostgresHandle):
            self._aurora.add_member(instance.instance_id, backend, self.topology.writer)
        self._refresh()

    def detach(self, instance_id: str) -> EmulatedInstance:
        """Forget a reader (``delete_db_instance``) and return its instance (still running: the
        caller closes it). Raises KeyError for an unknown one, ValueError for the writer."""
        self.topology.remove_member(instance_id)
        instance = self.members.pop(instance_id)
        self.backends.pop(instance_id, None)
        if self._aurora is not None:
            self._aurora.remove_member(instance_id, self.topology.writer)
        self._refresh()
        return instance

    def _refresh(self) -> None:
        """Give every member its current ``Endpoint`` and its admin client the current writer."""
        rids = tuple(m.resource_id for m in self.members.values())
        writer_server = self.writer.server
        for member_id, member in self.members.items():
            member.authenticator.endpoint = self.topology.endpoint_for(member_id, rids)
            admin = getattr(member.server, "admin", None)
            if isinstance(admin, ReplicaAdminClient):
                is_writer = member_id == self.topology.writer
                admin.writer = None if is_writer else writer_server.admin  # type: ignore[assignment]

    def register_in_moto(self) -> Any:
        """Create this cluster and its members in the current moto RDS state (inside
        ``mock_aws``); returns moto's cluster."""
        return moto_rds.register_cluster(moto_rds.ClusterRegistration(
            cluster_id=self.cluster_id, engine=self.rds_engine, region=self.region,
            account_id=self.account_id, dns_label=self.dns_label, port=self.port,
            resource_id=self.resource_id, master_username=self.writer.backend.master_user,
            dbname=self.writer.backend.dbname, iam_enabled=self.iam_enabled,
            engine_version=self.writer.backend.version or None,
            members=tuple((m.instance_id, m.host, self.members[m.instance_id].resource_id)
                          for m in self.topology.members),
            writer=self.topology.writer,
        ))

    def close(self) -> None:
        """Stop the shared endpoints and every member's endpoint; idempotent. The backends keep
        running (they belong to the caller)."""
        if self._closed:
            return
        self._closed = True
        self._emulator._forget_cluster(self)
        try:
            for forwarder in self._forwarders:
                self._emulator.run(forwarder.close())
        finally:
            for member in self.members.values():
                member.close()
            resolver.unregister(self.host)
            resolver.unregister(self.reader_host)


def _aurora_catalog(backends: dict[str, BackendHandle]) -> AuroraCatalog | None:
    """aurora-postgresql's own functions and setting on local PostgreSQL members, writer first
    (backends.aurora_catalog); None for other servers."""
    members = [(i, h) for i, h in backends.items()
               if isinstance(h, PostgresHandle) and h.unix_socket is not None]
    if not members or len(members) != len(backends):
        return None
    catalog = AuroraCatalog(members)
    catalog.install(members[0][0])
    return catalog


def start_cluster(emulator: Emulator, config: ClusterConfig, writer: BackendHandle,
                  readers: Sequence[BackendHandle]) -> EmulatedCluster:
    """Put a cluster's endpoints in front of running servers: ``writer`` and its replicas
    ``readers`` (``backends.replication.start_local_postgres_cluster``). Returns the running
    cluster; raises ValueError when the servers do not match the configuration, ``OSError``
    when no common port is found."""
    if len(readers) != config.readers:
        raise ValueError(f"the cluster has {config.readers} readers, {len(readers)} servers given")
    label = config.dns_label or emulator.dns_label
    cluster_host, reader_host = config.names(label)
    ids = config.member_ids
    addresses, port = _pick_addresses(len(ids) + 2)
    members = tuple(Member(i, config.member_host(i, label), a)
                    for i, a in zip(ids, addresses[2:], strict=True))
    backends = dict(zip(ids, (writer, *readers), strict=True))
    topology = ClusterTopology(
        cluster_id=config.cluster_id, cluster_host=cluster_host, reader_host=reader_host,
        port=port, region=config.region, account_id=config.account_id,
        resource_id=config.resource_id or new_cluster_resource_id(), members=members,
        cluster_address=addresses[0], reader_address=addresses[1],
        available=lambda member_id: backends[member_id].server_running)
    secret = new_instance_secret()  # one for all: the derived passwords replicate
    started: dict[str, EmulatedInstance] = {}
    forwarders = (Forwarder(topology.writer_target, listen_host=addresses[0], listen_port=port),
                  Forwarder(topology.next_reader_target, listen_host=addresses[1],
                            listen_port=port))
    aurora = _aurora_catalog(backends)
    try:
        for member in members:
            started[member.instance_id] = emulator.start_instance(InstanceConfig(
                instance_id=member.instance_id, engine=config.engine, region=config.region,
                account_id=config.account_id, iam_enabled=config.iam_enabled,
                require_tls=config.require_tls, future_skew=config.future_skew,
                throttling=config.throttling, global_keys=config.global_keys, dns_label=label,
                listen_host=member.address, listen_port=port,
            ), backends[member.instance_id], secret=secret, tls_names=(cluster_host, reader_host))
        for forwarder in forwarders:
            emulator.run(forwarder.start())
    except BaseException:
        for forwarder in forwarders:
            emulator.run(forwarder.close())
        for instance in started.values():
            instance.close()
        raise
    for instance in started.values():
        if isinstance(instance.server, PostgresEndpoint):
            instance.server.admin = ReplicaAdminClient(
                BackendAddress.from_handle(instance.backend),
                timeout=instance.server.settings.backend_timeout)
    resolver.register(cluster_host, addresses[0])
    resolver.register(reader_host, addresses[1])
    cluster = EmulatedCluster(config=config, topology=topology, members=started,
                              backends=backends, dns_label=label, _emulator=emulator,
                              _forwarders=forwarders, _aurora=aurora)
    cluster._refresh()
    emulator._add_cluster(cluster)
    topology.on_change = cluster._refresh
    return cluster
