"""One MySQL server's IAM-user catalog: its table, and the change counter its backend handle owns.

The table (``CATALOG``) records the accounts the MySQL endpoint created or altered with
``IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'`` (the server itself only sees a derived
password); ``TLS_REQUIRED`` those of them that require TLS. Its ``user`` column is
utf8mb4_bin, which is PAD SPACE: SQL comparisons ignore trailing spaces there, the server's
login does not, so "is this an IAM user?" compares the names it reads in Python
(``endpoint.mysql_admin.AdminClient.is_iam_user``).

The MySQL endpoints keep the catalog's user names in memory instead of asking the server on every
login (``endpoint/mysql_admin.CatalogCache``). Whoever writes the catalog through this handle or
through an endpoint given this counter (the endpoint's DDL rewriting, ``MysqlHandle.reset_users``
/ ``record_iam_user``) calls ``changed``; every such endpoint then reloads before its next login.
Writers elsewhere (other processes, other handles) are caught by the cache's maximum age.
"""

from __future__ import annotations

import threading

CATALOG_SCHEMA = "rdsiam_catalog"
CATALOG_TABLE = "iam_users"
TLS_TABLE = "tls_required"
CATALOG_DDL = (
    f"CREATE DATABASE IF NOT EXISTS `{CATALOG_SCHEMA}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    f"CREATE TABLE IF NOT EXISTS `{CATALOG_SCHEMA}`.`{CATALOG_TABLE}` ("
    " `user` VARCHAR(128) NOT NULL,"
    " `host` VARCHAR(255) NOT NULL,"
    " `created_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " PRIMARY KEY (`user`, `host`)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    # a table of its own, not a column: catalogs made before it need no migration
    f"CREATE TABLE IF NOT EXISTS `{CATALOG_SCHEMA}`.`{TLS_TABLE}` ("
    " `user` VARCHAR(128) NOT NULL,"
    " `host` VARCHAR(255) NOT NULL,"
    " PRIMARY KEY (`user`, `host`)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
)
"""Creates the catalog if missing (the handle's bootstrap and the endpoint's admin client)."""
CATALOG = f"`{CATALOG_SCHEMA}`.`{CATALOG_TABLE}`"
TLS_REQUIRED = f"`{CATALOG_SCHEMA}`.`{TLS_TABLE}`"
"""IAM accounts created or altered with ``REQUIRE SSL``: the server gets ``REQUIRE NONE`` (the
endpoint's link to it has no TLS; the endpoint requires TLS from every IAM client) and ``SHOW
CREATE USER`` shows ``REQUIRE SSL`` again."""


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
