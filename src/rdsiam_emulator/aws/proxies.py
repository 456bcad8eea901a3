"""RDS Proxy in moto: what ``create_db_proxy`` and friends report, and the hooks that give a
proxy real effects.

moto (5.2) stores proxies (``DBProxy``) and their targets but differs from RDS where clients
notice (docs/rds-proxy.md): its endpoint is ``<name>.db-proxy-<id>…`` (RDS:
``<name>.proxy-<id>.<region>.rds.amazonaws.com``), it drops ``DefaultAuthScheme``, needs ``Auth``
(optional in RDS since end-to-end IAM), echoes ``Auth`` entries without their defaults, accepts
any ``IAMAuth``, registers unknown instances, leaves an instance target's endpoint and port empty
and reports every target ``AVAILABLE``. The wrappers here fix those, idempotently, and call the
listeners ``proxies.auto_start`` registers (the front door starts when a target is registered).
Target health comes from a function the started proxy puts on moto's target
(``set_health``): it logs in with each secret for real.

Proxy endpoints (``create_db_proxy_endpoint``, ``describe_db_proxy_endpoints``,
``delete_db_proxy_endpoint``), which moto lacks, are added here; they are kept on moto's proxy and
told to the endpoint listeners (the real endpoint starts with them). A cluster target is reported
as RDS does: its ``TRACKED_CLUSTER`` row and one ``RDS_INSTANCE`` row per member.

Also the readers the proxy's door uses: ``MotoSecrets`` (Secrets Manager values) and
``moto_role_check`` (the proxy role's ``rds-db:connect`` decision by our policy evaluator).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from rdsiam_emulator.auth.proxy import (
    AUTH_SCHEMES,
    IAM_AUTH_MODES,
    RoleCheck,
    SecretCredentials,
)
from rdsiam_emulator.aws.lazy import when_imported
from rdsiam_emulator.reasons import Reason, Rejection

_lock = threading.Lock()
_MARK = "_rdsiam_proxy_patch"
_HEALTH_ATTR = "_rdsiam_health"
_MEMBERS_ATTR = "_rdsiam_members"
_ENDPOINTS_ATTR = "_rdsiam_endpoints"
TARGET_ROLES = ("READ_WRITE", "READ_ONLY")
"""``DBProxyEndpoint.TargetRole`` values."""
TargetListener = Callable[[Any, list[Any]], None]
"""Called with moto's ``DBProxy`` and the ``DBProxyTarget`` objects just registered (inside
moto's call: an exception becomes the API's error)."""
DeleteListener = Callable[[Any], None]
"""Called with moto's ``DBProxy`` when it is deleted."""
_AUTH_FIELDS = ("Description", "UserName", "AuthScheme", "SecretArn", "IAMAuth",
                "ClientPasswordAuthType")
"""``UserAuthConfig`` members (moto's parsed params iterate in snake case)."""
EndpointListener = Callable[[Any, dict[str, Any], bool], None]
"""Called with moto's ``DBProxy``, a proxy endpoint's description and True when it is created
(before it is stored: an exception becomes the API's error), False once it is deleted."""
MemberRows = Callable[[], list[dict[str, Any]]]
"""A cluster target's member rows (``DBProxyTarget`` fields, ``TargetHealth`` included)."""
_target_listeners: list[TargetListener] = []
_endpoint_listeners: list[EndpointListener] = []
_delete_listeners: list[DeleteListener] = []


def proxy_host(name: str, label: str, region: str) -> str:
    """RDS's default proxy endpoint: ``<name>.proxy-<label>.<region>.rds.amazonaws.com``."""
    return f"{name}.proxy-{label}.{region}.rds.amazonaws.com"


def proxy_endpoint_host(endpoint_name: str, label: str, region: str) -> str:
    """A proxy endpoint made by ``create_db_proxy_endpoint``:
    ``<endpoint>.endpoint.proxy-<label>.<region>.rds.amazonaws.com``."""
    return f"{endpoint_name}.endpoint.proxy-{label}.{region}.rds.amazonaws.com"


def add_endpoint_listener(listener: EndpointListener) -> None:
    """Call ``listener`` on every ``create_db_proxy_endpoint`` / ``delete_db_proxy_endpoint``."""
    when_imported("moto.rds", install)
    with _lock:
        _endpoint_listeners.append(listener)


def remove_endpoint_listener(listener: EndpointListener) -> None:
    """Undo ``add_endpoint_listener`` (a missing one is ignored)."""
    with _lock:
        if listener in _endpoint_listeners:
            _endpoint_listeners.remove(listener)


