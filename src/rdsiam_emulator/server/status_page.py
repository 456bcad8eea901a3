"""The status page ``/_rdsiam/``: what a developer opens when their app cannot log in.

Three parts, all served by ``serve``'s HTTP port:

* ``/_rdsiam/`` — static HTML, ``/_rdsiam/static/status.{css,js}`` — small vanilla JS (no build
  step, no CDN) that renders everything with ``textContent`` (names come from users: never HTML);
* ``/_rdsiam/status.json`` — ``status_document``: each instance (engine, endpoint, port, resource
  id, IAM on/off, connection snippets per DB user) and each IAM principal with what it may
  ``rds-db:connect`` to (``iam.access``, our evaluator); the page polls it every 5 s;
* auth events come from ``/_rdsiam/events?since=SEQ`` (the events route), polled every second
  for the new ones only, so a failed login appears without a reload.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from rdsiam_emulator.snippets import hosts_line, snippets_for, target_for
from rdsiam_emulator.versions import short_version

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from rdsiam_emulator.iam.principals import PolicySource
    from rdsiam_emulator.instances import EmulatedInstance
    from rdsiam_emulator.server.runtime import Runtime

PAGE_PATH = "/_rdsiam/"
STATUS_PATH = "/_rdsiam/status.json"
STATIC_PREFIX = "/_rdsiam/static/"
EXAMPLE_DB_USER = "app_user"
"""Snippets use this name for an instance with no IAM DB user configured or seen yet."""

_ASSETS = {
    "status.html": "text/html; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
    "status.js": "text/javascript; charset=utf-8",
}
# the page is self-contained: no inline script, nothing from other origins
SECURITY_HEADERS = {
    # data: images only for the empty favicon (browsers ask the moto side for /favicon.ico)
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def asset(name: str) -> tuple[bytes, str] | None:
    """``(body, content type)`` of a packaged asset (``status.html``, ``status.css``,
    ``status.js``), None for any other name (so a path cannot reach other files)."""
    content_type = _ASSETS.get(name)
    if content_type is None:
        return None
    body = resources.files("rdsiam_emulator").joinpath("server", "static", name).read_bytes()
    return body, content_type


def page() -> tuple[bytes, str]:
    """The page itself (``/_rdsiam/``)."""
    found = asset("status.html")
    assert found is not None  # packaged with the module
    return found


def instance_db_users(instance: EmulatedInstance, configured: Sequence[str] = ()) -> list[str]:
    """The DB users to show snippets and access for: the configured IAM DB users, then every
    user an IAM login was attempted as (from the event log), in that order."""
    users = dict.fromkeys(configured)
    for event in instance.events_since(0):
        if event.method == "iam":
            users.setdefault(event.db_user)
    return list(users)


def status_document(
    instances: Sequence[EmulatedInstance],
    *,
    now: datetime,
    db_users: Mapping[str, Sequence[str]] | None = None,
    ca_url: str | None = None,
    source: PolicySource | None = None,
    principals: Callable[[], Any] | None = None,
    pending: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON behind the page.

    ``db_users``: instance id → configured IAM DB users (plus those seen in events);
    ``ca_url``: where the CA bundle is served, named in the snippets; ``source``: the policy
    source (default moto in-process); ``principals``: override of ``access.moto_principals``
    (tests); ``pending``: instances not running (yet), each ``{"id", "state", "error"}``, shown
    as they are. A failure to read IAM state is reported in ``principals_error``, not raised: the
    instances and events stay visible.
    """
    from rdsiam_emulator.aws.iam_state import MotoPolicySource
    from rdsiam_emulator.iam.access import AccessTarget, connect_access

    configured = db_users or {}
    rows: list[dict[str, Any]] = []
    targets: list[AccessTarget] = []
    for instance in instances:
        users = instance_db_users(instance, configured.get(instance.instance_id, ()))
        shown = users or [EXAMPLE_DB_USER]
        first = target_for(instance, shown[0], ca_url=ca_url)
        rows.append({
            "id": instance.instance_id,
            "state": "available",
            "engine": instance.rds_engine,
            "engine_version": short_version(instance.backend.version) or None,
            "host": instance.host,
            "port": instance.port,
            "address": first.address,
            "hosts_line": hosts_line(first),
            "region": instance.region,
            "account_id": instance.account_id,
            "resource_id": instance.resource_id,
            "iam_enabled": instance.iam_enabled,
            "dbname": first.dbname,
            "db_users": users,
            "snippets": {
                user: [{"key": s.key, "title": s.title, "filename": s.filename, "code": s.code}
                       for s in snippets_for(target_for(instance, user, ca_url=ca_url))]
                for user in shown
            },
        })
        targets.append(AccessTarget(instance.instance_id, instance.region, instance.account_id,
                                    instance.resource_id, tuple(users)))
    access: list[dict[str, Any]] = []
    error: str | None = None
    try:
        listed = principals() if principals is not None else None
        for row in connect_access(targets, source=source or MotoPolicySource(), now=now,
                                  principals=listed):
            access.append({
                "kind": row.kind, "name": row.name, "arn": row.arn,
                "account_id": row.account_id, "notes": list(row.notes),
                "grants": [{"instance_id": g.instance_id, "db_user": g.db_user,
                            "resource": g.resource, "excluded": list(g.excluded)}
                           for g in row.grants],
            })
    except Exception as exc:  # the page must stay up whatever moto holds
        error = f"IAM principals could not be evaluated: {type(exc).__name__}: {exc}"
    return {"generated_at": now.isoformat(), "ca_url": ca_url, "instances": rows,
            "pending": [dict(p) for p in pending], "principals": access,
            "principals_error": error}


