"""Emulated RDS instances: a real backend, an endpoint in front of it, and its moto registration.

``Emulator`` is the process-level host (one event-loop thread, one CA, one event log, one clock,
the moto-backed credential lookup and policy evaluator). ``Emulator.start_instance`` puts an
endpoint in front of an already running backend and returns an ``EmulatedInstance`` with everything
a client needs: host name, port, CA bundle, resource id, dbuser ARNs. The pytest plugin, the demo
and the standalone server all go through here.
"""

from __future__ import annotations

import ipaddress
import secrets
import string
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from rdsiam_emulator import resolver
from rdsiam_emulator.auth.authenticator import Authenticator
from rdsiam_emulator.auth.credentials import CredentialLookup
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.throttle import Throttle
from rdsiam_emulator.auth.verifier import Authorizer, VerifierSettings
from rdsiam_emulator.aws import rds as moto_rds
from rdsiam_emulator.aws.patches import new_dbi_resource_id
from rdsiam_emulator.backends import BackendHandle, MysqlHandle
from rdsiam_emulator.clock import Clock, SystemClock
from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.event_loops import LoopName, loop_name
from rdsiam_emulator.endpoint.loop_thread import LoopThread
from rdsiam_emulator.endpoint.mysql import MysqlEndpoint, MysqlEndpointSettings
from rdsiam_emulator.endpoint.postgres import PostgresEndpoint, PostgresEndpointSettings
from rdsiam_emulator.engines import MYSQL, POSTGRES, Engine, EngineName
from rdsiam_emulator.engines import engine as engine_named
from rdsiam_emulator.events import AuthEvent, EventLog
from rdsiam_emulator.secrets import new_instance_secret
from rdsiam_emulator.tls import EmulatorCA, endpoint_names

if TYPE_CHECKING:
    from rdsiam_emulator.clusters import EmulatedCluster
    from rdsiam_emulator.proxies import EmulatedProxy, ProxyConfig, ProxyTarget

Naming = Literal["rds", "loopback"]
T = TypeVar("T")
_ENDPOINT_KINDS: dict[Engine, tuple[Any, Any]] = {
    POSTGRES: (PostgresEndpoint, PostgresEndpointSettings),
    MYSQL: (MysqlEndpoint, MysqlEndpointSettings),
}
"""engine → (endpoint class, settings class): same constructor shape."""
_DNS_ALPHABET = string.ascii_lowercase + string.digits


def new_dns_label() -> str:
    """The account/region part of RDS endpoint names (``c`` + 11 lower-case alphanumerics)."""
    return "c" + "".join(secrets.choice(_DNS_ALPHABET) for _ in range(11))


@dataclass(frozen=True)
class InstanceConfig:
    """One emulated instance as the user describes it."""

    instance_id: str
    engine: EngineName = POSTGRES.name
    region: str = "us-east-1"
    account_id: str = "123456789012"
    iam_enabled: bool = True
    naming: Naming = "rds"
    require_tls: bool = True
    future_skew: float = 300.0
    """Seconds a token's signing time may lie in the future."""
    throttling: bool = False
    """RDS's IAM connection throttling (more than 200 new connections/s with distinct tokens, or
    20/s from distinct identities, refused with ``throttled``): opt-in, because whether a burst
    crosses a per-second limit depends on how fast the machine running the tests is."""
    global_keys: str = "documented"
    """The request context's global condition keys: ``documented`` or ``none`` (the stricter
    reading; see docs/iam.md). Applies when the emulator's authorizer is an ``IamAuthorizer``."""
    resource_id: str | None = None
    """None: a fresh realistic DbiResourceId (``db-`` + 26 upper-case alphanumerics)."""
    dns_label: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    aliases: tuple[str, ...] = ()
    """Further names the endpoint answers to (certificate SANs, token host binding), e.g. a
    CNAME your application uses; nothing else is in the certificate."""

    def __post_init__(self) -> None:
        engine_named(self.engine)  # ValueError for an unknown engine name

    @property
    def engine_info(self) -> Engine:
        """The engine object ``engine`` names."""
        return engine_named(self.engine)

    def host_name(self, dns_label: str) -> str:
        """The endpoint host name: ``localhost`` for ``naming="loopback"``, else the RDS form
        ``<instance_id>.<dns_label>.<region>.rds.amazonaws.com``.
        """
        if self.naming == "loopback":
            return "localhost"
        return f"{self.instance_id}.{dns_label}.{self.region}.rds.amazonaws.com"


