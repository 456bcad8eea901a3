"""The RDS API's Aurora calls with real effects (``rds_api.RdsHooks`` hands them here): moto keeps
the record, ``cluster_runtime`` starts and stops what it describes (docs/server.md).

``CreateDBCluster`` (aurora-postgresql, aurora-mysql) records a cluster with no servers;
``CreateDBInstance`` with ``DBClusterIdentifier`` starts a member (the first the writer, later
ones real replicas; ``creating`` until it accepts logins); ``ModifyDBCluster`` with
``EnableIAMDatabaseAuthentication`` switches every member; ``FailoverDBCluster`` promotes a
reader for real before moto records it; ``DeleteDBInstance`` of a member and ``DeleteDBCluster``
stop servers. Moto refuses what RDS refuses (unknown cluster, an engine that does not match the
cluster's, deleting a cluster that still has instances).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from rdsiam_emulator.server.cluster_config import CLUSTER_ENGINES, ClusterSpec

if TYPE_CHECKING:
    from rdsiam_emulator.instances import EmulatedInstance
    from rdsiam_emulator.server.rds_api import RdsHooks
    from rdsiam_emulator.server.runtime import Runtime

log = logging.getLogger(__name__)

ACTIONS = frozenset({"CreateDBCluster", "DeleteDBCluster", "ModifyDBCluster",
                     "FailoverDBCluster"})
"""Cluster actions with real effects (besides ``CreateDBInstance`` into a cluster and
``DeleteDBInstance`` of a member, which ``rds_api`` routes here)."""
_CREATING = b"<DBInstanceStatus>creating</DBInstanceStatus>"


def call(hooks: RdsHooks, moto: Callable[..., Iterable[bytes]], environ: dict[str, Any],
         start_response: Any, action: str, region: str, params: dict[str, str]
         ) -> Iterable[bytes]:
    """Check, pass to moto, apply the effects of one cluster action; the WSGI answer."""
    from rdsiam_emulator.server.rds_api import _rds_error, call_moto, respond

    runtime = hooks.runtime
    name = params.get("DBClusterIdentifier", "").lower()
    refusal = _refusal(runtime, action, name, params)
    if refusal is not None:
        return _rds_error(start_response, *refusal)
    if action == "CreateDBInstance":
        ident = params.get("DBInstanceIdentifier", "").lower()
        with hooks._create_lock:  # the quota check and the new member are one step
            quota = hooks._create_refusal(ident)
            if quota is not None:
                return _rds_error(start_response, *quota)
            status, headers, data = call_moto(moto, environ)
            if status.startswith("200"):
                data = _member_created(runtime, region, name, ident, data)
        return respond(start_response, status, headers, data)
    if action == "FailoverDBCluster":
        target = params.get("TargetDBInstanceIdentifier", "").lower() or None
        slot = runtime.clusters.get(name)
        if slot is None:
            return _rds_error(start_response, "DBClusterNotFoundFault",
                              f"DBCluster {name} not found.")
        try:
            new = runtime.clusters.failover(name, target)
        except ValueError as exc:
            return _rds_error(start_response, "InvalidDBClusterStateFault", str(exc))
        except Exception as exc:  # the servers could not switch: say so, keep serving
            log.warning("failover of %s failed: %s", name, exc)
            return _rds_error(start_response, "InvalidDBClusterStateFault",
                              f"failover of {name} failed: {exc}")
        # moto records the writer the real failover chose (not its own first pick)
        body = urlencode({**params, "TargetDBInstanceIdentifier": new}).encode()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
    status, headers, data = call_moto(moto, environ)
    if status.startswith("200"):
        _after(runtime, action, region, name, params)
    return respond(start_response, status, headers, data)


def member_refusal(runtime: Runtime, action: str, ident: str, params: dict[str, str]
                   ) -> tuple[str, str] | None:
    """``(RDS error code, message)`` for an instance call a cluster member may not take:
    IAM is switched on the cluster, not on its instances."""
    if action == "ModifyDBInstance" and "EnableIAMDatabaseAuthentication" in params:
        slot = runtime.clusters.member_of(ident)
        if slot is not None:
            return ("InvalidParameterCombination",
                    f"{ident} is a member of DB cluster {slot.spec.name}: set IAM database "
                    "authentication on the cluster (modify_db_cluster)")
    return None


def _refusal(runtime: Runtime, action: str, name: str, params: dict[str, str]
             ) -> tuple[str, str] | None:
    """``(RDS error code, message)`` for what must not reach moto."""
    if action == "CreateDBCluster":
        engine = params.get("Engine", "").lower()
        if engine not in CLUSTER_ENGINES:
            return ("InvalidParameterValue", f"Engine {engine or '(none)'} is not run by the "
                    f"emulator for clusters: use one of {', '.join(CLUSTER_ENGINES)}")
        where = runtime.config.server.create_listen_host
        if where != "loopback":
            return ("InvalidParameterCombination",
                    "clusters listen on loopback addresses only (one per endpoint name); with "
                    f"server.create_listen_host = {where!r} clients outside could not reach "
                    "them: not done yet (docs/aurora.md)")
        if runtime.clusters.get(name) is not None:
            return ("DBClusterAlreadyExistsFault", f"DB Cluster {name} already exists")
    if action == "CreateDBInstance" and runtime.clusters.get(name) is None:
        return ("DBClusterNotFoundFault", f"DBCluster {name} not found.")
    if action == "ModifyDBCluster" and "NewDBClusterIdentifier" in params:
        return ("InvalidParameterCombination",
                "renaming a cluster is not supported by the emulator")
    return None


def _after(runtime: Runtime, action: str, region: str, name: str,
           params: dict[str, str]) -> None:
    """What a successful cluster call (moto said yes) does to real servers."""
    from moto.rds.models import rds_backends

    moto_cluster = rds_backends[runtime.config.server.account_id][region].clusters.get(name)
    if action == "CreateDBCluster" and moto_cluster is not None:
        moto_cluster.url_identifier = runtime.dns_label  # our names from the start
        spec = ClusterSpec(
            name=name, engine=moto_cluster.engine,  # type: ignore[arg-type]  # _refusal checked
            readers=0,
            iam_enabled=bool(moto_cluster.iam_auth),
            dbname=params.get("DatabaseName") or "app",
            master_username=params.get("MasterUsername") or None,
            master_password=params.get("MasterUserPassword") or None)
        runtime.clusters.create_from_api(spec, region, moto_cluster.db_cluster_resource_id)
    elif action == "ModifyDBCluster" and moto_cluster is not None \
            and "EnableIAMDatabaseAuthentication" in params:
        runtime.clusters.set_iam_enabled(name, bool(moto_cluster.iam_auth))
    elif action == "DeleteDBCluster":
        runtime.clusters.delete(name)


def _member_created(runtime: Runtime, region: str, name: str, ident: str,
                    data: bytes) -> bytes:
    """Start the member moto has just recorded; returns moto's answer edited to ``creating``
    without an endpoint (RDS has no address for it yet)."""
    from moto.rds.models import rds_backends

    from rdsiam_emulator.aws import rds as moto_rds
    from rdsiam_emulator.server.rds_api import _without_creating_endpoints

    backend = rds_backends[runtime.config.server.account_id][region]
    db = backend.databases.get(ident)
    slot = runtime.clusters.get(name)
    if db is None or slot is None:
        return data
    db.status = "creating"

    def ready(instance: EmulatedInstance | None, error: str | None) -> None:
        if backend.databases.get(ident) is not db:  # deleted meanwhile
            return
        if instance is None:
            db.status = "failed"
            return
        moto_rds.set_endpoint(db, instance.host, instance.port)
        db.dbi_resource_id = instance.resource_id  # a member's version is its cluster's
        cluster = slot.cluster
        if cluster is not None:
            moto_rds.set_cluster_writer(runtime.config.server.account_id, region, name,
                                        cluster.topology.writer, missing_ok=True)
        db.status = "available"

    runtime.clusters.add_member_from_api(slot, ident, ready)
    data = data.replace(b"<DBInstanceStatus>available</DBInstanceStatus>", _CREATING, 1)
    return _without_creating_endpoints(data)


def delete_member(runtime: Runtime, ident: str) -> None:
    """``DeleteDBInstance`` of a cluster member (moto has removed it): stop its server; the
    writer fails over first when readers remain."""
    slot = runtime.clusters.member_of(ident)
    if slot is None:
        return
    try:
        runtime.clusters.remove_member(slot, ident)
    except Exception as exc:  # the record is gone; say what could not be done
        runtime.say(f"cluster '{slot.spec.name}': deleting '{ident}': {exc}")

