"""Emulated RDS Proxies: a front door (``auth.proxy.ProxyDoor``) on its own endpoint, in front
of an emulated instance's real backend.

``start_proxy(emulator, config, target)`` (or ``Emulator.start_proxy``) listens on a new port
with its own name (``<name>.proxy-<label>.<region>.rds.amazonaws.com``), certificate and resource
id (``prx-…``), and reaches the target's backend exactly as the target's endpoint does: every
client connection is its own backend session (no pooling or multiplexing). ``auto_start``
starts one whenever ``register_db_proxy_targets`` names an emulated instance or Aurora cluster
in moto.

In front of a cluster (``ClusterProxyTarget``) each new backend session goes to the cluster's
current writer (so a failover is followed); ``EmulatedProxy.add_endpoint`` adds a proxy endpoint
of its own name (``create_db_proxy_endpoint``), ``READ_ONLY`` ones sending each new session to the
next reader (docs/rds-proxy.md).
"""

from __future__ import annotations

import itertools
import re
import secrets
import socket
import string
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rdsiam_emulator import resolver
from rdsiam_emulator.auth.authenticator import Authenticator
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.proxy import (
    AuthScheme,
    ProxyAuth,
    ProxyAuthorizer,
    ProxyDoor,
    SecretCredentials,
)
from rdsiam_emulator.auth.throttle import Throttle
from rdsiam_emulator.aws import proxies as moto_proxies
from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.mysql import MysqlEndpoint, MysqlEndpointSettings
from rdsiam_emulator.endpoint.postgres import PostgresEndpoint, PostgresEndpointSettings
from rdsiam_emulator.endpoint.postgres_admin import AdminClient
from rdsiam_emulator.endpoint.replica_admin import ReplicaAdminClient
from rdsiam_emulator.engines import POSTGRES, EngineName
from rdsiam_emulator.events import AuthEvent, EventLog
from rdsiam_emulator.tls import endpoint_names

if TYPE_CHECKING:
    from rdsiam_emulator.backends import BackendHandle
    from rdsiam_emulator.clusters import EmulatedCluster
    from rdsiam_emulator.engines import Engine
    from rdsiam_emulator.instances import Emulator

_ID_ALPHABET = string.ascii_lowercase + string.digits
TargetRole = Literal["READ_WRITE", "READ_ONLY"]
"""A proxy endpoint's ``TargetRole``."""
_ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$")
ENGINE_FAMILIES: dict[EngineName, str] = {"postgres": "POSTGRESQL", "mysql": "MYSQL"}
"""The proxy ``EngineFamily`` of each engine."""


class ProxyTarget(Protocol):
    """What a proxy needs from what it fronts: an ``EmulatedInstance``, or an Aurora cluster
    as ``ClusterProxyTarget`` (its writer's ``backend``, its ``cluster-…`` resource id, one
    ``secret`` for all members; docs/rds-proxy.md, "Cluster targets")."""

    @property
    def engine(self) -> EngineName:
        """``postgres`` or ``mysql``."""

    @property
    def engine_info(self) -> Engine:
        """The engine object."""

    @property
    def region(self) -> str:
        """The target's region."""

    @property
    def account_id(self) -> str:
        """The target's account."""

    @property
    def endpoint(self) -> Endpoint:
        """Its resource id (``db-…``/``cluster-…``) is the end-to-end IAM resource."""

    @property
    def iam_enabled(self) -> bool:
        """IAM database authentication on the target (end-to-end IAM needs it)."""

    @property
    def secret(self) -> bytes:
        """The secret its IAM users' derived backend passwords come from."""

    @property
    def backend(self) -> BackendHandle:
        """The real server the proxy's sessions go to (a cluster's writer)."""

    @property
    def authenticator(self) -> Authenticator:
        """Its authenticator: the proxy reuses its authorizer and verifier settings."""

    @property
    def ca_bundle(self) -> Path:
        """The emulator's CA bundle."""


def new_proxy_resource_id() -> str:
    """A proxy resource id as RDS makes them: ``prx-`` and 17 lower-case alphanumerics."""
    return "prx-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(17))


