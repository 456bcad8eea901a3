"""The plugin's fixtures: session resources, the per-test ``rds_iam_db`` and its factory.

Layout as in pytest-postgresql: process/instance fixtures (session) vs the client-facing fixture
(function). Settings: factory argument > command line > ini.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import fields
from typing import Any

import pytest
from moto import mock_aws

from pytest_rdsiam.cluster import RdsIamCluster
from pytest_rdsiam.db import RdsIamDb, TestClock, moto_account
from pytest_rdsiam.plugin_state import EVENT_SOURCES, require_active
from pytest_rdsiam.pool import BackendPool, InstancePool
from pytest_rdsiam.proxy import ProxyFactory
from rdsiam_emulator.aws import rds as moto_rds
from rdsiam_emulator.aws.clock import aws_clock
from rdsiam_emulator.aws.rds import no_default_amis
from rdsiam_emulator.engines import ENGINE_NAMES, POSTGRES, EngineName
from rdsiam_emulator.instances import EmulatedInstance, InstanceConfig
from rdsiam_emulator.proxies import auto_start
from rdsiam_emulator.regions import region_problem

ENGINES = ENGINE_NAMES
FACTORY_ARGUMENTS = frozenset(f.name for f in fields(InstanceConfig)) - {"engine"}
"""What ``rds_iam_db_factory`` accepts besides ``engine``: the InstanceConfig fields, named as
the options are (``future_skew``, ``require_tls`` ...). docs/pytest.md lists them."""


@pytest.fixture(scope="session")
def rds_iam_backends(request: pytest.FixtureRequest) -> Iterator[BackendPool]:
    """Real servers, one per engine, started on first use and stopped at the end."""
    pool = BackendPool(require_active(request.config))
    yield pool
    pool.stop_all()  # a reused container is only detached: its handle knows (backends.md)


@pytest.fixture(scope="session")
def rds_iam_instances(request: pytest.FixtureRequest, rds_iam_backends: BackendPool,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstancePool]:
    """The emulator (event loop, CA, event log, clock) and the session's shared instances."""
    settings = require_active(request.config)
    pool = InstancePool(settings, tmp_path_factory.mktemp("rdsiam"), rds_iam_backends)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def rds_iam_instance(rds_iam_instances: InstancePool) -> EmulatedInstance:
    """The session's shared PostgreSQL instance (``rds_iam_instances.shared("mysql")``: MySQL)."""
    return rds_iam_instances.shared(POSTGRES.name)


_AUTHENTICATOR_STATE = ("iam_enabled", "require_tls", "settings", "throttle", "authorizer",
                        "credentials", "clock")
"""What a test can change on a shared instance's authenticator (``set_iam_enabled`` and direct
assignments through ``rds_iam_db.instance``): put back at teardown."""


def _restorer(instance: EmulatedInstance) -> Callable[[], None]:
    """Undo, at teardown, what a test changed on a shared instance: the authenticator's settings
    as they are now, and an empty throttling window (a burst must not throttle the next test)."""
    auth = instance.authenticator
    saved = {name: getattr(auth, name) for name in _AUTHENTICATOR_STATE}

    def restore() -> None:
        for name, value in saved.items():
            setattr(auth, name, value)
        if auth.throttle is not None:
            auth.throttle.reset()

    return restore


def _check_values(overrides: dict[str, Any]) -> None:
    """``ValueError`` for factory values the options would refuse too (a region botocore does
    not know, a negative or infinite future skew), before anything starts."""
    region = overrides.get("region")
    if region is not None:
        problem = region_problem(region)
        if problem:
            raise ValueError(f"rds_iam_db_factory: region: {problem}")
    skew = overrides.get("future_skew")
    if skew is not None and not (math.isfinite(skew) and skew >= 0):
        raise ValueError(f"rds_iam_db_factory: future_skew must be seconds >= 0, got {skew!r}")


