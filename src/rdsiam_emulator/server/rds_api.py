"""RDS API calls with real effects: moto keeps the record, this module starts and stops what the
record describes.

``CreateDBInstance`` (postgres, mysql, mariadb) starts a backend and endpoint (moto shows
``creating`` until it accepts logins, then ``available`` with the real address, port and
version); ``DeleteDBInstance`` stops them; ``ModifyDBInstance`` with
``EnableIAMDatabaseAuthentication`` switches the endpoint. Other calls go to moto untouched.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from rdsiam_emulator.aws import rds as moto_rds
from rdsiam_emulator.server import cluster_api
from rdsiam_emulator.server.runtime import Runtime, Slot, installed_server
from rdsiam_emulator.versions import short_version

log = logging.getLogger(__name__)

REAL_ENGINES = ("postgres", "mysql", "mariadb")
_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([a-z0-9-]+)/rds/aws4_request")
_ACTIONS = {"CreateDBInstance", "DeleteDBInstance", "ModifyDBInstance", "DescribeDBInstances",
            *cluster_api.ACTIONS}
_DB_INSTANCE = re.compile(rb"<DBInstance>.*?</DBInstance>", re.DOTALL)
_ENDPOINT = re.compile(rb"<Endpoint>.*?</Endpoint>", re.DOTALL)
_CREATING = b"<DBInstanceStatus>creating</DBInstanceStatus>"
MARIADB_PLACEHOLDER_VERSION = "11.4.3"
MAX_CREATING = 2
"""API-created instances starting at once; a further ``CreateDBInstance`` is refused with
``Throttling`` (each start is a real server: initdb or mariadb-install-db, seconds of CPU)."""
_BODY_LIMIT = 1 << 20
"""Bytes of an RDS request body we read to find its action (real ones are a few KB)."""


class RdsHooks:
    """Wraps calls to moto's WSGI app; see the module docstring."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._create_lock = threading.Lock()
        """Held from the quota check until the instance is a slot (two creates cannot both
        take the last place)."""

    def call(self, moto: Callable[..., Iterable[bytes]], environ: dict[str, Any],
             start_response: Any) -> Iterable[bytes]:
        """Pass the request to ``moto`` and act on the RDS actions that change real instances."""
        scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        length_text = environ.get("CONTENT_LENGTH") or "0"
        if scope is None or environ.get("REQUEST_METHOD") != "POST" or not length_text.isdigit() \
                or int(length_text) > _BODY_LIMIT:
            return moto(environ, start_response)
        body = environ["wsgi.input"].read(int(length_text))
        environ["wsgi.input"] = io.BytesIO(body)
        params = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        action = params.get("Action", "")
        if action not in _ACTIONS:
            return moto(environ, start_response)
        region = scope.group(1)
        # RDS (and moto) store identifiers in lower case: "ORDERS" names the instance "orders"
        ident = params.get("DBInstanceIdentifier", "").lower()
        if action in cluster_api.ACTIONS or (action == "CreateDBInstance"
                                             and params.get("DBClusterIdentifier")):
            return cluster_api.call(self, moto, environ, start_response, action, region, params)
        refusal = cluster_api.member_refusal(self.runtime, action, ident, params)
        if refusal is not None:
            return _rds_error(start_response, *refusal)
        if action == "CreateDBInstance":
            with self._create_lock:
                refusal = self._create_refusal(ident)
                if refusal is not None:
                    return _rds_error(start_response, *refusal)
                return self._pass(moto, environ, start_response, body, action, ident, region,
                                  params)
        return self._pass(moto, environ, start_response, body, action, ident, region, params)

    def _create_refusal(self, ident: str) -> tuple[str, str] | None:
        """``(RDS error code, message)`` when a create must be refused for quota or load."""
        slots = [s for s in self.runtime.slots() if s.spec.identifier != ident
                 or s.state != "failed"]  # a failed slot of the same name is replaced
        limit = self.runtime.config.server.max_instances
        count = len(slots) + self.runtime.clusters.member_count()  # members are DB instances
        if count >= limit:
            return ("InstanceQuotaExceeded",
                    f"the account has {count} DB instances, its quota is {limit} "
                    "(server.max_instances, RDS's default 40): delete one first")
        starting = sum(1 for s in slots if s.from_api and s.state == "creating") + sum(
            len(c.creating) for c in self.runtime.clusters.slots())
        if starting >= MAX_CREATING:
            return ("Throttling",
                    f"{starting} instances are being created (the emulator starts at most "
                    f"{MAX_CREATING} at once): retry when one is available")
        return None

    def _pass(self, moto: Callable[..., Iterable[bytes]], environ: dict[str, Any],
              start_response: Any, body: bytes, action: str, ident: str, region: str,
              params: dict[str, str]) -> Iterable[bytes]:
        """Call moto for an RDS action we act on, then apply its effects."""
        if action == "CreateDBInstance":
            engine = params.get("Engine", "").lower()
            if engine not in REAL_ENGINES:
                return _rds_error(start_response, "InvalidParameterValue",
                                  f"Engine {engine or '(none)'} is not run by the emulator: "
                                  f"use one of {', '.join(REAL_ENGINES)}")
            if engine == "mariadb" and "EngineVersion" not in params:
                # moto has no default MariaDB version; the real one replaces it when ready
                body += b"&EngineVersion=" + MARIADB_PLACEHOLDER_VERSION.encode()
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
        if action == "ModifyDBInstance" and "NewDBInstanceIdentifier" in params:
            return _rds_error(start_response, "InvalidParameterCombination",
                              "renaming an instance is not supported by the emulator")
        status, headers, data = call_moto(moto, environ)
        if status.startswith("200"):
            data = self._after(action, ident, region, params, data)
        return respond(start_response, status, headers, data)

    def _after(self, action: str, ident: str, region: str, params: dict[str, str],
               data: bytes) -> bytes:
        """What a successful call does to real servers; returns the (possibly edited) body."""
        if action == "DeleteDBInstance":
            if not self.runtime.delete(ident):
                cluster_api.delete_member(self.runtime, ident)
            return data
        if action == "DescribeDBInstances":
            return _without_creating_endpoints(data)
        db = _moto_db(self.runtime.config.server.account_id, region, ident)
        if db is None:
            return data
        if action == "ModifyDBInstance":
            if "EnableIAMDatabaseAuthentication" in params:
                self.runtime.set_iam_enabled(ident, bool(db.enable_iam_database_authentication))
            return data
        # CreateDBInstance: moto says available at once; RDS (and we) say creating until it is
        db.status = "creating"
        dbname = params.get("DBName") or "app"
        db.db_name = dbname  # the database the backend gets, as /_rdsiam/instances says
        kind = "postgres" if db.engine == "postgres" else "mysql"
        runs = installed_server(kind)
        if runs is not None:  # report the server that will run, from the start
            db.engine, db.engine_version = runs

        def ready(slot: Slot) -> None:
            if slot.deleted:  # moto has already forgotten it
                return
            if slot.instance is None:
                db.status = "failed"
                return
            moto_rds.set_endpoint(db, slot.instance.host, slot.instance.port)
            db.engine = slot.instance.rds_engine
            db.engine_version = short_version(slot.instance.backend.version)
            db.status = "available"

        try:
            self.runtime.create_from_api(
                ident, db.engine, region, bool(db.enable_iam_database_authentication), ready,
                resource_id=db.dbi_resource_id, master_username=params.get("MasterUsername"),
                master_password=params.get("MasterUserPassword"),
                dbname=dbname)
        except ValueError as exc:
            log.warning("create_db_instance %s: %s", ident, exc)
            db.status = "failed"
        # the answer moto rendered before the edits above: the same edits on its XML
        data = data.replace(b"<DBInstanceStatus>available</DBInstanceStatus>", _CREATING, 1)
        data = re.sub(rb"<Engine>[^<]*</Engine>", b"<Engine>" + escape(db.engine).encode()
                      + b"</Engine>", data, count=1)
        data = re.sub(rb"<EngineVersion>[^<]*</EngineVersion>", b"<EngineVersion>"
                      + escape(str(db.engine_version)).encode() + b"</EngineVersion>", data,
                      count=1)
        if b"<DBName>" not in data:
            data = data.replace(_CREATING, _CREATING + b"<DBName>" + escape(dbname).encode()
                                + b"</DBName>", 1)
        return _without_creating_endpoints(data)