def status_json(instances: Sequence[EmulatedInstance], **kwargs: Any) -> bytes:
    """``status_document`` as UTF-8 JSON (keyword arguments as there)."""
    return json.dumps(status_document(instances, **kwargs), sort_keys=True).encode()


# ------------------------------------------------------------------------------ HTTP handlers


def _respond(body: bytes, content_type: str, request: Request) -> Response:
    from werkzeug.wrappers import Response

    del request
    return Response(body, content_type=content_type, headers=SECURITY_HEADERS)


def serve_page(request: Request, runtime: Runtime) -> Response:
    """``GET /_rdsiam/``: the page."""
    del runtime
    return _respond(*page(), request)


def serve_asset(request: Request, runtime: Runtime) -> Response:
    """``GET /_rdsiam/static/NAME``: the page's CSS and JS."""
    del runtime
    found = asset(request.path.removeprefix(STATIC_PREFIX))
    assert found is not None  # routed only for the names in _ASSETS
    return _respond(*found, request)


def serve_status(request: Request, runtime: Runtime) -> Response:
    """``GET /_rdsiam/status.json``: ``status_document`` for the server's instances."""
    running, pending, users = [], [], {}
    for slot in runtime.slots():
        users[slot.spec.identifier] = list(slot.spec.iam_db_users)
        if slot.instance is not None and slot.state == "available":
            running.append(slot.instance)
        else:
            pending.append({"id": slot.spec.identifier, "state": slot.state,
                            "error": slot.error})
    body = status_json(running, now=runtime.emulator.clock.now(), db_users=users,
                       ca_url=request.host_url.rstrip("/") + "/_rdsiam/ca.pem", pending=pending)
    doc = json.loads(body)
    # the same entries as /_rdsiam/clusters and /_rdsiam/proxies
    doc["clusters"] = runtime.clusters.describe()
    doc["proxies"] = runtime.describe_proxies()
    return _respond(json.dumps(doc, sort_keys=True).encode(), "application/json", request)


ROUTES: dict[str, Callable[[Request, Runtime], Response]] = {
    PAGE_PATH: serve_page,
    STATUS_PATH: serve_status,
    **{STATIC_PREFIX + name: serve_asset for name in _ASSETS if name != "status.html"},
}
"""The status page's paths, merged into ``server.routes.ROUTES``."""
