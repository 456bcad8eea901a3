"""Registering an emulated instance in moto's RDS, so ``describe_db_instances`` tells the truth.

Apps look up their database the way they do on AWS: ``describe_db_instances`` for the endpoint
address, port, ``DbiResourceId`` and ``IAMDatabaseAuthenticationEnabled``. moto generates a fixed
``<id>.aaaaaaaaaa.<region>.rds.amazonaws.com`` address as a read-only property; one small,
idempotent patch lets an instance carry the emulator's real endpoint name (others keep moto's).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from rdsiam_emulator.aws import patches as moto_patches
from rdsiam_emulator.aws.lazy import when_imported

_lock = threading.Lock()
_ADDRESS_ATTR = "_rdsiam_address"
_VERSIONS = {"postgres": "16.4", "mysql": "8.0.39", "mariadb": "11.4.3"}
"""The engine version moto reports when the backend's is unknown, by RDS engine name."""


@dataclass(frozen=True, slots=True)
class RdsRegistration:
    """What moto should report for one emulated instance."""

    instance_id: str
    engine: str
    """``postgres``, ``mysql`` or ``mariadb`` (the RDS engine name)."""
    region: str
    account_id: str
    address: str
    port: int
    resource_id: str
    master_username: str
    dbname: str
    iam_enabled: bool = True
    engine_version: str | None = None


def install() -> None:
    """Patch moto's ``DBInstance.address`` to honour a per-instance override (idempotent)."""
    moto_patches.install_when_imported()
    from moto.rds.models import DBInstance

    with _lock:
        current = DBInstance.__dict__.get("address")
        if isinstance(current, property) and getattr(current.fget, "_rdsiam", False):
            return
        original = current

        def address(self: Any) -> str:
            override = self.__dict__.get(_ADDRESS_ATTR)
            if override is not None:
                return str(override)
            assert isinstance(original, property) and original.fget is not None
            return str(original.fget(self))

        address._rdsiam = True  # type: ignore[attr-defined]
        setattr(DBInstance, "address", property(address))  # noqa: B010 - replacing moto's property


def install_when_imported() -> None:
    """``install()`` when moto's RDS is imported (at once if it is already)."""
    when_imported("moto.rds", install)


_pending: dict[tuple[str, str, str], RdsRegistration] = {}
"""Registrations waiting for moto's RDS to be imported, by (account, region, instance id)."""
_pending_lock = threading.Lock()
_armed = False
"""Whether a hook for the pending registrations waits for moto's RDS import."""


def register_when_imported(reg: RdsRegistration) -> None:
    """``register(reg)`` now if moto's RDS is imported, else as soon as it is (the first RDS call
    through moto imports it, and finds the instance there). What the test then reads is the same;
    a test that never calls RDS never pays the import (~2 s of CPU). ``forget_pending`` drops
    registrations not yet made (call it when the moto state they were meant for ends)."""
    global _armed
    with _pending_lock:
        deferred = "moto.rds" not in sys.modules
        if deferred:
            _pending[(reg.account_id, reg.region, reg.instance_id)] = reg
            arm, _armed = not _armed, True  # one hook however many tests wait
    if not deferred:
        register(reg)
    elif arm:
        when_imported("moto.rds", _register_pending)


def forget_pending() -> None:
    """Drop the registrations ``register_when_imported`` still holds back."""
    with _pending_lock:
        _pending.clear()


def _register_pending() -> None:
    global _armed
    with _pending_lock:
        waiting = list(_pending.values())
        _pending.clear()
        _armed = False
    for reg in waiting:
        register(reg)


def register(reg: RdsRegistration) -> Any:
    """Create (or replace) the instance in the current moto RDS state and return moto's object."""
    install()
    from moto.rds.models import rds_backends

    backend = rds_backends[reg.account_id][reg.region]
    if reg.instance_id in backend.databases:
        backend.delete_db_instance(reg.instance_id, None)
    engine, default_version = reg.engine, _VERSIONS.get(reg.engine)
    with no_default_amis():
        db = _create(backend, reg, engine, default_version)
    db.dbi_resource_id = reg.resource_id
    db.__dict__[_ADDRESS_ATTR] = reg.address
    return db


@contextmanager
def no_default_amis() -> Iterator[None]:
    """moto builds the EC2 backend for a new DB instance and loads ~1300 default AMIs (~0.5 s);
    registering an instance in every test must not pay that. An explicit setting wins."""
    if "MOTO_EC2_LOAD_DEFAULT_AMIS" in os.environ:
        yield
        return
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    try:
        yield
    finally:
        os.environ.pop("MOTO_EC2_LOAD_DEFAULT_AMIS", None)


def _create(backend: Any, reg: RdsRegistration, engine: str, version: str | None) -> Any:
    return backend.create_db_instance({
        "db_instance_identifier": reg.instance_id,
        "engine": engine,
        "engine_version": reg.engine_version or version,
        "db_instance_class": "db.t4g.micro",
        "allocated_storage": 20,
        "port": reg.port,
        "master_username": reg.master_username,
        "master_user_password": "x" * 16,  # never used: the real password lives in the backend
        "db_name": reg.dbname,
        "enable_iam_database_authentication": reg.iam_enabled,
        "storage_type": "gp3",
    })


def set_endpoint(db: Any, address: str, port: int) -> None:
    """Make moto's ``db`` (a ``DBInstance``) report the emulator's endpoint ``address:port``."""
    install()
    db.__dict__[_ADDRESS_ATTR] = address
    db.port = port