def proxy_endpoints(moto_proxy: Any) -> list[dict[str, Any]]:
    """The endpoints ``create_db_proxy_endpoint`` made for moto's proxy (not the default)."""
    return list(moto_proxy.__dict__.get(_ENDPOINTS_ATTR, {}).values())


def set_member_rows(target: Any, rows: MemberRows) -> None:
    """Make moto's ``TRACKED_CLUSTER`` target describe its members with ``rows()``."""
    install()
    target.__dict__[_MEMBERS_ATTR] = rows


def add_listeners(on_targets: TargetListener, on_delete: DeleteListener) -> None:
    """Call ``on_targets`` after every ``register_db_proxy_targets`` and ``on_delete`` after
    every ``delete_db_proxy`` (until ``remove_listeners``)."""
    when_imported("moto.rds", install)
    with _lock:
        _target_listeners.append(on_targets)
        _delete_listeners.append(on_delete)


def remove_listeners(on_targets: TargetListener, on_delete: DeleteListener) -> None:
    """Undo ``add_listeners`` (missing ones are ignored)."""
    with _lock:
        if on_targets in _target_listeners:
            _target_listeners.remove(on_targets)
        if on_delete in _delete_listeners:
            _delete_listeners.remove(on_delete)


def set_health(target: Any, health: Callable[[], dict[str, str]]) -> None:
    """Make moto's ``DBProxyTarget`` report ``health()`` as its ``TargetHealth``."""
    install()
    target.__dict__[_HEALTH_ATTR] = health


def auth_defaults(entry: dict[str, Any]) -> dict[str, Any]:
    """An ``Auth`` entry as RDS reports it: ``AuthScheme`` SECRETS and ``IAMAuth`` DISABLED when
    not given. Raises moto's ``InvalidParameterValue`` for an ``IAMAuth`` other than
    REQUIRED/DISABLED (``ENABLED`` is for SQL Server proxies)."""
    from moto.rds.exceptions import InvalidParameterValue

    out = {"AuthScheme": "SECRETS", "IAMAuth": "DISABLED", **entry}
    if out["IAMAuth"] not in IAM_AUTH_MODES:
        raise InvalidParameterValue(
            f"IAMAuth {out['IAMAuth']!r} is not valid for this engine family; use one of "
            f"{', '.join(IAM_AUTH_MODES)}")
    return out


def install() -> None:
    """Apply the wrappers to moto's RDS proxy code (idempotent, per moto class)."""
    from moto.rds.models import DBProxyTarget, RDSBackend
    from moto.rds.responses import RDSResponse

    with _lock:
        if getattr(RDSResponse.create_db_proxy, _MARK, False):
            return
        _wrap_create(RDSResponse)
        _wrap_register(RDSBackend)
        _wrap_delete(RDSBackend)
        _wrap_health(DBProxyTarget)
        _wrap_describe_targets(RDSBackend)
        _add_endpoint_actions(RDSResponse)


def _marked(fn: Any) -> Any:
    setattr(fn, _MARK, True)
    return fn


def _wrap_create(response_cls: Any) -> None:
    from moto.rds.exceptions import InvalidParameterValue

    original = response_cls.create_db_proxy

    def create_db_proxy(self: Any) -> Any:
        params = self.params
        scheme = params.get("DefaultAuthScheme") or "NONE"
        if scheme not in AUTH_SCHEMES:
            raise InvalidParameterValue(
                f"DefaultAuthScheme {scheme!r} is not valid; use one of {', '.join(AUTH_SCHEMES)}")
        if not params.get("Auth") and scheme != "IAM_AUTH":
            raise InvalidParameterValue(
                "Auth is required unless DefaultAuthScheme is IAM_AUTH (end-to-end IAM)")
        params["Auth"] = [auth_defaults({k: a[k] for k in _AUTH_FIELDS if k in a})
                          for a in params.get("Auth") or []]
        result = original(self)
        proxy = self.backend.db_proxies[params["DBProxyName"]]
        proxy.default_auth_scheme = scheme
        proxy.endpoint = proxy_host(proxy.db_proxy_name, proxy.url_identifier, proxy.region)
        return result

    response_cls.create_db_proxy = _marked(create_db_proxy)