class ClusterProxyTarget:
    """``ProxyTarget`` over an emulated Aurora cluster (``register_db_proxy_targets`` with
    ``DBClusterIdentifiers``): the end-to-end IAM resource is the cluster's ``cluster-…`` id, all
    members share one secret, and ``route(role)`` picks where a new session goes."""

    def __init__(self, cluster: EmulatedCluster) -> None:
        self.cluster = cluster
        self._turn = itertools.count()

    @property
    def config(self) -> Any:
        """The cluster's ``ClusterConfig`` (its ``global_keys`` apply to the proxy's role)."""
        return self.cluster.config

    @property
    def cluster_id(self) -> str:
        """The DB cluster identifier (the ``TRACKED_CLUSTER`` target's ``RdsResourceId``)."""
        return self.cluster.cluster_id

    @property
    def engine(self) -> EngineName:
        """``postgres`` or ``mysql``."""
        return self.cluster.engine

    @property
    def engine_info(self) -> Engine:
        """The engine object."""
        return self.cluster.config.engine_info

    @property
    def region(self) -> str:
        """The cluster's region."""
        return self.cluster.region

    @property
    def account_id(self) -> str:
        """The cluster's account."""
        return self.cluster.account_id

    @property
    def endpoint(self) -> Endpoint:
        """The writer's ``Endpoint``: its resource id is the cluster's ``cluster-…``."""
        return self.cluster.writer.authenticator.endpoint

    @property
    def iam_enabled(self) -> bool:
        """The cluster's IAM switch."""
        return self.cluster.iam_enabled

    @property
    def secret(self) -> bytes:
        """The secret all members' derived passwords come from."""
        return self.cluster.writer.secret

    @property
    def backend(self) -> BackendHandle:
        """The current writer's server."""
        return self.cluster.backends[self.cluster.topology.writer]

    @property
    def authenticator(self) -> Authenticator:
        """The writer's authenticator (authorizer and verifier settings are the cluster's)."""
        return self.cluster.writer.authenticator

    @property
    def ca_bundle(self) -> Path:
        """The emulator's CA bundle."""
        return self.cluster.ca_bundle

    def has_readers(self) -> bool:
        """Whether the cluster has a reader now (a ``READ_ONLY`` endpoint needs one)."""
        return bool(self.cluster.topology.readers)

    def backend_for(self, role: TargetRole) -> BackendHandle:
        """The server a new session through an endpoint of ``role`` goes to: the writer, or the
        next reader in turn (the writer when the cluster has none, as its reader endpoint)."""
        topology = self.cluster.topology
        if role == "READ_WRITE":
            return self.cluster.backends[topology.writer]
        targets = topology.reader_targets()
        return self.cluster.backends[targets[next(self._turn) % len(targets)]]

    def route(self, role: TargetRole) -> Callable[[], BackendAddress]:
        """An endpoint's ``backend_route`` for ``role``."""
        return lambda: BackendAddress.from_handle(self.backend_for(role))

    def member_rows(self, health: Callable[[BackendHandle], dict[str, str]]
                    ) -> list[dict[str, Any]]:
        """One ``RDS_INSTANCE`` row per member as ``describe_db_proxy_targets`` lists them, the
        writer ``READ_WRITE``, readers ``READ_ONLY``, each with ``health(member's server)``."""
        cluster, rows = self.cluster, []
        for member in cluster.topology.members:
            rows.append({
                "RdsResourceId": member.instance_id, "Endpoint": member.host,
                "Port": cluster.port,
                "TargetArn": f"arn:aws:rds:{self.region}:{self.account_id}:db:"
                             f"{member.instance_id}",
                "Role": "READ_WRITE" if member.instance_id == cluster.topology.writer
                        else "READ_ONLY",
                "TargetHealth": health(cluster.backends[member.instance_id])})
        return rows


