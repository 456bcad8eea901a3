"""The change counter of one MySQL server's IAM-user catalog, owned by its backend handle.

The MySQL endpoints keep the catalog's user names in memory instead of asking the server on every
login (``endpoint/mysql_admin.CatalogCache``). Whoever writes the catalog through this handle or
through an endpoint given this counter (the endpoint's DDL rewriting, ``MysqlHandle.reset_users``
/ ``record_iam_user``) calls ``changed``; every such endpoint then reloads before its next login.
Writers elsewhere (other processes, other handles) are caught by the cache's maximum age.
"""

from __future__ import annotations

import threading


class CatalogVersion:
    """A counter bumped on every catalog write. Thread-safe: the handle writes from the test
    thread, endpoints read on their event-loop thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def changed(self) -> None:
        """Record a write (also after a failed one: it may have changed rows before failing)."""
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        """The number of writes recorded so far."""
        return self._value  # an int read is atomic under the GIL