def _without_creating_endpoints(data: bytes) -> bytes:
    """Drop ``Endpoint`` from instances still ``creating``: RDS has no address for them yet
    (moto would show a placeholder name)."""
    def strip(match: re.Match[bytes]) -> bytes:
        block = match.group(0)
        return _ENDPOINT.sub(b"", block, count=1) if _CREATING in block else block

    return _DB_INSTANCE.sub(strip, data)


def _moto_db(account_id: str, region: str, ident: str) -> Any:
    from moto.rds.models import rds_backends

    return rds_backends[account_id][region].databases.get(ident)


def _rds_error(start_response: Any, code: str, message: str) -> list[bytes]:
    """An RDS query-protocol error, as botocore parses it (HTTP 400, Sender)."""
    body = ('<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error>'
            f"<Type>Sender</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"</Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()
    start_response("400 Bad Request", [("Content-Type", "text/xml"),
                                       ("Content-Length", str(len(body)))])
    return [body]


def call_moto(moto: Callable[..., Iterable[bytes]], environ: dict[str, Any]
              ) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run moto's WSGI app on ``environ``; its ``(status, headers, body)``."""
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    chunks = moto(environ, capture)
    try:
        data = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return (captured.get("status", "500 Internal Server Error"),
            list(captured.get("headers", [])), data)


def respond(start_response: Any, status: str, headers: list[tuple[str, str]],
            data: bytes) -> list[bytes]:
    """Send ``data`` (perhaps edited) with moto's ``status`` and headers."""
    out = [(k, v) for k, v in headers if k.lower() != "content-length"]
    out.append(("Content-Length", str(len(data))))
    start_response(status, out)
    return [data]