class _ClusterAdmin(ReplicaAdminClient):
    """A PostgreSQL proxy endpoint's admin client in front of a cluster: it reads its own
    server, and stores derived passwords (end-to-end IAM) through the cluster's **current**
    writer, whatever failovers happened since it started."""

    def __init__(self, target: BackendAddress, cluster: EmulatedCluster, *,
                 timeout: float) -> None:
        self._cluster = cluster
        self._own = target
        super().__init__(target, None, timeout=timeout)

    @property
    def writer(self) -> AdminClient | None:
        """The current writer's admin client; None while this one's server is the writer."""
        writer = self._cluster.writer
        if BackendAddress.from_handle(writer.backend) == self._own:
            return None
        admin = getattr(writer.server, "admin", None)
        return admin if isinstance(admin, AdminClient) else None

    @writer.setter
    def writer(self, value: AdminClient | None) -> None:
        """Ignored: the writer is looked up at each use."""


@dataclass
class EmulatedProxyEndpoint:
    """A proxy endpoint made by ``create_db_proxy_endpoint``: its own name, port and
    certificate, the proxy's door and ``prx-…`` resource; ``close()`` stops it."""

    name: str
    target_role: TargetRole
    host: str
    port: int
    arn: str
    authenticator: Authenticator
    server: PostgresEndpoint | MysqlEndpoint
    _emulator: Emulator = field(repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def endpoint(self) -> Endpoint:
        """What client tokens through this endpoint are checked against (its own name)."""
        return self.authenticator.endpoint

    def close(self) -> None:
        """Stop listening and forget the name; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._emulator._loop.running:
                self._emulator.run(self.server.close())
        finally:
            resolver.unregister(self.host)


@dataclass(frozen=True)
class ProxyConfig:
    """One RDS Proxy as ``create_db_proxy`` describes it (the fields RDS has, in our spelling).

    ``auth``: its ``Auth`` entries (secret ARN + ``IAMAuth``); ``default_auth_scheme``
    ``NONE`` (secrets) or ``IAM_AUTH`` (end-to-end IAM: the ``role_arn`` role logs in to the
    database). ``require_tls`` is RDS's ``RequireTLS`` (default off, as in RDS).
    ``resource_id`` None: a new ``prx-…``; ``dns_label`` None: the emulator's.
    """

    name: str
    auth: tuple[ProxyAuth, ...] = ()
    default_auth_scheme: AuthScheme = "NONE"
    role_arn: str = ""
    require_tls: bool = False
    resource_id: str | None = None
    dns_label: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    throttling: bool = True

    def host_name(self, dns_label: str, region: str) -> str:
        """``<name>.proxy-<dns_label>.<region>.rds.amazonaws.com``."""
        return moto_proxies.proxy_host(self.name, dns_label, region)


@dataclass
class EmulatedProxy:
    """A running proxy; ``close()`` stops its endpoint (the target and its backend stay)."""

    config: ProxyConfig
    target: ProxyTarget
    host: str
    port: int
    resource_id: str
    door: ProxyDoor
    authenticator: Authenticator
    server: PostgresEndpoint | MysqlEndpoint
    events: EventLog
    _emulator: Emulator = field(repr=False)
    _closed: bool = field(default=False, repr=False)
    endpoints: dict[str, EmulatedProxyEndpoint] = field(default_factory=dict)
    """The endpoints added by ``add_endpoint`` (not the default one), by name."""

    @property
    def name(self) -> str:
        """The proxy name (``DBProxyName``)."""
        return self.config.name

    @property
    def target_id(self) -> str:
        """The target's identifier (``DBInstanceIdentifier`` or ``DBClusterIdentifier``)."""
        return str(getattr(self.target, "instance_id", None)
                   or getattr(self.target, "cluster_id", ""))

    @property
    def region(self) -> str:
        """The target's region (tokens are scoped to it)."""
        return self.target.region

    @property
    def account_id(self) -> str:
        """The target's account."""
        return self.target.account_id

    @property
    def ca_bundle(self) -> Path:
        """The emulator's CA bundle (the proxy's certificate is signed by it)."""
        return self.target.ca_bundle

    @property
    def endpoint(self) -> Endpoint:
        """What client tokens are checked against: the proxy's name, port and ``prx-`` id."""
        return self.authenticator.endpoint

    @property
    def arn(self) -> str:
        """``arn:aws:rds:<region>:<account>:db-proxy:prx-…``."""
        return f"arn:aws:rds:{self.region}:{self.account_id}:db-proxy:{self.resource_id}"

    def db_user_arn(self, db_user: str) -> str:
        """``arn:aws:rds-db:<region>:<account>:dbuser:prx-…/<db_user>``: what a client's policy
        must allow (the proxy's resource, not the database's)."""
        return f"arn:aws:rds-db:{self.region}:{self.account_id}:dbuser:{self.resource_id}/{db_user}"

    def target_health(self) -> dict[str, str]:
        """``TargetHealth`` as ``describe_db_proxy_targets`` reports it, checked now: each
        secret's credentials are tried against the real database (``AUTH_FAILURE`` when one is
        refused or unreadable); end-to-end IAM needs IAM enabled on the target."""
        if self.door.end_to_end:
            if not self.target.iam_enabled:
                return _unavailable("AUTH_FAILURE", "IAM database authentication is disabled on "
                                    "the target (end-to-end IAM needs it)")
            return {"State": "AVAILABLE"}
        if not self.door.auth:
            return _unavailable("AUTH_FAILURE", "Proxy does not have any registered credentials")
        return self.backend_health(self.target.backend)

    def backend_health(self, backend: BackendHandle) -> dict[str, str]:
        """``TargetHealth`` of one server of the target (a cluster member), checked now."""
        if self.door.end_to_end:
            return self.target_health()
        if not self.door.auth:
            return _unavailable("AUTH_FAILURE", "Proxy does not have any registered credentials")
        for entry in self.door.auth:
            try:
                creds = self.door.read_secret(entry.secret_arn)
            except LookupError as exc:
                return _unavailable("AUTH_FAILURE", f"secret {entry.secret_arn}: {exc}")
            problem = _try_login(self.target.engine_info, backend, creds)
            if problem is not None:
                return _unavailable(*problem)
        return {"State": "AVAILABLE"}

    def member_rows(self) -> list[dict[str, Any]]:
        """A cluster target's member rows for ``describe_db_proxy_targets`` (empty for an
        instance target), health checked now."""
        if not isinstance(self.target, ClusterProxyTarget):
            return []
        return self.target.member_rows(self.backend_health)

    def endpoint_host(self, endpoint_name: str) -> str:
        """``<endpoint>.endpoint.proxy-<label>.<region>.rds.amazonaws.com`` of this proxy."""
        label = self.host.split(".", 2)[1].removeprefix("proxy-")
        return moto_proxies.proxy_endpoint_host(endpoint_name, label, self.region)

    def add_endpoint(self, endpoint_name: str, target_role: TargetRole = "READ_ONLY", *,
                     arn: str | None = None, listen_host: str | None = None,
                     listen_port: int = 0) -> EmulatedProxyEndpoint:
        """Start a proxy endpoint (``create_db_proxy_endpoint``) and return it. Its tokens must
        be signed for its own name (``endpoint_host``) and port; policies still name the proxy's
        ``prx-…`` resource. ``listen_host`` None: the proxy's port on a loopback address of its
        own (RDS gives every endpoint of a proxy the same port), or a free port on the proxy's
        address when that is not a loopback one. ``READ_ONLY``: each new session goes to the
        next reader of the cluster target. Raises ``ValueError`` for a bad name, a name in use,
        or ``READ_ONLY`` without a cluster target that has a reader; ``OSError`` when it cannot
        listen."""
        if not _ENDPOINT_NAME.match(endpoint_name) or len(endpoint_name) > 63 \
                or endpoint_name == "default":
            raise ValueError(f"{endpoint_name!r} is not a proxy endpoint name (a letter, then "
                             "letters, digits or single hyphens, at most 63, not 'default')")
        if endpoint_name in self.endpoints:
            raise ValueError(f"proxy {self.name} already has an endpoint {endpoint_name!r}")
        if target_role not in ("READ_WRITE", "READ_ONLY"):
            raise ValueError(f"TargetRole must be READ_WRITE or READ_ONLY, not {target_role!r}")
        if target_role == "READ_ONLY" and not (isinstance(self.target, ClusterProxyTarget)
                                               and self.target.has_readers()):
            raise ValueError("a READ_ONLY proxy endpoint needs an Aurora cluster target with a "
                             "reader")
        host = self.endpoint_host(endpoint_name)
        if listen_host is None:
            listen_host, listen_port = _endpoint_place(self.config.listen_host, self.port)
        authenticator, server = _serve(
            self._emulator, self.config, self.door, self.target, target_role, host,
            self.resource_id, listen_host, listen_port)
        endpoint = EmulatedProxyEndpoint(
            name=endpoint_name, target_role=target_role, host=host, port=server.port,
            arn=arn or f"arn:aws:rds:{self.region}:{self.account_id}:db-proxy-endpoint:"
                       f"prx-endpoint-{new_proxy_resource_id()[4:]}",
            authenticator=authenticator, server=server, _emulator=self._emulator)
        self.endpoints[endpoint_name] = endpoint
        return endpoint

    def remove_endpoint(self, endpoint_name: str) -> None:
        """Stop the endpoint ``endpoint_name`` (``delete_db_proxy_endpoint``); KeyError if none."""
        self.endpoints.pop(endpoint_name).close()

    def events_since(self, cursor: int = 0) -> list[AuthEvent]:
        """This proxy's auth events (``instance_id`` is the proxy name) after ``cursor``."""
        return self.events.since(cursor, instance_id=self.name)

    def close(self) -> None:
        """Stop the proxy's endpoint and forget its name; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            for endpoint in list(self.endpoints.values()):
                endpoint.close()
        finally:
            self._emulator._forget_proxy(self)


def _unavailable(reason: str, description: str) -> dict[str, str]:
    return {"State": "UNAVAILABLE", "Reason": reason, "Description": description}


def _try_login(engine: Engine, backend: BackendHandle,
               creds: SecretCredentials) -> tuple[str, str] | None:
    """Log in to ``backend`` as the secret says; None when it worked, else (health reason,
    description). No password in the description."""
    import importlib

    dsn = backend.dsn(creds.username, creds.password)
    if engine.driver == "pymysql":  # a login check: the user may have no grant on that database
        dsn.pop("database", None)
        dsn.pop("db", None)
    module = importlib.import_module(engine.driver)
    try:
        module.connect(**dsn, connect_timeout=5).close()
    except Exception as exc:
        text = str(exc)
        sqlstate = getattr(exc, "sqlstate", None)
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if sqlstate in ("28P01", "28000") or code == 1045 \
                or "password authentication failed" in text:
            return ("AUTH_FAILURE", f"the database refused the credentials of the secret for "
                                    f"user {creds.username!r}")
        return ("CONNECTION_FAILED", f"cannot log in as {creds.username!r}: "
                                     f"{type(exc).__name__}")
    return None


def start_proxy(emulator: Emulator, config: ProxyConfig,
                target: ProxyTarget) -> EmulatedProxy:
    """Start ``config``'s proxy in front of ``target`` (an instance of ``emulator``) and return
    it. Raises ``ValueError`` for an invalid ``Auth``/``DefaultAuthScheme``, ``OSError`` when the
    address cannot be bound."""
    region, account = target.region, target.account_id
    host = config.host_name(config.dns_label or emulator.dns_label, region)
    resource_id = config.resource_id or new_proxy_resource_id()
    door = ProxyDoor(
        name=config.name, engine=target.engine, auth=config.auth,
        default_auth_scheme=config.default_auth_scheme, role_arn=config.role_arn,
        require_tls=config.require_tls, target=target.endpoint,
        read_secret=moto_proxies.MotoSecrets(account, region),
        check_role=moto_proxies.moto_role_check(
            region, getattr(getattr(target, "config", None), "global_keys", "documented")),
        target_iam_enabled=lambda: target.iam_enabled,
    )
    authenticator, server = _serve(emulator, config, door, target, "READ_WRITE", host,
                                   resource_id, config.listen_host, config.listen_port)
    proxy = EmulatedProxy(config=config, target=target, host=host, port=server.port,
                          resource_id=resource_id, door=door, authenticator=authenticator,
                          server=server, events=emulator.events, _emulator=emulator)
    emulator._add_proxy(proxy)
    return proxy


def _serve(emulator: Emulator, config: ProxyConfig, door: ProxyDoor, target: ProxyTarget,
           role: TargetRole, host: str, resource_id: str, listen_host: str, listen_port: int,
           ) -> tuple[Authenticator, PostgresEndpoint | MysqlEndpoint]:
    """One listening proxy endpoint called ``host`` (tokens bound to it) with ``door``'s rules;
    a cluster target's sessions follow ``role``. Registers ``host`` with the resolver."""
    region, account = target.region, target.account_id
    target_auth = target.authenticator
    authenticator = Authenticator(
        instance_id=config.name, engine=target.engine,
        endpoint=Endpoint(host=host, port=0, region=region, account_id=account,
                          resource_id=resource_id, instance_id=config.name),
        credentials=emulator.credentials, events=emulator.events,
        authorizer=ProxyAuthorizer(target_auth.authorizer, door), clock=emulator.clock,
        settings=target_auth.settings, iam_enabled=True, require_tls=True,
        throttle=Throttle() if config.throttling else None,
    )
    tls = emulator.ca.server_certificate(endpoint_names([host])).server_context()
    backend = (target.backend_for(role) if isinstance(target, ClusterProxyTarget)
               else target.backend)
    server: PostgresEndpoint | MysqlEndpoint
    if target.engine_info is POSTGRES:
        server = PostgresEndpoint(
            backend=BackendAddress.from_handle(backend), authenticator=authenticator,
            instance_secret=target.secret, tls_context=tls, door=door,
            settings=PostgresEndpointSettings(listen_host=listen_host, listen_port=listen_port))
    else:
        server = MysqlEndpoint(
            backend=BackendAddress.from_handle(backend), authenticator=authenticator,
            instance_secret=target.secret, tls_context=tls, door=door,
            settings=MysqlEndpointSettings(listen_host=listen_host, listen_port=listen_port),
            catalog_version=getattr(backend, "catalog_version", None))
    if isinstance(target, ClusterProxyTarget):
        server.backend_route = target.route(role)
        if isinstance(server, PostgresEndpoint):
            server.admin = _ClusterAdmin(BackendAddress.from_handle(backend), target.cluster,
                                         timeout=server.settings.backend_timeout)
    emulator._loop.run(server.start())
    authenticator.endpoint = Endpoint(host=host, port=server.port, region=region,
                                      account_id=account, resource_id=resource_id,
                                      instance_id=config.name)
    resolver.register(host, _connect_address(listen_host))
    return authenticator, server


def _endpoint_place(proxy_host: str, proxy_port: int) -> tuple[str, int]:
    """Where a proxy endpoint listens: ``proxy_port`` on a free random 127.x.y.z when the proxy
    listens on loopback (the same port, as on RDS), else a free port on ``proxy_host``."""
    if not proxy_host.startswith("127."):
        return proxy_host, 0
    for _ in range(20):
        address = (f"127.{secrets.randbelow(250) + 3}.{secrets.randbelow(256)}."
                   f"{secrets.randbelow(254) + 1}")
        with socket.socket() as probe:
            try:
                probe.bind((address, proxy_port))
            except OSError:
                continue
        return address, proxy_port
    return proxy_host, 0


def _connect_address(listen_host: str) -> str:
    if listen_host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding
        return "::1" if ":" in listen_host else "127.0.0.1"
    return listen_host


def config_from_moto(moto_proxy: Any) -> ProxyConfig:
    """The ``ProxyConfig`` of moto's ``DBProxy`` (after ``aws.proxies`` fixed it): its name,
    ``Auth``, scheme, role, ``RequireTLS``, ``prx-`` id and endpoint label."""
    auth = tuple(ProxyAuth(secret_arn=str(a.get("SecretArn", "")),
                           iam_auth=a.get("IAMAuth", "DISABLED"),
                           description=str(a.get("Description", "")))
                 for a in moto_proxy.auth)
    return ProxyConfig(
        name=moto_proxy.db_proxy_name, auth=auth,
        default_auth_scheme=getattr(moto_proxy, "default_auth_scheme", "NONE"),
        role_arn=moto_proxy.role_arn or "", require_tls=bool(moto_proxy.require_tls),
        resource_id=moto_proxy.unique_id, dns_label=moto_proxy.url_identifier,
    )


Placement = Callable[[str, EngineName], tuple[str, int]]
"""(proxy name, engine) → (listen host, listen port; 0 for a free one)."""


@contextmanager
def auto_start(emulator: Emulator, *, placement: Placement | None = None,
               on_start: Callable[[EmulatedProxy], None] | None = None,
               ) -> Iterator[list[EmulatedProxy]]:
    """While active, ``register_db_proxy_targets`` (boto3 against this process's moto) naming an
    instance or Aurora cluster of ``emulator`` starts the proxy in front of it (with the proxy
    endpoints already created), ``create_db_proxy_endpoint`` / ``delete_db_proxy_endpoint``
    start and stop proxy endpoints, and ``delete_db_proxy`` stops the proxy.
    Yields the list of proxies started so far; they are closed on exit. A target that is not an
    emulated instance stays moto's (health ``UNAVAILABLE``/``UNREACHABLE``). ``placement``
    says where each listens (None: a free port on 127.0.0.1); ``on_start`` is told of each."""
    started: list[EmulatedProxy] = []
    lock = threading.Lock()

    def find(moto_proxy: Any, target: Any) -> ProxyTarget | None:
        def mine(x: ProxyTarget) -> bool:
            return bool(x.account_id == moto_proxy.account_id and x.region == moto_proxy.region)
        if target.type == "TRACKED_CLUSTER":
            cluster = next((c for c in emulator.clusters
                            if c.cluster_id == target.rds_resource_id), None)
            found = ClusterProxyTarget(cluster) if cluster is not None else None
            return found if found is not None and mine(found) else None
        return next((i for i in emulator.instances
                     if i.instance_id == target.rds_resource_id and mine(i)), None)

    def on_targets(moto_proxy: Any, targets: list[Any]) -> None:
        for target in targets:
            served = find(moto_proxy, target)
            if served is None:
                continue
            config = config_from_moto(moto_proxy)
            if placement is not None:
                host, port = placement(config.name, served.engine)
                config = replace(config, listen_host=host, listen_port=port)
            proxy = start_proxy(emulator, config, served)
            try:
                for described in moto_proxies.proxy_endpoints(moto_proxy):
                    proxy.add_endpoint(described["DBProxyEndpointName"],
                                       described["TargetRole"],
                                       arn=described["DBProxyEndpointArn"])
            except BaseException:
                proxy.close()
                raise
            if isinstance(served, ClusterProxyTarget):  # health on the member rows
                moto_proxies.set_member_rows(target, proxy.member_rows)
            else:
                moto_proxies.set_health(target, proxy.target_health)
            if on_start is not None:
                on_start(proxy)
            with lock:
                started.append(proxy)

    def on_delete(moto_proxy: Any) -> None:
        with lock:
            gone = [p for p in started if p.resource_id == moto_proxy.unique_id]
        for proxy in gone:
            proxy.close()

    def on_endpoint(moto_proxy: Any, described: dict[str, Any], created: bool) -> None:
        from moto.rds.exceptions import InvalidParameterCombination

        with lock:
            running = [p for p in started if p.resource_id == moto_proxy.unique_id]
        for proxy in running:
            name = described["DBProxyEndpointName"]
            if not created:
                if name in proxy.endpoints:
                    proxy.remove_endpoint(name)
                continue
            try:
                proxy.add_endpoint(name, described["TargetRole"],
                                   arn=described["DBProxyEndpointArn"])
            except ValueError as exc:
                raise InvalidParameterCombination(str(exc)) from None

    moto_proxies.add_listeners(on_targets, on_delete)
    moto_proxies.add_endpoint_listener(on_endpoint)
    try:
        yield started
    finally:
        moto_proxies.remove_endpoint_listener(on_endpoint)
        moto_proxies.remove_listeners(on_targets, on_delete)
        with lock:
            proxies = list(started)
        for proxy in proxies:
            proxy.close()
