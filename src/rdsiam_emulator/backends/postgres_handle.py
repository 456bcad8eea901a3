"""PostgreSQL: RDS-like bootstrap, per-test databases from a template, and user clean-up.

Bootstrap mirrors RDS: roles ``rds_iam`` and ``rds_superuser``; the master user is a member of
rds_superuser with CREATEROLE CREATEDB (not SUPERUSER) and owns the configured database; the hidden
superuser ``rdsadmin`` is the emulator's own account. PostgreSQL 16 no longer lets CREATEROLE alone
grant existing roles, so there the master holds ADMIN OPTION on rds_iam with INHERIT FALSE, SET
FALSE — which is why that grant is not membership for "IAM-enabled" (see
protocols/postgres/query.is_iam_user_sql, asked through endpoint/postgres_admin.AdminClient).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.postgres_admin import AdminClient
from rdsiam_emulator.engines import POSTGRES

from .errors import BackendError
from .handle import BackendHandle, Row
from .spec import ADMIN_USER

ADMIN_DB = "postgres"
SPARE_DB = "rdsiam_spare"
#: Run once in single-user mode when a local data directory is prepared (see local_postgres).
PREPARE_SQL = (
    "CREATE ROLE rds_superuser NOLOGIN;\n"
    "CREATE ROLE rds_iam NOLOGIN;\n"
    "CREATE DATABASE rdsiam_template;\n"
    f"CREATE DATABASE {SPARE_DB};\n"
)
RDS_ROLES = ("rds_superuser", "rds_iam")
# Built-in roles RDS gives rds_superuser (a subset that exists in every supported version).
RDS_SUPERUSER_GRANTS = ("pg_monitor", "pg_signal_backend")

PgConn = psycopg.Connection[tuple[Any, ...]]


class PostgresHandle(BackendHandle):
    """A PostgreSQL server; admin SQL runs over psycopg as the superuser ``rdsadmin``."""
    engine = POSTGRES.name

    def __init__(
        self,
        *,
        bootstrap_connect: dict[str, Any],
        admin_host: str | None = None,
        keep_existing_roles: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._bootstrap_connect = bootstrap_connect
        self._admin_host = admin_host  # e.g. the private unix-socket directory of a local server
        self._keep_existing_roles = keep_existing_roles
        self._protected: frozenset[str] = frozenset((ADMIN_USER, self.master_user, *RDS_ROLES))
        self._admin: PgConn | None = None
        self._version_num = 0
        self._baseline_members: list[Row] = []
        self._baseline_master: Row | None = None

    # -- connections ---------------------------------------------------------------------------
    def _dsn(self, user: str, password: str, dbname: str | None) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": user,
            "password": password,
            "dbname": dbname or self.dbname,
        }

    def _connect_admin(self, dbname: str) -> PgConn:
        kwargs = self._dsn(self.admin_user, self.admin_password, dbname)
        if self._admin_host:
            kwargs["host"] = self._admin_host
        try:
            return psycopg.connect(
                **kwargs, autocommit=True, connect_timeout=10, application_name="rdsiam-admin"
            )
        except psycopg.Error as exc:
            raise BackendError(f"admin connection to {self!r} failed: {exc}") from exc

    def admin_connection(self) -> PgConn:
        """The shared admin connection (database ``postgres``); callers hold no lock, so keep it
        short.
        """
        with self._admin_lock:
            if self._admin is None or self._admin.closed:
                self._admin = self._connect_admin(ADMIN_DB)
            return self._admin

    def admin_execute(
        self,
        sql_text: str | sql.Composable,
        params: Sequence[Any] | None = None,
        *,
        dbname: str | None = None,
    ) -> list[Row]:
        """Run ``sql_text`` (a string with ``%s`` parameters, or a ``psycopg.sql`` composition) as
        the admin and return its rows.

        Without ``dbname`` (or with ``postgres``) on the shared session, reconnected once if the
        session was terminated; else on a new connection to ``dbname``. Raises ``BackendError``
        for every failure (connecting, the session lost, the statement refused).
        """
        query: Any = sql_text
        if dbname is not None and dbname != ADMIN_DB:
            return self._run_in(dbname, [query], params)
        with self._admin_lock:
            conn = self.admin_connection()
            try:
                return _run(conn, query, params)
            except psycopg.OperationalError as exc:
                if not conn.broken:
                    raise BackendError(f"admin SQL failed: {exc}") from exc
                conn.close()  # a terminated session: reconnect once
                try:
                    return _run(self.admin_connection(), query, params)
                except psycopg.OperationalError as again:
                    raise BackendError(f"admin SQL failed after reconnecting: {again}") from again

    def _run_in(
        self, dbname: str, queries: Sequence[Any], params: Sequence[Any] | None = None
    ) -> list[Row]:
        """``queries`` in order on one new admin connection to ``dbname``; the last one's rows.
        Every failure is a ``BackendError``."""
        rows: list[Row] = []
        with self._connect_admin(dbname) as conn:
            try:
                for query in queries:
                    rows = _run(conn, query, params)
            except psycopg.OperationalError as exc:  # no shared session to reconnect here
                raise BackendError(f"admin SQL in database {dbname!r} failed: {exc}") from exc
        return rows

    def _close_admin(self) -> None:
        with self._admin_lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None

    # -- bootstrap -----------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Create or update ``rdsadmin``, the roles ``rds_iam`` and ``rds_superuser``, the master
        user and its grants, the configured database and the template (both owned by the master).

        Raises ``BackendError`` when the server cannot be reached or a statement fails.
        """
        try:
            first = psycopg.connect(**self._bootstrap_connect, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise BackendError(f"bootstrap connection to {self!r} failed: {exc}") from exc
        with first as conn:
            ver = _run(conn, "SHOW server_version_num")[0][0]
            self._version_num = int(ver)
            raw = _run(conn, "SHOW server_version")[0][0]
            # a SQL_ASCII server hands text back as bytes
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            self.version = text.split()[0]
            if self._keep_existing_roles:
                existing = _run(conn, "SELECT rolname FROM pg_roles")
                self._protected = self._protected | {str(r[0]) for r in existing}
            _run(
                conn,
                _upsert_role(
                    ADMIN_USER, self.admin_password, "SUPERUSER LOGIN CREATEROLE CREATEDB", conn
                ),
            )
        self._close_admin()  # from now on: as rdsadmin
        for role in RDS_ROLES:
            if not self.admin_execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]):
                self.admin_execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        for builtin in RDS_SUPERUSER_GRANTS:
            if self.admin_execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [builtin]):
                self.admin_execute(
                    sql.SQL("GRANT {} TO rds_superuser").format(sql.Identifier(builtin))
                )
        self.admin_execute(
            _upsert_role(
                self.master_user, self.master_password, _MASTER_ATTRS, self.admin_connection()
            )
        )
        for stmt in self._master_grants():
            self.admin_execute(stmt)
        master = sql.Identifier(self.master_user)
        for db in (self.template_name, self.dbname):
            if self._database_exists(db):
                if db != ADMIN_DB:
                    self.admin_execute(
                        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(db), master)
                    )
            elif self._database_exists(SPARE_DB):
                # a prepared data directory ships an empty spare database: renaming is instant
                self.admin_execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(SPARE_DB), sql.Identifier(db)
                    )
                )
                self.admin_execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(db), master)
                )
            else:
                self.admin_execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), master)
                )
        self.admin_execute(
            sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(self.template_name))
        )
        self._baseline_members = self._memberships()
        self._baseline_master = self._master_state()

    def _database_exists(self, name: str) -> bool:
        return bool(self.admin_execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]))

    def _master_grants(self) -> list[sql.Composable]:
        master = sql.Identifier(self.master_user)
        grants: list[sql.Composable] = [sql.SQL("GRANT rds_superuser TO {}").format(master)]
        if self._version_num >= 160000:
            grants.append(
                sql.SQL("GRANT rds_iam TO {} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE").format(
                    master
                )
            )
        return grants

    # -- isolation -----------------------------------------------------------------------------
    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` from ``template`` (default: the bootstrap template), owned by the master;
        ``STRATEGY FILE_COPY`` from PostgreSQL 15 on. Returns ``name``. Raises ``BackendError``.
        """
        stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
            sql.Identifier(name),
            sql.Identifier(template or self.template_name),
            sql.Identifier(self.master_user),
        )
        if self._version_num >= 150000:
            stmt = sql.SQL("{} STRATEGY FILE_COPY").format(stmt)
        self.admin_execute(stmt)
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, terminating its sessions (``WITH (FORCE)``)."""
        self.admin_execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def reset_users(self) -> list[str]:
        """Drop every role created after bootstrap (terminating its sessions, dropping what it owns
        in every database), then restore the master's attributes, password and memberships if
        they changed.

        Returns the dropped role names. Raises ``BackendError``.
        """
        rows = self.admin_execute(
            "SELECT oid, rolname FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%%' "
            "AND rolname <> ALL(%s) ORDER BY rolname",
            [sorted(self._protected)],
        )
        names = [str(r[1]) for r in rows]
        if rows:
            oids = [int(r[0]) for r in rows]
            self.admin_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usesysid = ANY(%s) AND pid <> pg_backend_pid()",
                [oids],
            )
            dbs = self.admin_execute(
                "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
                "WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = ANY(%s) "
                "AND d.datallowconn AND d.datname <> %s",
                [oids, ADMIN_DB],
            )
            who = sql.SQL(", ").join(sql.Identifier(n) for n in names)
            master = sql.Identifier(self.master_user)
            # one role per DROP OWNED: with several, a default ACL of one role that names another
            # trips "could not find tuple for default ACL" (seen on PostgreSQL 15)
            drops = [sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(n)) for n in names]
            for (db,) in dbs:
                self._run_in(str(db), drops)
            for stmt in drops:
                self.admin_execute(stmt)
            # what DROP OWNED leaves: databases (shared objects) they own go to the master
            self.admin_execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(who, master))
            for name in names:
                self.admin_execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        self._restore_bootstrap_accounts()
        return names

    def _memberships(self) -> list[Row]:
        cols = "m.admin_option"
        if self._version_num >= 160000:
            cols += ", m.inherit_option, m.set_option, g.rolname"
        return self.admin_execute(
            f"SELECT r.rolname, u.rolname, {cols} FROM pg_auth_members m "  # noqa: S608
            "JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member "
            "LEFT JOIN pg_roles g ON g.oid = m.grantor "
            "WHERE u.rolname = ANY(%s) AND r.rolname NOT LIKE 'pg\\_%%' ORDER BY 1, 2, 3",
            [[self.master_user, *RDS_ROLES]],
        )

    def _master_state(self) -> Row | None:
        rows = self.admin_execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolinherit, rolpassword, "
            "rolvaliduntil::text, rolconnlimit FROM pg_authid WHERE rolname = %s",
            [self.master_user],
        )
        return rows[0] if rows else None

    def _restore_bootstrap_accounts(self) -> None:
        if self._master_state() != self._baseline_master:
            self.admin_execute(
                _upsert_role(
                    self.master_user, self.master_password, _MASTER_ATTRS, self.admin_connection()
                )
            )
        if self._memberships() != self._baseline_members:
            for role, member, *rest in self._memberships():
                stmt: sql.Composable = sql.SQL("REVOKE {} FROM {}").format(
                    sql.Identifier(str(role)), sql.Identifier(str(member))
                )
                if self._version_num >= 160000 and rest[-1] is not None:
                    stmt = sql.SQL("{} GRANTED BY {} CASCADE").format(
                        stmt, sql.Identifier(str(rest[-1]))
                    )
                self.admin_execute(stmt)
            for stmt in self._master_grants():
                self.admin_execute(stmt)

    def _admin_client(self) -> AdminClient:
        """``is_iam_user`` (a member of ``rds_iam``) asks the endpoint's admin client."""
        return AdminClient(BackendAddress.from_handle(self))


_MASTER_ATTRS = (
    "LOGIN NOSUPERUSER CREATEROLE CREATEDB INHERIT CONNECTION LIMIT -1 VALID UNTIL 'infinity'"
)


def _upsert_role(name: str, password: str, attrs: str, conn: PgConn) -> sql.Composable:
    """CREATE ROLE, or ALTER it when it exists, with ``attrs`` and a fresh password."""
    exists = bool(_run(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", [name]))
    verb = "ALTER ROLE {} WITH " if exists else "CREATE ROLE {} WITH "
    return sql.SQL(verb + attrs + " PASSWORD {}").format(
        sql.Identifier(name), sql.Literal(password)
    )


def _run(conn: PgConn, query: Any, params: Sequence[Any] | None = None) -> list[Row]:
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return list(cur.fetchall()) if cur.description is not None else []
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        raise BackendError(f"admin SQL failed: {exc}") from exc
