"""MySQL / MariaDB: RDS-like bootstrap, fresh schemas per test, user clean-up, the IAM-user catalog.

Bootstrap mirrors RDS: the hidden admin ``rdsadmin``@'%' and the master user @'%' with ALL
PRIVILEGES ON *.* WITH GRANT OPTION, the configured database, and the emulator's catalog schema
``rdsiam_catalog`` whose ``iam_users`` table records the accounts the MySQL endpoint created from
``IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'`` (the server itself only sees a derived
password).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import pymysql

from rdsiam_emulator.endpoint.backend import BackendAddress, BackendUnreachable
from rdsiam_emulator.engines import MYSQL, flavour_of_version
from rdsiam_emulator.protocols.mysql.packets import ProtocolError
from rdsiam_emulator.protocols.mysql.results import QueryError

from .errors import BackendError
from .handle import AdminClientLike, BackendHandle, Row
from .mysql_catalog import CATALOG, CATALOG_DDL, CATALOG_SCHEMA, TLS_REQUIRED, CatalogVersion
from .spec import ADMIN_USER

#: Accounts that belong to the server itself (any host); never dropped by reset_users.
SYSTEM_ACCOUNTS = frozenset(
    {
        "root",
        "mariadb.sys",
        "mysql",
        "mysql.sys",
        "mysql.session",
        "mysql.infoschema",
        "healthcheck",
    }
)
SYSTEM_SCHEMAS = frozenset(
    {"mysql", "information_schema", "performance_schema", "sys", CATALOG_SCHEMA}
)


def quote_ident(name: str) -> str:
    """``name`` as a MySQL backquoted identifier (embedded backquotes doubled)."""
    return "`" + name.replace("`", "``") + "`"


class MysqlHandle(BackendHandle):
    """A MySQL or MariaDB server (``flavour`` says which, read at bootstrap).

    IAM users are recorded in the catalog table ``CATALOG`` because the server itself knows
    them only as password users; admin SQL runs over PyMySQL and raises ``BackendError``.
    """
    engine = MYSQL.name

    def __init__(
        self, *, bootstrap_connect: dict[str, Any], keep_existing_users: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._bootstrap_connect = bootstrap_connect
        self._keep_existing_users = keep_existing_users
        self._protected: set[tuple[str, str]] = {(ADMIN_USER, "%"), (self.master_user, "%")}
        self._admin: Any = None
        self._baseline_master: list[Row] = []
        self.catalog_version = CatalogVersion()
        """Bumped on every catalog write; endpoints given it reload before their next login."""

    # -- connections ---------------------------------------------------------------------------
    def address_kwargs(self) -> dict[str, Any]:
        """PyMySQL's address keywords: ``{"unix_socket": path}`` for a local server without TCP,
        else ``{"host": ..., "port": ...}``."""
        if not self.tcp and self.unix_socket is not None:
            return {"unix_socket": self.unix_socket}
        return {"host": self.host, "port": self.port}

    def _dsn(self, user: str, password: str, dbname: str | None) -> dict[str, Any]:
        return {
            **self.address_kwargs(),
            "user": user,
            "password": password,
            "database": dbname or self.dbname,
        }

    def _connect(self, **kwargs: Any) -> Any:
        try:
            return pymysql.connect(autocommit=True, charset="utf8mb4", connect_timeout=10, **kwargs)
        except pymysql.MySQLError as exc:
            raise BackendError(f"admin connection to {self!r} failed: {exc}") from exc

    def admin_connection(self) -> Any:
        """The shared admin connection (a PyMySQL connection, no default database)."""
        with self._admin_lock:
            if self._admin is None or not self._admin.open:
                self._admin = self._connect(
                    **self.address_kwargs(),
                    user=self.admin_user,
                    password=self.admin_password,
                )
            return self._admin

    def admin_execute(
        self, sql: str, params: Sequence[Any] | None = None, *, dbname: str | None = None
    ) -> list[Row]:
        """Run ``sql`` (PyMySQL ``%s`` parameters) as the admin and return its rows.

        Without ``dbname`` on the shared session (reconnected once if it died), else on a new
        connection to ``dbname``. Raises ``BackendError`` for connection or SQL failures.
        """
        if dbname:
            conn = self._connect(
                **self.address_kwargs(),
                user=self.admin_user,
                password=self.admin_password,
                database=dbname,
            )
            try:
                return _run(conn, sql, params)
            finally:
                conn.close()
        with self._admin_lock:
            conn = self.admin_connection()
            try:
                conn.ping(reconnect=False)
            except pymysql.MySQLError:
                self._close_admin()  # the session was killed or the server restarted
                conn = self.admin_connection()
            return _run(conn, sql, params)

    def _close_admin(self) -> None:
        with self._admin_lock:
            if self._admin is not None:
                try:
                    if self._admin.open:
                        self._admin.close()
                finally:
                    self._admin = None

    # -- bootstrap -----------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Create the admin and master accounts (``'%'`` hosts), drop anonymous accounts, create the
        configured database and the IAM-user catalog. Raises ``BackendError``.
        """
        conn = self._connect(**self._bootstrap_connect)
        try:
            self.version = str(_run(conn, "SELECT VERSION()")[0][0])
            self.flavour = flavour_of_version(self.version).name
            if self._keep_existing_users:
                self._protected |= {
                    (str(u), str(h)) for u, h in _run(conn, "SELECT user, host FROM mysql.user")
                }
            for stmt, params in self._account_sql(ADMIN_USER, self.admin_password):
                _run(conn, stmt, params)
            # anonymous accounts would shadow real users from some hosts (RDS has none)
            for (host,) in _run(conn, "SELECT host FROM mysql.user WHERE user = ''"):
                _run(conn, "DROP USER ''@%s", [host])
        finally:
            conn.close()
        for stmt, params in self._account_sql(self.master_user, self.master_password):
            self.admin_execute(stmt, params)
        self.admin_execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(self.dbname)}")
        for ddl in CATALOG_DDL:
            self.admin_execute(ddl)
        self._baseline_master = self._master_state()

    @staticmethod
    def _account_sql(user: str, password: str) -> list[tuple[str, list[Any]]]:
        return [
            ("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", [user, password]),
            ("ALTER USER %s@'%%' IDENTIFIED BY %s ACCOUNT UNLOCK", [user, password]),
            ("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", [user]),
        ]

    # -- isolation -----------------------------------------------------------------------------
    def create_database(self, name: str, template: str | None = None) -> str:
        """A fresh schema; with ``template``, a copy of its base tables (structure and rows; views,
        routines and triggers are not copied)."""
        self.admin_execute(f"CREATE DATABASE {quote_ident(name)}")
        if template:
            tables = self.admin_execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "AND table_type = 'BASE TABLE' ORDER BY table_name",
                [template],
            )
            for (table,) in tables:
                dst = f"{quote_ident(name)}.{quote_ident(str(table))}"
                src = f"{quote_ident(template)}.{quote_ident(str(table))}"
                self.admin_execute(f"CREATE TABLE {dst} LIKE {src}")
                self.admin_execute(f"INSERT INTO {dst} SELECT * FROM {src}")  # noqa: S608
        return name

    def drop_database(self, name: str) -> None:
        """Kill the sessions using ``name``, then drop it if it exists.

        Raises ``ValueError`` for a system schema, ``BackendError`` when the drop fails.
        """
        if name in SYSTEM_SCHEMAS:
            raise ValueError(f"refusing to drop system schema {name!r}")
        for (pid,) in self.admin_execute(
            "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
            [name],
        ):
            self._kill(int(pid))
        self.admin_execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")

    def reset_users(self) -> list[str]:
        """Drop every account and role created after bootstrap (killing their sessions), empty the
        IAM-user catalog and restore the master's grants and password if they changed.

        Returns the dropped accounts as ``user@host``. Raises ``BackendError``.
        """
        role_col = "is_role" if self.flavour == "mariadb" else "'N'"
        rows = self.admin_execute(f"SELECT user, host, {role_col} FROM mysql.user")  # noqa: S608
        extra = [
            (str(u), str(h), str(r) == "Y")
            for u, h, r in rows
            if str(u) not in SYSTEM_ACCOUNTS and (str(u), str(h)) not in self._protected
        ]
        if extra:
            names = sorted({u for u, _, _ in extra})
            marks = ", ".join(["%s"] * len(names))
            for (pid,) in self.admin_execute(
                "SELECT id FROM information_schema.processlist "  # noqa: S608
                f"WHERE user IN ({marks}) AND id <> CONNECTION_ID()",
                names,
            ):
                self._kill(int(pid))
            for user, host, is_role in extra:
                if is_role:
                    self.admin_execute(f"DROP ROLE IF EXISTS {quote_ident(user)}")
                else:
                    self.admin_execute("DROP USER IF EXISTS %s@%s", [user, host])
        self._write_catalog(f"DELETE FROM {CATALOG}")  # noqa: S608
        self._write_catalog(f"DELETE FROM {TLS_REQUIRED}")  # noqa: S608
        if self._master_state() != self._baseline_master:
            self.admin_execute(
                "REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@'%%'", [self.master_user]
            )
            for stmt, params in self._account_sql(self.master_user, self.master_password):
                self.admin_execute(stmt, params)
        return [f"{u}@{h}" for u, h, _ in extra]

    def _master_state(self) -> list[Row]:
        grants = self.admin_execute("SHOW GRANTS FOR %s@'%%'", [self.master_user])
        auth = self.admin_execute("SHOW CREATE USER %s@'%%'", [self.master_user])
        return sorted(grants) + auth

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(BackendError):  # already gone
            self.admin_execute(f"KILL {pid:d}")

    # -- the IAM-user catalog --------------------------------------------------------------------
    _admin_client_errors = (BackendUnreachable, QueryError, ProtocolError)

    def _admin_client(self) -> AdminClientLike:
        """``is_iam_user`` (listed in the catalog, any host) asks the endpoint's admin client,
        which compares names exactly (trailing spaces count), as the server matches a login."""
        # imported here: the client imports this package's catalog module, whose package
        # __init__ imports this module
        from rdsiam_emulator.endpoint.mysql_admin import AdminClient

        return AdminClient(BackendAddress.from_handle(self), catalog_version=self.catalog_version)

    def record_iam_user(self, db_user: str, host: str = "%") -> None:
        """Mark ``db_user``@``host`` as an IAM user in the catalog (no-op if already there).

        Endpoints reload their cached catalog before their next login. Raises ``BackendError``.
        """
        self._write_catalog(
            f"INSERT IGNORE INTO {CATALOG} (user, host) VALUES (%s, %s)",  # noqa: S608
            [db_user, host],
        )

    def forget_iam_user(self, db_user: str, host: str = "%") -> None:
        """Remove ``db_user``@``host`` from the catalog; endpoints reload before their next login.

        Raises ``BackendError``.
        """
        for table in (CATALOG, TLS_REQUIRED):
            self._write_catalog(
                f"DELETE FROM {table} WHERE user = %s AND host = %s",  # noqa: S608
                [db_user, host],
            )

    def _write_catalog(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Endpoints on this server cache the catalog: every write makes them reload before
        their next login (even a failed one, which may have changed rows before failing)."""
        try:
            self.admin_execute(sql, params)
        finally:
            self.catalog_version.changed()


def _run(conn: Any, sql: str, params: Sequence[Any] | None = None) -> list[Row]:
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    except pymysql.MySQLError as exc:
        raise BackendError(f"admin SQL failed: {exc}") from exc
