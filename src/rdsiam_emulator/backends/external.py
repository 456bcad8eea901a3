"""A server the user already runs, reached with an admin (superuser) URL.

The emulator still creates its own ``rdsadmin`` with a random password (so the admin URL is used
only for bootstrap) and protects every account that existed before it started: reset_users only
drops accounts created afterwards. ``stop()`` just closes connections; the server keeps running.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import unquote, urlsplit

from rdsiam_emulator.engines import POSTGRES
from rdsiam_emulator.engines import engine as engine_named

from .handle import BackendHandle
from .mysql_handle import MysqlHandle
from .postgres_handle import ADMIN_DB, PostgresHandle
from .spec import ADMIN_USER, BackendSpec


def parse_admin_url(url: str, engine: str) -> dict[str, Any]:
    """Host, port, user, password and dbname of an admin URL for ``engine`` (its name).

    Raises ValueError when the scheme does not name the engine or the URL lacks user or host.
    """
    info = engine_named(engine)
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in info.url_schemes:
        raise ValueError(f"admin URL scheme {parts.scheme!r} does not match engine {engine!r}")
    if not parts.hostname or not parts.username:
        raise ValueError(
            "admin URL needs a user and a host, e.g. postgresql://admin:pw@127.0.0.1:5432/postgres"
        )
    return {
        "host": parts.hostname,
        "port": parts.port or info.default_port,
        "user": unquote(parts.username),
        "password": unquote(parts.password or ""),
        "dbname": unquote(parts.path.lstrip("/")),
    }


def start_external(spec: BackendSpec) -> BackendHandle:
    """Attach to the existing server named by ``spec.external_admin_url`` and bootstrap it.

    Its existing roles/users are kept (``reset_users`` removes only what came later); ``stop``
    closes our admin connection and leaves the server running. Raises ``ValueError`` for a
    malformed URL, ``BackendError`` when the server cannot be reached or bootstrapped.
    """
    assert spec.external_admin_url is not None  # checked by BackendSpec
    url = parse_admin_url(spec.external_admin_url, spec.engine)
    common: dict[str, Any] = {
        "flavour": spec.engine_info.flavour,
        "version": "?",
        "host": url["host"],
        "port": url["port"],
        "admin_user": ADMIN_USER,
        "admin_password": secrets.token_urlsafe(24),
        "master_user": spec.master_user,
        "master_password": spec.master_password or secrets.token_urlsafe(18),
        "dbname": spec.dbname,
        "provider": f"external:{url['host']}:{url['port']}",
        "stopper": lambda: None,
    }
    handle: BackendHandle
    if spec.engine_info is POSTGRES:
        boot = {k: url[k] for k in ("host", "port", "user", "password")} | {
            "dbname": url["dbname"] or ADMIN_DB
        }
        handle = PostgresHandle(bootstrap_connect=boot, keep_existing_roles=True, **common)
    else:
        boot = {k: url[k] for k in ("host", "port", "user", "password")}
        handle = MysqlHandle(bootstrap_connect=boot, keep_existing_users=True, **common)
    try:
        handle.bootstrap()
    except BaseException:
        handle.stop()
        raise
    return handle
