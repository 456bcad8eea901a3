"""Change counters for the MySQL IAM-user catalog, one per backend server, shared by the process.

The MySQL endpoints keep the catalog's user names in memory instead of asking the server on every
login (``endpoint/mysql_admin.CatalogCache``). Whoever writes the catalog in this process (an
endpoint applying rewritten DDL, the backend handle's ``reset_users`` / ``record_iam_user``) calls
``catalog_changed``; every endpoint on that server then reloads before its next login. Writers in
other processes are caught by the cache's maximum age instead.

Thread-safe: the backend handle writes from the test thread, endpoints read on their loop thread.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_generations: dict[str, int] = {}


def backend_key(host: str, port: int) -> str:
    """The server's identity as both the handle and the endpoint's admin connection know it."""
    return f"{host}:{port}"


def catalog_changed(key: str) -> None:
    with _lock:
        _generations[key] = _generations.get(key, 0) + 1


def catalog_generation(key: str) -> int:
    return _generations.get(key, 0)  # a dict read is atomic under the GIL