def _wrap_register(backend_cls: Any) -> None:
    from moto.rds.exceptions import (
        DBClusterNotFoundError,
        DBInstanceNotFoundError,
        DBProxyNotFoundFault,
        InvalidParameterCombination,
    )

    original = backend_cls.register_db_proxy_targets

    def register_db_proxy_targets(self: Any, db_proxy_name: str, target_group_name: str,
                                  db_cluster_identifiers: list[str],
                                  db_instance_identifiers: list[str]) -> Any:
        if db_proxy_name not in self.db_proxies:
            raise DBProxyNotFoundFault(db_proxy_name)
        for instance_id in db_instance_identifiers:
            if instance_id not in self.databases:
                raise DBInstanceNotFoundError(instance_id)
        for cluster_id in db_cluster_identifiers:
            if cluster_id not in self.clusters:
                raise DBClusterNotFoundError(cluster_id)
        family = str(getattr(self.db_proxies[db_proxy_name], "engine_family", "")).upper()
        engines = [self.databases[i].engine for i in db_instance_identifiers]
        engines += [self.clusters[c].engine for c in db_cluster_identifiers]
        for engine in engines:
            wanted = "POSTGRESQL" if "postgres" in str(engine) else "MYSQL"
            if family and family != wanted:
                raise InvalidParameterCombination(
                    f"the proxy's EngineFamily is {family}; a {engine} target needs {wanted}")
        group = self.db_proxies[db_proxy_name].proxy_target_groups[
            target_group_name or "default"]
        if len(group.targets) + len(db_cluster_identifiers) + len(db_instance_identifiers) > 1:
            raise InvalidParameterCombination(
                "a proxy's target group has one DB instance or one DB cluster")
        targets = original(self, db_proxy_name, target_group_name, db_cluster_identifiers,
                           db_instance_identifiers)
        for target in targets:
            if target.type == "RDS_INSTANCE":
                db = self.databases[target.rds_resource_id]
                target.endpoint = db.address
                target.port = db.port
                target.target_arn = db.arn
                target.role = "READ_WRITE"
            elif target.type == "TRACKED_CLUSTER":
                cluster = self.clusters[target.rds_resource_id]
                target.endpoint = cluster.endpoint
                target.port = cluster.port
                target.target_arn = cluster.db_cluster_arn
                target.tracked_cluster_id = cluster.db_cluster_identifier
        with _lock:
            listeners = list(_target_listeners)
        for listener in listeners:
            listener(self.db_proxies[db_proxy_name], targets)
        return targets

    backend_cls.register_db_proxy_targets = _marked(register_db_proxy_targets)


def _wrap_delete(backend_cls: Any) -> None:
    from moto.rds.exceptions import DBProxyNotFoundFault

    original = backend_cls.delete_db_proxy

    def delete_db_proxy(self: Any, proxy_name: str) -> Any:
        if proxy_name not in self.db_proxies:
            raise DBProxyNotFoundFault(proxy_name)
        proxy = original(self, proxy_name)
        with _lock:
            listeners = list(_delete_listeners)
        for listener in listeners:
            listener(proxy)
        return proxy

    backend_cls.delete_db_proxy = _marked(delete_db_proxy)


def _wrap_describe_targets(backend_cls: Any) -> None:
    from moto.rds.models import DBProxyTarget

    original = backend_cls.describe_db_proxy_targets

    def describe_db_proxy_targets(self: Any, proxy_name: str) -> list[Any]:
        out: list[Any] = []
        for target in original(self, proxy_name):
            out.append(target)
            if target.type != "TRACKED_CLUSTER":
                continue
            rows = target.__dict__.get(_MEMBERS_ATTR)
            for row in rows() if rows is not None else _unserved_members(self, target):
                member = DBProxyTarget(self, row["RdsResourceId"], row["Endpoint"],
                                       "RDS_INSTANCE")
                member._registering = False
                member.port, member.role = row["Port"], row["Role"]
                member.target_arn = row["TargetArn"]
                member.__dict__["tracked_cluster_id"] = target.rds_resource_id
                health = dict(row["TargetHealth"])
                member.__dict__[_HEALTH_ATTR] = lambda health=health: health
                out.append(member)
        return out

    backend_cls.describe_db_proxy_targets = _marked(describe_db_proxy_targets)


def _unserved_members(backend: Any, target: Any) -> list[dict[str, Any]]:
    """Member rows of a cluster no emulated cluster serves: nothing answers there."""
    cluster = backend.clusters.get(target.rds_resource_id)
    rows: list[dict[str, Any]] = []
    for member in getattr(cluster, "members", []):
        rows.append({
            "RdsResourceId": member.db_instance_identifier, "Endpoint": member.address,
            "Port": member.port, "TargetArn": member.arn,
            "Role": "READ_WRITE" if getattr(member, "is_cluster_writer", False) else "READ_ONLY",
            "TargetHealth": {"State": "UNAVAILABLE", "Reason": "UNREACHABLE",
                             "Description": "no emulated cluster serves this target"}})
    return rows