@dataclass
class EmulatedInstance:
    """A running emulated instance; ``close()`` stops its endpoint (not the backend)."""

    config: InstanceConfig
    backend: BackendHandle
    host: str
    port: int
    resource_id: str
    ca_bundle: Path
    authenticator: Authenticator
    server: PostgresEndpoint | MysqlEndpoint
    events: EventLog
    _emulator: Emulator = field(repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def instance_id(self) -> str:
        """The DB instance identifier (``InstanceConfig.instance_id``)."""
        return self.config.instance_id

    @property
    def engine(self) -> EngineName:
        """``postgres`` or ``mysql`` (the name; ``engine_info`` is the object)."""
        return self.config.engine

    @property
    def engine_info(self) -> Engine:
        """The engine object (``rdsiam_emulator.engines``)."""
        return self.config.engine_info

    @property
    def region(self) -> str:
        """The AWS region of the instance (tokens must be scoped to it)."""
        return self.config.region

    @property
    def account_id(self) -> str:
        """The 12-digit AWS account id that owns the instance (in its ``rds-db`` ARNs)."""
        return self.config.account_id

    @property
    def endpoint(self) -> Endpoint:
        """What tokens are checked against: host names, port, region, account and resource id."""
        return self.authenticator.endpoint

    @property
    def iam_enabled(self) -> bool:
        """Whether the endpoint currently accepts IAM logins (see ``set_iam_enabled``)."""
        return self.authenticator.iam_enabled

    @property
    def rds_engine(self) -> str:
        """The engine name RDS would report (``postgres``, ``mysql`` or ``mariadb``)."""
        if self.backend.flavour == "mariadb":
            return "mariadb"
        return self.config.engine

    def db_user_arn(self, db_user: str) -> str:
        """``arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<db_user>``, the resource
        a policy must allow ``rds-db:connect`` on (``Endpoint.db_user_arn``)."""
        arn = self.endpoint.db_user_arn(db_user)
        if arn is None:  # start_instance always gives the endpoint both
            raise AssertionError("the instance's endpoint lacks its account or resource id")
        return arn

    def set_iam_enabled(self, enabled: bool) -> None:
        """Like ``modify-db-instance --(no-)enable-iam-database-authentication``: the endpoint
        decides by it at once, and the current moto RDS state (when this instance is
        registered there, see ``register_in_moto``) reports it."""
        self.authenticator.iam_enabled = enabled
        moto_rds.set_iam_enabled(self.account_id, self.region, self.instance_id, enabled,
                                 missing_ok=True)

    def restart_backend(self) -> None:
        """Stop the real database server if it still runs (also after it was killed, e.g. by a
        fault test's ``kill -9``) and start it again on the same port with the same data.
        Sessions through the endpoint are lost; new logins work again without restarting the
        emulator. Blocks until the server accepts connections.

        Raises ``backends.BackendError`` for servers this process did not start (containers,
        external) or if the server does not come back.
        """
        self.backend.restart()

    @property
    def secret(self) -> bytes:
        """The per-instance secret its IAM users' backend passwords derive from (a proxy in
        front of the instance logs IAM users in with the same ones)."""
        secret: bytes = self.server._secret
        return secret

    def register_in_moto(self) -> Any:
        """Create this instance in the current moto RDS state (call inside ``mock_aws``) and
        return moto's ``DBInstance``."""
        return moto_rds.register(self.moto_registration())

    def moto_registration(self) -> moto_rds.RdsRegistration:
        """What moto's RDS should report for this instance (``aws.rds.register`` makes it so)."""
        return moto_rds.RdsRegistration(
            instance_id=self.instance_id, engine=self.rds_engine, region=self.region,
            account_id=self.account_id, address=self.host, port=self.port,
            resource_id=self.resource_id, master_username=self.backend.master_user,
            dbname=self.backend.dbname, iam_enabled=self.iam_enabled,
            engine_version=self.backend.version or None,
        )

    def events_since(self, cursor: int = 0) -> list[AuthEvent]:
        """This instance's auth events after ``cursor`` (an ``EventLog.mark()``), oldest first.

        Only events the shared log still holds are returned (it keeps the last ``maxlen``).
        """
        return self.events.since(cursor, instance_id=self.instance_id)

    def close(self) -> None:
        """Stop this instance's endpoint and forget its host names; idempotent.

        The backend keeps running (it belongs to the caller).
        """
        if self._closed:
            return
        self._closed = True
        self._emulator._forget(self)


def _resolvable(host: str, aliases: tuple[str, ...], naming: Naming) -> list[str]:
    """Names to make resolve to the emulator in this process: not IPs, not ``localhost``."""
    names = [host] if naming == "rds" else []
    for alias in aliases:
        try:
            ipaddress.ip_address(alias)
        except ValueError:
            if alias.lower() != "localhost":
                names.append(alias)
    return names


def _connect_address(listen_host: str) -> str:
    """Where this process reaches an endpoint listening on ``listen_host`` (e.g. 127.0.0.2)."""
    if listen_host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding
        return "::1" if ":" in listen_host else "127.0.0.1"
    return listen_host


class Emulator:
    """Hosts endpoints for any number of instances in one background event loop."""

    def __init__(
        self,
        state_dir: Path,
        *,
        clock: Clock | None = None,
        events: EventLog | None = None,
        credentials: CredentialLookup | None = None,
        authorizer: Authorizer | None = None,
        event_loop: str | None = None,
    ) -> None:
        """``event_loop``: ``auto`` (uvloop when installed), ``uvloop`` or ``asyncio``; unset
        means $RDSIAM_EVENT_LOOP, then ``auto`` (see ``endpoint.event_loops``)."""
        from rdsiam_emulator.aws.iam_state import MotoCredentials
        from rdsiam_emulator.iam.authorizer import IamAuthorizer

        self.state_dir = Path(state_dir)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.events = events if events is not None else EventLog()
        self.credentials: CredentialLookup = (
            credentials if credentials is not None else MotoCredentials()
        )
        self.authorizer: Authorizer = authorizer if authorizer is not None else IamAuthorizer()
        self.ca = EmulatorCA(self.state_dir / "ca", clock=self.clock)
        self.dns_label = new_dns_label()
        self._loop = LoopThread(loop=event_loop)
        self._instances: list[EmulatedInstance] = []
        self._proxies: list[EmulatedProxy] = []
        self._clusters: list[EmulatedCluster] = []
        self._lock = threading.Lock()
        moto_rds.install_when_imported()

    @property
    def event_loop(self) -> LoopName:
        """The kind of event loop the endpoints run on."""
        return loop_name(self._loop.loop)

    @property
    def ca_bundle(self) -> Path:
        """The PEM file with the emulator's CA certificate, which clients verify endpoints with."""
        return self.ca.bundle_path

    @property
    def instances(self) -> tuple[EmulatedInstance, ...]:
        """A snapshot of the instances started and not yet closed, in start order."""
        with self._lock:
            return tuple(self._instances)

    def start_instance(self, config: InstanceConfig, backend: BackendHandle, *,
                       secret: bytes | None = None,
                       tls_names: tuple[str, ...] = ()) -> EmulatedInstance:
        """Put an endpoint in front of ``backend`` and return the running instance.

        ``secret``: the instance secret the derived passwords come from (None: a new one; an
        Aurora cluster's members share one). ``tls_names``: further names in the certificate only
        (an Aurora member's cluster and reader endpoint names)."""
        if backend.engine != config.engine:
            raise ValueError(f"a {backend.engine} backend cannot serve a {config.engine} instance")
        host = config.host_name(config.dns_label or self.dns_label)
        # loopback naming declares 127.0.0.1 itself; RDS naming declares only the RDS name
        declared = ("127.0.0.1",) if config.naming == "loopback" else ()
        aliases = tuple(dict.fromkeys((*declared, *config.aliases)))
        resource_id = config.resource_id or new_dbi_resource_id()
        spec = Endpoint(host=host, port=0, region=config.region, aliases=aliases,
                        account_id=config.account_id, resource_id=resource_id,
                        instance_id=config.instance_id)
        authenticator = Authenticator(
            instance_id=config.instance_id, engine=config.engine, endpoint=spec,
            credentials=self.credentials, events=self.events,
            authorizer=_authorizer_for(self.authorizer, config.global_keys), clock=self.clock,
            settings=VerifierSettings(max_future_skew=timedelta(seconds=config.future_skew)),
            iam_enabled=config.iam_enabled, require_tls=config.require_tls,
            throttle=Throttle() if config.throttling else None,
        )
        tls = self.ca.server_certificate(
            endpoint_names([host, *aliases, *tls_names])).server_context()
        secret = secret if secret is not None else new_instance_secret()
        endpoint_cls, settings_cls = _ENDPOINT_KINDS[config.engine_info]
        server: PostgresEndpoint | MysqlEndpoint = endpoint_cls(
            # local servers' private socket included: cheaper than TCP for sessions
            backend=BackendAddress.from_handle(backend),
            authenticator=authenticator, instance_secret=secret, tls_context=tls,
            settings=settings_cls(listen_host=config.listen_host, listen_port=config.listen_port),
            **({"catalog_version": backend.catalog_version}
               if isinstance(backend, MysqlHandle) else {}),
        )
        self._loop.run(server.start())
        authenticator.endpoint = Endpoint(
            host=host, port=server.port, region=config.region, aliases=aliases,
            account_id=config.account_id, resource_id=resource_id,
            instance_id=config.instance_id)
        for name in _resolvable(host, aliases, config.naming):
            resolver.register(name, _connect_address(config.listen_host))
        instance = EmulatedInstance(
            config=config, backend=backend, host=host, port=server.port,
            resource_id=resource_id, ca_bundle=self.ca.bundle_path,
            authenticator=authenticator, server=server, events=self.events, _emulator=self,
        )
        with self._lock:
            self._instances.append(instance)
        return instance

    @property
    def proxies(self) -> tuple[EmulatedProxy, ...]:
        """A snapshot of the RDS Proxies started and not yet closed, in start order."""
        with self._lock:
            return tuple(self._proxies)

    def proxy(self, name: str) -> EmulatedProxy:
        """The running proxy called ``name``; KeyError if there is none."""
        for proxy in self.proxies:
            if proxy.name == name:
                return proxy
        raise KeyError(name)

    def start_proxy(self, config: ProxyConfig, target: ProxyTarget) -> EmulatedProxy:
        """Start an RDS Proxy in front of ``target`` (``proxies.start_proxy``)."""
        from rdsiam_emulator.proxies import start_proxy

        return start_proxy(self, config, target)

    @property
    def clusters(self) -> tuple[EmulatedCluster, ...]:
        """A snapshot of the Aurora clusters started and not yet closed (proxy targets)."""
        with self._lock:
            return tuple(self._clusters)

    def _add_cluster(self, cluster: EmulatedCluster) -> None:
        with self._lock:
            self._clusters.append(cluster)

    def _forget_cluster(self, cluster: EmulatedCluster) -> None:
        with self._lock:
            if cluster in self._clusters:
                self._clusters.remove(cluster)

    def _add_proxy(self, proxy: EmulatedProxy) -> None:
        with self._lock:
            self._proxies.append(proxy)

    def _forget_proxy(self, proxy: EmulatedProxy) -> None:
        with self._lock:
            if proxy in self._proxies:
                self._proxies.remove(proxy)
        try:
            if self._loop.running:
                self._loop.run(proxy.server.close())
        finally:
            resolver.unregister(proxy.host)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the endpoints' event loop and return its result (blocking)."""
        return self._loop.run(coro)

    def _forget(self, instance: EmulatedInstance) -> None:
        with self._lock:
            if instance in self._instances:
                self._instances.remove(instance)
        try:
            if self._loop.running:
                self._loop.run(instance.server.close())
        finally:
            for name in _resolvable(instance.host, instance.endpoint.aliases,
                                    instance.config.naming):
                resolver.unregister(name)

    def close(self) -> None:
        """Stop every endpoint and the event loop; backends are the caller's to stop."""
        for proxy in self.proxies:
            proxy.close()
        for instance in self.instances:
            instance.close()
        self._loop.stop()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _authorizer_for(authorizer: Authorizer, global_keys: str) -> Authorizer:
    """The instance's reading of the request context on the emulator's IAM authorizer."""
    from rdsiam_emulator.iam.authorizer import IamAuthorizer
    from rdsiam_emulator.iam.request_context import GLOBAL_KEYS_MODES

    if global_keys not in GLOBAL_KEYS_MODES:
        raise ValueError(f"global_keys must be one of {', '.join(GLOBAL_KEYS_MODES)}, "
                         f"got {global_keys!r}")
    if isinstance(authorizer, IamAuthorizer) and authorizer.global_keys != global_keys:
        return authorizer.with_global_keys(global_keys)
    return authorizer