class _TestScope:
    """What one test activated: moto, the AWS clock, databases to drop, instances to close."""

    def __init__(self, request: pytest.FixtureRequest, pool: InstancePool) -> None:
        self.request = request
        self.pool = pool
        self.stack = ExitStack()
        self.clock = TestClock(pool.clock)
        self._started = False
        self._engines: set[EngineName] = set()

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.pool.clock.reset()
        self.stack.enter_context(no_default_amis())  # also covers moto's reset at mock stop
        self.stack.enter_context(mock_aws())
        # registrations still waiting for moto's RDS (never imported in this test) end with it
        self.stack.callback(moto_rds.forget_pending)
        # plain boto3 clients of the test (and their IAM principals) land in the configured
        # account, not moto's default 123456789012
        self.stack.enter_context(moto_account(self.pool.settings.account_id))
        self.stack.enter_context(aws_clock(self.pool.clock))
        # register_db_proxy_targets naming an instance of the emulator starts a real proxy
        self.stack.enter_context(auto_start(self.pool.emulator))

    def open_db(self, instance: EmulatedInstance, *, owned: bool) -> RdsIamDb:
        self.start()
        self._engines.add(instance.engine)
        backend = instance.backend
        dbname = backend.fresh_database()
        self.stack.callback(backend.drop_database, dbname)
        if owned:
            self.stack.callback(instance.close)
        else:
            self.stack.callback(_restorer(instance))
        cursor = self.pool.events.mark()
        self.request.node.stash.setdefault(EVENT_SOURCES, []).append((instance, cursor))
        # made when moto's RDS is first imported: a test that never calls RDS skips its import
        moto_rds.register_when_imported(instance.moto_registration())
        return RdsIamDb(instance, dbname, self.clock, cursor)

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            # also the engines of instances this test owned (closed by now): their users
            # live on the engine's shared backend
            engines = self._engines | {i.engine for i in self.pool.emulator.instances}
            for engine in engines:
                self.pool.backends.get(engine).reset_users()


@pytest.fixture
def _rds_iam_scope(request: pytest.FixtureRequest,
                   rds_iam_instances: InstancePool) -> Iterator[_TestScope]:
    scope = _TestScope(request, rds_iam_instances)
    yield scope
    scope.close()


@pytest.fixture
def rds_iam_db(request: pytest.FixtureRequest, _rds_iam_scope: _TestScope) -> RdsIamDb:
    """A fresh database on the session's emulated instance; PostgreSQL unless parametrized
    indirectly with ``"mysql"``. moto is active and knows the instance for the whole test.

    Skips the test unless the plugin is active (``--rdsiam-emulator``); ``pytest.UsageError``
    for another engine name. What the test changed on the shared instance is put back after it.
    """
    engine = getattr(request, "param", POSTGRES.name)
    if engine not in ENGINES:
        raise pytest.UsageError(f"rds_iam_db engine must be one of {ENGINES}, not {engine!r}")
    return _rds_iam_scope.open_db(_rds_iam_scope.pool.shared(engine), owned=False)


@pytest.fixture
def rds_iam_db_factory(_rds_iam_scope: _TestScope) -> Callable[..., RdsIamDb]:
    """Make further instances: ``rds_iam_db_factory(engine="mysql", iam_enabled=False,
    region="eu-west-1", instance_id="orders", naming="loopback", future_skew=10, ...)`` (every
    name in ``FACTORY_ARGUMENTS``; ``TypeError`` for others). Each gets its own endpoint and
    resource id on the engine's shared backend; all are closed after the test. moto (and the
    test's account and clock) is active from set-up, before the first call.

    ``future_skew`` is in seconds. ``ValueError`` for an unknown engine and for values the
    command-line options would refuse too (an unknown region, a negative or infinite skew).
    """
    pool = _rds_iam_scope.pool
    _rds_iam_scope.start()  # a test may create IAM users or an organization before any instance

    def factory(engine: EngineName = POSTGRES.name, **overrides: Any) -> RdsIamDb:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        unknown = sorted(set(overrides) - FACTORY_ARGUMENTS)
        if unknown:
            raise TypeError(f"rds_iam_db_factory: unknown argument(s) {', '.join(unknown)}; "
                            f"accepted: engine, {', '.join(sorted(FACTORY_ARGUMENTS))}")
        _check_values(overrides)
        overrides.setdefault("instance_id", pool.next_id(engine))
        config = pool.default_config(engine, **{k: v for k, v in overrides.items()
                                                if v is not None})
        return _rds_iam_scope.open_db(pool.new_instance(config), owned=True)

    return factory


