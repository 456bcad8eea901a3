"""The emulator's own HTTP paths under ``/_rdsiam/``: one table, one function per path.

Add a path by adding an entry to ``ROUTES`` (exact path → handler). A handler takes the werkzeug
request and the ``Runtime`` and returns a werkzeug response. JSON shapes are in docs/server.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from rdsiam_emulator.events import AuthEvent
from rdsiam_emulator.server.runtime import Runtime
from rdsiam_emulator.server.status_page import ROUTES as STATUS_PAGE_ROUTES

Handler = Callable[[Request, Runtime], Response]


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON response (sorted keys, ``Cache-Control: no-store``)."""
    return Response(json.dumps(data, indent=1, sort_keys=True) + "\n", status=status,
                    mimetype="application/json", headers={"Cache-Control": "no-store"})


def error(status: int, message: str) -> Response:
    """A JSON error response ``{"error": message}`` with HTTP ``status``."""
    return json_response({"error": message}, status)


def health(request: Request, runtime: Runtime) -> Response:
    """200 when every backend and endpoint is ready, else 503; both with the states."""
    ready = runtime.ready()
    body = {"status": "ready" if ready else "starting",
            "instances": {s.spec.identifier: s.state for s in runtime.slots()},
            "clusters": {c.spec.name: c.state for c in runtime.clusters.slots()}}
    return json_response(body, 200 if ready else 503)


EVENT_PARAMS = frozenset({"instance", "db_user", "outcome", "since", "limit"})
"""The query parameters of ``/_rdsiam/events``; any other is a 400 (a typo is never ignored)."""


def _is_count(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes "²", which ``int`` refuses), at most 18."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def events(request: Request, runtime: Runtime) -> Response:
    """Auth events, oldest first (newest last), filtered by ``instance``, ``db_user``,
    ``outcome`` (allow|deny) and ``since`` (a cursor from an earlier answer, or an ISO 8601
    time); ``limit`` keeps the newest N."""
    args = request.args
    unknown = sorted(set(args) - EVENT_PARAMS)
    if unknown:
        return error(400, f"unknown query parameter {unknown[0]!r} (known: "
                     f"{', '.join(sorted(EVENT_PARAMS))})")
    # an unencoded "+" of a UTC offset arrives as a space, which no ISO time contains
    since = args.get("since", "").replace(" ", "+")
    cursor, after = 0, None
    if _is_count(since):
        cursor = int(since)
    elif since:
        try:
            after = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            return error(400, "since: expected a cursor (integer) or an ISO 8601 time")
        if after.tzinfo is None:
            return error(400, "since: the time needs a UTC offset (e.g. 2026-01-01T00:00:00Z)")
    outcome = args.get("outcome")
    if outcome is not None and outcome not in ("allow", "deny"):
        return error(400, "outcome: expected allow or deny")
    limit_text = args.get("limit", "")
    if limit_text and (not _is_count(limit_text) or int(limit_text) == 0):
        return error(400, f"limit: expected a positive integer, got {limit_text!r}")
    cursor_now = runtime.events.mark()
    found: list[AuthEvent] = runtime.events.since(cursor, instance_id=args.get("instance"))
    if after is not None:
        found = [e for e in found if e.time > after]
    if "db_user" in args:
        found = [e for e in found if e.db_user == args["db_user"]]
    if outcome is not None:
        found = [e for e in found if e.outcome == outcome]
    if limit_text:
        found = found[-int(limit_text):]
    return json_response({"cursor": cursor_now, "events": [e.to_dict() for e in found]})


def ca_pem(request: Request, runtime: Runtime) -> Response:
    """The CA bundle every endpoint certificate chains to (PEM)."""
    try:
        bundle = runtime.emulator.ca_bundle
    except RuntimeError as exc:
        return error(503, str(exc))
    return Response(bundle.read_bytes(), mimetype="application/x-pem-file",
                    headers={"Content-Disposition": 'inline; filename="rdsiam-ca.pem"'})


def instances(request: Request, runtime: Runtime) -> Response:
    """Every instance the server knows, in any state, with what a client needs."""
    return json_response({"instances": runtime.describe(),
                          "region": runtime.config.server.region,
                          "account_id": runtime.config.server.account_id,
                          "ca_path": "/_rdsiam/ca.pem"})


def proxies(request: Request, runtime: Runtime) -> Response:
    """Every running RDS Proxy (configured or API-made), with what a client needs."""
    return json_response({"proxies": runtime.describe_proxies(),
                          "ca_path": "/_rdsiam/ca.pem"})


def clusters(request: Request, runtime: Runtime) -> Response:
    """Every Aurora cluster (configured or API-made), in any state, with its endpoints and
    members."""
    return json_response({"clusters": runtime.clusters.describe(),
                          "region": runtime.config.server.region,
                          "account_id": runtime.config.server.account_id,
                          "ca_path": "/_rdsiam/ca.pem"})


ROUTES: dict[str, Handler] = {
    "/_rdsiam/health": health,
    "/_rdsiam/events": events,
    "/_rdsiam/ca.pem": ca_pem,
    "/_rdsiam/instances": instances,
    "/_rdsiam/proxies": proxies,
    "/_rdsiam/clusters": clusters,
    **STATUS_PAGE_ROUTES,  # /_rdsiam/ (the status page), its assets and status.json
}
"""path → handler."""