def set_iam_enabled(account_id: str, region: str, instance_id: str, enabled: bool, *,
                    missing_ok: bool = False) -> None:
    """Set what moto reports as ``IAMDatabaseAuthenticationEnabled`` for the instance.

    Raises KeyError when the current moto state has no such instance, unless ``missing_ok``.
    """
    with _pending_lock:
        key = (account_id, region, instance_id)
        if "moto.rds" not in sys.modules:
            if key in _pending:
                _pending[key] = replace(_pending[key], iam_enabled=enabled)
            elif not missing_ok:
                raise KeyError(instance_id)
            return
    # another thread may still be importing it (and about to register the pending instance
    # with the old flag): wait for that import and its hooks
    importlib.import_module("moto.rds")
    from moto.rds.models import rds_backends

    databases = rds_backends[account_id][region].databases
    if instance_id not in databases:
        if missing_ok:
            return
        raise KeyError(instance_id)
    databases[instance_id].enable_iam_database_authentication = enabled


@dataclass(frozen=True, slots=True)
class ClusterRegistration:
    """What moto should report for one emulated Aurora cluster and its members."""

    cluster_id: str
    engine: str
    """``aurora-postgresql`` or ``aurora-mysql``."""
    region: str
    account_id: str
    dns_label: str
    """The ``<id>`` of the endpoint names (moto's ``url_identifier``)."""
    port: int
    resource_id: str
    master_username: str
    dbname: str
    members: tuple[tuple[str, str, str], ...]
    """(instance id, instance endpoint name, DbiResourceId) per member."""
    writer: str
    iam_enabled: bool = True
    engine_version: str | None = None


_CLUSTER_VERSIONS = {"aurora-postgresql": "15.4", "aurora-mysql": "8.0.mysql_aurora.3.05.2"}


def default_cluster_parameter_group(engine: str, version: str | None) -> str:
    """RDS's default ``DBClusterParameterGroup`` name: ``default.aurora-postgresql<major>``, or
    ``default.aurora-mysql8.0`` (Aurora MySQL 3; moto says ``default.aurora8.0`` for all)."""
    if engine == "aurora-postgresql":
        major = (version or _CLUSTER_VERSIONS[engine]).split(".")[0]
        return f"default.aurora-postgresql{major}"
    return "default.aurora-mysql8.0"


def register_cluster(reg: ClusterRegistration) -> Any:
    """Create (or replace) the cluster and its members in the current moto RDS state, reporting
    the emulator's endpoint names, port, DbClusterResourceId, IAM flag and writer; returns
    moto's cluster."""
    install()
    from moto.rds.models import rds_backends

    backend = rds_backends[reg.account_id][reg.region]
    if reg.cluster_id in backend.clusters:
        for member in list(backend.clusters[reg.cluster_id].members):
            backend.delete_db_instance(member.db_instance_identifier, None)
        backend.delete_db_cluster(reg.cluster_id, None)
        # moto keeps the automated snapshot, named by the minute: creating again would clash
        prefix = f"rds:{reg.cluster_id}-"
        for name in [n for n in backend.cluster_snapshots if n.startswith(prefix)]:
            del backend.cluster_snapshots[name]
    version = reg.engine_version or _CLUSTER_VERSIONS.get(reg.engine)
    with no_default_amis():
        cluster = backend.create_db_cluster({
            "db_cluster_identifier": reg.cluster_id, "engine": reg.engine,
            "engine_version": version, "port": reg.port, "master_username": reg.master_username,
            "master_user_password": "x" * 16,  # never used: the real password is the backend's
            "database_name": reg.dbname,
            "enable_iam_database_authentication": reg.iam_enabled,
        })
        cluster.url_identifier = reg.dns_label
        cluster.db_cluster_resource_id = reg.resource_id
        cluster.parameter_group = default_cluster_parameter_group(reg.engine, version)
        for instance_id, address, resource_id in reg.members:
            db = backend.create_db_instance({
                "db_instance_identifier": instance_id, "engine": reg.engine,
                "engine_version": version, "db_instance_class": "db.r6g.large",
                "db_cluster_identifier": reg.cluster_id, "port": reg.port,
            })
            db.dbi_resource_id = resource_id
            db.__dict__[_ADDRESS_ATTR] = address
            db.is_cluster_writer = instance_id == reg.writer  # type: ignore[attr-defined]
    return cluster


def set_cluster_iam_enabled(account_id: str, region: str, cluster_id: str, enabled: bool, *,
                            missing_ok: bool = False) -> None:
    """Set the cluster's ``IAMDatabaseAuthenticationEnabled`` (its members report it too).

    Raises KeyError when the current moto state has no such cluster, unless ``missing_ok``."""
    from moto.rds.models import rds_backends

    clusters = rds_backends[account_id][region].clusters
    if cluster_id not in clusters:
        if missing_ok:
            return
        raise KeyError(cluster_id)
    clusters[cluster_id].iam_auth = enabled


def set_cluster_writer(account_id: str, region: str, cluster_id: str, writer: str, *,
                       missing_ok: bool = False) -> None:
    """Make ``writer`` the member moto reports with ``IsClusterWriter: True``.

    Raises KeyError when the cluster or the member is missing, unless ``missing_ok``."""
    from moto.rds.models import rds_backends

    backend = rds_backends[account_id][region]
    if cluster_id not in backend.clusters or writer not in backend.databases:
        if missing_ok:
            return
        raise KeyError(cluster_id if cluster_id not in backend.clusters else writer)
    for member in backend.clusters[cluster_id].members:
        member.is_cluster_writer = member.db_instance_identifier == writer