@pytest.fixture
def rds_iam_proxy_factory(request: pytest.FixtureRequest,
                          _rds_iam_scope: _TestScope) -> ProxyFactory:
    """RDS Proxies in front of a test's instances: ``rds_iam_proxy_factory(rds_iam_db,
    secrets={"app": "pw"}, iam_auth="REQUIRED")`` (see ``ProxyFactory``); ``.get(name)`` for a
    proxy the test created with its own boto3 calls. Stopped after the test."""
    return ProxyFactory(request, _rds_iam_scope.pool.emulator, _rds_iam_scope.start)


CLUSTER_ARGUMENTS = frozenset({"cluster_id", "readers", "region", "account_id", "iam_enabled",
                               "require_tls", "throttling", "future_skew", "global_keys",
                               "resource_id", "instance_ids"})
"""What ``rds_iam_cluster_factory`` accepts besides ``engine`` (``ClusterConfig`` fields)."""


@pytest.fixture
def rds_iam_cluster_factory(_rds_iam_scope: _TestScope) -> Iterator[Callable[..., RdsIamCluster]]:
    """Make emulated Aurora clusters: ``rds_iam_cluster_factory(readers=2, cluster_id="orders",
    iam_enabled=False, ...)`` (every name in ``CLUSTER_ARGUMENTS``; ``TypeError`` for others).
    Each cluster has its own real servers (a writer and ``readers`` streaming replicas, local
    PostgreSQL binaries), registered in moto; all are stopped after the test.

    ``engine="mysql"`` runs MariaDB GTID replicas (local MariaDB binaries). ``ValueError`` for
    another engine and for values the options would refuse; ``pytest.UsageError`` when the
    configured backend cannot run replicas (containers, external servers)."""
    from rdsiam_emulator.backends import BackendSpec
    from rdsiam_emulator.backends.replication import (
        start_local_mariadb_cluster,
        start_local_postgres_cluster,
    )
    from rdsiam_emulator.clusters import ClusterConfig, start_cluster

    pool = _rds_iam_scope.pool
    _rds_iam_scope.start()
    made: list[tuple[Any, list[Any]]] = []
    counter = iter(range(1, 1000))

    def factory(engine: EngineName = POSTGRES.name, **overrides: Any) -> RdsIamCluster:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        unknown = sorted(set(overrides) - CLUSTER_ARGUMENTS)
        if unknown:
            raise TypeError(f"rds_iam_cluster_factory: unknown argument(s) {', '.join(unknown)}; "
                            f"accepted: engine, {', '.join(sorted(CLUSTER_ARGUMENTS))}")
        _check_values(overrides)
        if pool.settings.backend not in ("auto", "local"):
            raise pytest.UsageError(
                f"--rdsiam-backend {pool.settings.backend}: clusters need local server "
                "binaries (container replicas are not done yet, docs/aurora.md)")
        s = pool.settings
        config = ClusterConfig(**{
            "engine": engine, "cluster_id": f"rdsiam-cluster-{next(counter)}",
            "region": s.region,
            "account_id": s.account_id, "require_tls": s.require_tls,
            "throttling": s.throttling, "future_skew": s.future_skew,
            "global_keys": s.global_keys,
            **{k: v for k, v in overrides.items() if v is not None}})
        writer: Any
        readers: list[Any]
        if engine == POSTGRES.name:
            writer, readers = start_local_postgres_cluster(
                BackendSpec(engine, provider="local", version=s.postgres_version),
                readers=config.readers)
        else:
            writer, readers = start_local_mariadb_cluster(
                BackendSpec(engine, provider="local"), readers=config.readers)
        try:
            cluster = start_cluster(pool.emulator, config, writer, readers)
        except BaseException:
            for handle in (*readers, writer):
                handle.stop()
            raise
        made.append((cluster, [writer, *readers]))
        cursor = pool.events.mark()
        sources = _rds_iam_scope.request.node.stash.setdefault(EVENT_SOURCES, [])
        sources.extend((member, cursor) for member in cluster.members.values())
        cluster.register_in_moto()
        return RdsIamCluster(cluster, _rds_iam_scope.clock, cursor)

    yield factory
    for cluster, handles in made:
        try:
            cluster.close()
        finally:
            for handle in handles:
                handle.stop()


@pytest.fixture
def rds_iam_cluster(rds_iam_cluster_factory: Callable[..., RdsIamCluster]) -> RdsIamCluster:
    """A fresh emulated Aurora PostgreSQL cluster (a writer and one reader, real servers) for
    this test; see ``rds_iam_cluster_factory``."""
    return rds_iam_cluster_factory()