def _wrap_health(target_cls: Any) -> None:
    original = target_cls.__dict__["target_health"]

    def target_health(self: Any) -> dict[str, str] | None:
        health = self.__dict__.get(_HEALTH_ATTR)
        if health is not None:
            return dict(health())
        if self.type == "RDS_INSTANCE":  # not an emulated instance: nothing answers there
            return {"State": "UNAVAILABLE", "Reason": "UNREACHABLE",
                    "Description": "no emulated instance serves this target"}
        if self.type == "TRACKED_CLUSTER":  # RDS reports health on the member rows only
            return None
        assert isinstance(original, property) and original.fget is not None
        return dict(original.fget(self))

    target_cls.target_health = property(target_health)


def _add_endpoint_actions(response_cls: Any) -> None:
    """``CreateDBProxyEndpoint``, ``DescribeDBProxyEndpoints``, ``DeleteDBProxyEndpoint``."""
    from moto.core.responses import ActionResult
    from moto.rds.exceptions import (
        DBProxyNotFoundFault,
        InvalidParameterCombination,
        InvalidParameterValue,
        RDSClientError,
    )

    def endpoints_of(backend: Any, proxy_name: str) -> dict[str, dict[str, Any]]:
        if proxy_name not in backend.db_proxies:
            raise DBProxyNotFoundFault(proxy_name)
        found: dict[str, dict[str, Any]] = backend.db_proxies[proxy_name].__dict__.setdefault(
            _ENDPOINTS_ATTR, {})
        return found

    def create_db_proxy_endpoint(self: Any) -> Any:
        params = self.params
        proxy_name = str(params.get("DBProxyName") or "")
        name = str(params.get("DBProxyEndpointName") or "")
        role = params.get("TargetRole") or "READ_WRITE"
        backend = self.backend
        endpoints = endpoints_of(backend, proxy_name)
        if not _ENDPOINT_NAME.match(name) or len(name) > 63 or name == "default":
            raise InvalidParameterValue(
                f"DBProxyEndpointName {name!r} is not valid: a letter, then letters, digits or "
                "single hyphens, at most 63 characters, not 'default'")
        if role not in TARGET_ROLES:
            raise InvalidParameterValue(f"TargetRole {role!r} is not valid; use one of "
                                        f"{', '.join(TARGET_ROLES)}")
        if any(name in p.__dict__.get(_ENDPOINTS_ATTR, {}) for p in backend.db_proxies.values()):
            raise RDSClientError("DBProxyEndpointAlreadyExistsFault",
                                 f"a DB proxy endpoint named {name} already exists")
        proxy = backend.db_proxies[proxy_name]
        if role == "READ_ONLY" and not _has_cluster_readers(backend, proxy):
            raise InvalidParameterCombination(
                "a READ_ONLY proxy endpoint needs a proxy whose target is an Aurora DB cluster "
                "with at least one reader")
        from moto.moto_api._internal import mock_random

        suffix = "".join(mock_random.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                         for _ in range(17))
        subnets = list(params.get("VpcSubnetIds") or proxy.vpc_subnet_ids)
        description = {
            "DBProxyEndpointName": name,
            "DBProxyEndpointArn": f"arn:aws:rds:{proxy.region}:{proxy.account_id}:"
                                  f"db-proxy-endpoint:prx-endpoint-{suffix}",
            "DBProxyName": proxy_name, "Status": "available", "VpcId": proxy.vpc_id,
            "VpcSecurityGroupIds": list(params.get("VpcSecurityGroupIds")
                                        or proxy.vpc_security_group_ids),
            "VpcSubnetIds": subnets,
            "Endpoint": proxy_endpoint_host(name, proxy.url_identifier, proxy.region),
            "CreatedDate": proxy.created_date, "TargetRole": role, "IsDefault": False,
        }
        with _lock:
            listeners = list(_endpoint_listeners)
        for listener in listeners:
            listener(proxy, description, True)
        endpoints[name] = description
        return ActionResult({"DBProxyEndpoint": description})

    def describe_db_proxy_endpoints(self: Any) -> Any:
        params = self.params
        backend = self.backend
        wanted = params.get("DBProxyEndpointName")
        proxy_name = params.get("DBProxyName")
        proxies = ([backend.db_proxies[proxy_name]] if proxy_name in backend.db_proxies
                   else [] if proxy_name else list(backend.db_proxies.values()))
        if proxy_name and not proxies:
            raise DBProxyNotFoundFault(proxy_name)
        rows: list[dict[str, Any]] = []
        for proxy in proxies:
            rows.append({
                "DBProxyEndpointName": "default", "DBProxyName": proxy.db_proxy_name,
                "Status": "available", "VpcId": proxy.vpc_id,
                "VpcSecurityGroupIds": list(proxy.vpc_security_group_ids),
                "VpcSubnetIds": list(proxy.vpc_subnet_ids), "Endpoint": proxy.endpoint,
                "CreatedDate": proxy.created_date, "TargetRole": "READ_WRITE",
                "IsDefault": True})
            rows.extend(proxy_endpoints(proxy))
        if wanted:
            rows = [r for r in rows if r["DBProxyEndpointName"] == wanted]
            if not rows:
                raise RDSClientError("DBProxyEndpointNotFoundFault",
                                     f"DB proxy endpoint {wanted} not found")
        return ActionResult({"DBProxyEndpoints": rows})

    def delete_db_proxy_endpoint(self: Any) -> Any:
        name = self.params.get("DBProxyEndpointName")
        for proxy in self.backend.db_proxies.values():
            endpoints = proxy.__dict__.get(_ENDPOINTS_ATTR, {})
            if name in endpoints:
                description = endpoints.pop(name)
                with _lock:
                    listeners = list(_endpoint_listeners)
                for listener in listeners:
                    listener(proxy, description, False)
                return ActionResult({"DBProxyEndpoint": {**description, "Status": "deleting"}})
        raise RDSClientError("DBProxyEndpointNotFoundFault",
                             f"DB proxy endpoint {name} not found")

    for fn in (create_db_proxy_endpoint, describe_db_proxy_endpoints, delete_db_proxy_endpoint):
        setattr(response_cls, fn.__name__, _marked(fn))


_ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$")
"""Proxy endpoint names: a letter, then letters, digits and single hyphens."""


def _has_cluster_readers(backend: Any, proxy: Any) -> bool:
    for group in proxy.proxy_target_groups.values():
        for target in group.targets:
            if target.type == "TRACKED_CLUSTER":
                cluster = backend.clusters.get(target.rds_resource_id)
                members = getattr(cluster, "members", [])
                return any(not getattr(m, "is_cluster_writer", False) for m in members) \
                    and len(members) > 1
    return False


class MotoSecrets:
    """``auth.proxy.SecretReader`` over moto's in-process Secrets Manager state: the secret's
    ``SecretString`` must be JSON with string ``username`` and ``password``."""

    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region

    def __call__(self, secret_arn: str) -> SecretCredentials:
        """The credentials in ``secret_arn``; ``LookupError`` (a sentence, no secret value)
        when it is missing, deleted or not of that shape."""
        from moto.secretsmanager.models import secretsmanager_backends

        parts = secret_arn.split(":")
        account = parts[4] if len(parts) > 6 and parts[4] else self.account_id
        region = parts[3] if len(parts) > 6 and parts[3] else self.region
        backend: Any = secretsmanager_backends[account][region]  # moto's stubs want str ids
        try:
            value = backend.get_secret_value(secret_arn, None, None)
        except Exception as exc:
            raise LookupError(f"Secrets Manager cannot read it ({type(exc).__name__})") from exc
        try:
            data = json.loads(value.get("SecretString") or "")
        except ValueError:
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("username"), str)
                and isinstance(data.get("password"), str)):
            raise LookupError('its SecretString is not JSON {"username": ..., "password": ...}')
        return SecretCredentials(data["username"], data["password"])


def moto_role_check(region: str, global_keys: str = "documented") -> RoleCheck:
    """``auth.proxy.RoleCheck`` by our policy evaluator over moto's IAM state: a session of the
    role must be allowed ``rds-db:connect`` on the resource."""
    from rdsiam_emulator.aws.iam_state import MotoPolicySource
    from rdsiam_emulator.iam.authorizer import check_principal
    from rdsiam_emulator.iam.principals import PrincipalArnError, principal_from_arn

    source = MotoPolicySource()
    mode: Literal["documented", "none"] = "none" if global_keys == "none" else "documented"

    def check(role_arn: str, resource: str, now: datetime) -> Rejection | None:
        try:
            principal = principal_from_arn(role_arn)
        except PrincipalArnError as exc:
            return Rejection(Reason.NOT_AUTHORIZED, str(exc),
                             "give the proxy an IAM role ARN (RoleArn)")
        return check_principal(principal, resource, source=source, region=region, now=now,
                               global_keys=mode).rejection()

    return check
