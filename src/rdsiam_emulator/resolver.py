"""RDS-style endpoint names that resolve to the emulator, inside this process only.

Libraries such as the AWS Advanced Python Wrapper refuse IP addresses and non-RDS host names, and a
token must be signed for the endpoint's name. Python-level resolution (``socket.getaddrinfo``, used
by psycopg 3, PyMySQL, asyncpg, aiomysql, mysql-connector) is redirected for registered names only;
nothing system-wide (``/etc/hosts``) is touched. C libraries that resolve on their own (libpq in
psycopg2/psql, libmariadb) need ``hostaddr=`` or an IP with the name used for signing and TLS.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.RLock()
_names: dict[str, tuple[str, int]] = {}
"""name (lower-case, no trailing dot) → (address, reference count)."""
_original: Callable[..., Any] | None = None


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def _patched_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    original = _original if _original is not None else socket.getaddrinfo
    if isinstance(host, (str, bytes)):
        text = host.decode("idna") if isinstance(host, bytes) else host
        with _lock:
            entry = _names.get(_norm(text))
        if entry is not None:
            host = entry[0]
    return original(host, port, *args, **kwargs)


def register(name: str, address: str = "127.0.0.1") -> None:
    """Make ``name`` resolve to ``address`` in this process (reference-counted)."""
    global _original
    key = _norm(name)
    with _lock:
        current = _names.get(key)
        if current is not None and current[0] != address:
            raise ValueError(f"{name} already resolves to {current[0]} in this process")
        _names[key] = (address, (current[1] if current else 0) + 1)
        if _original is None:
            _original = socket.getaddrinfo
            socket.getaddrinfo = _patched_getaddrinfo


def unregister(name: str) -> None:
    """Undo one ``register``; the hook is removed when no names are left. Unknown names are
    ignored."""
    global _original
    key = _norm(name)
    with _lock:
        current = _names.get(key)
        if current is None:
            return
        if current[1] > 1:
            _names[key] = (current[0], current[1] - 1)
        else:
            del _names[key]
        if not _names and _original is not None:
            socket.getaddrinfo = _original
            _original = None


def resolves(name: str) -> str | None:
    """The address ``name`` is redirected to, or None."""
    with _lock:
        entry = _names.get(_norm(name))
    return None if entry is None else entry[0]
