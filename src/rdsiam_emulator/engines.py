"""The database engines the emulator fronts, one small value each.

Everything that differs by engine and is not protocol code lives on its ``Engine``: the names,
the default port, image and master user, what a client sees when RDS refuses an IAM login, the
client-side hints, the bootstrap DDL of an IAM user and the shape of a driver's connect keyword
arguments. Code asks the engine object instead of comparing names, so a further front door
(a proxy, another PostgreSQL-compatible service) is one more object here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

EngineName = Literal["postgres", "mysql"]
"""How users and RDS name an engine (``--engine``, ``BackendSpec.engine``, events)."""
ENGINE_NAMES: tuple[EngineName, ...] = get_args(EngineName)


@dataclass(frozen=True, slots=True)
class ConnectTarget:
    """Where and how a test client connects to an endpoint (input of ``Engine.connect_kwargs``)."""

    host: str
    hostaddr: str
    port: int
    user: str
    password: str
    dbname: str
    ca_bundle: str


def _pg_kwargs(t: ConnectTarget) -> dict[str, Any]:
    return {"host": t.host, "hostaddr": t.hostaddr, "port": t.port, "user": t.user,
            "password": t.password, "dbname": t.dbname, "sslmode": "verify-full",
            "sslrootcert": t.ca_bundle}


def _my_kwargs(t: ConnectTarget) -> dict[str, Any]:
    return {"host": t.host, "port": t.port, "user": t.user, "password": t.password,
            "database": t.dbname, "ssl": {"ca": t.ca_bundle}}


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_iam_user_ddl(user: str, dbname: str) -> tuple[str, ...]:
    ident = _pg_ident(user)
    return (f"CREATE USER {ident}", f"GRANT rds_iam TO {ident}",
            f"GRANT ALL PRIVILEGES ON DATABASE {_pg_ident(dbname)} TO {ident}",
            f"GRANT ALL ON SCHEMA public TO {ident}")


def _my_iam_user_ddl(user: str, dbname: str) -> tuple[str, ...]:
    quoted = user.replace("\\", "\\\\").replace("'", "''")
    db = dbname.replace("`", "``")
    return (f"CREATE USER '{quoted}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
            f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{quoted}'@'%'")


@dataclass(frozen=True, slots=True)
class Engine:
    """One engine's facts. Frozen and hashable; compare engines with ``is`` or by ``name``."""

    name: EngineName
    label: str
    """How people write it (``PostgreSQL``, ``MySQL``)."""
    default_port: int
    default_image: str
    """The official container image used when nothing else is configured."""
    image_env: str
    """Environment variable that overrides the default image."""
    default_master: str
    """RDS's default master user name."""
    flavour: Literal["postgresql", "mysql"]
    """The server family a backend of this engine reports until it says more (MariaDB)."""
    admin_database: str | None
    """The database the emulator's admin sessions open (None: the engine needs none)."""
    url_schemes: tuple[str, ...]
    """Admin URL schemes (external backends) that name this engine."""
    container_ready_line: str
    """The server's log line that says it accepts connections."""
    iam_refusal_message: str
    """The server message of every IAM token refusal, as the endpoint sends it (``{user}`` and
    ``{client}`` — the client's address — placeholders): RDS never says why."""
    iam_refusal_sqlstate: str
    """The SQLSTATE sent with ``iam_refusal_message``."""
    iam_refusal_code: int | None
    """The MySQL error number sent with it (None for PostgreSQL, which has none)."""
    tls_hint: str
    """How to turn TLS on in this engine's clients (a refusal hint)."""
    cleartext_hint: str | None
    """How to let this engine's clients send a cleartext password (None: they always can)."""
    driver: str
    """The Python DB-API driver the tests, the demo and the fixture use (psycopg / pymysql)."""
    iam_users_relayed_when_disabled: bool
    """With IAM authentication off, an IAM user's login goes to the server as a password login
    (MySQL: the plugin is not loaded) rather than being asked for a token and refused
    (PostgreSQL: pg_hba.conf still says ``pam`` for ``rds_iam``)."""
    _iam_user_ddl: Callable[[str, str], tuple[str, ...]]
    _connect_kwargs: Callable[[ConnectTarget], dict[str, Any]]

    def iam_user_ddl(self, user: str, dbname: str) -> tuple[str, ...]:
        """The master's statements that create IAM user ``user`` the way RDS documents it,
        with usable grants on database ``dbname`` (names are quoted here)."""
        return self._iam_user_ddl(user, dbname)

    def connect_kwargs(self, target: ConnectTarget) -> dict[str, Any]:
        """Keyword arguments for this engine's test driver (psycopg / PyMySQL), verifying TLS
        against ``target.host`` with ``target.ca_bundle``."""
        return self._connect_kwargs(target)

    def connect(self, target: ConnectTarget, *, autocommit: bool = False) -> Any:
        """A DB-API connection with ``driver`` to ``target`` (verified TLS). Raises the
        driver's own errors (``psycopg.OperationalError``, ``pymysql.err.OperationalError``)."""
        module = importlib.import_module(self.driver)
        return module.connect(**self.connect_kwargs(target), autocommit=autocommit)

    @property
    def iam_refusal_text(self) -> str:
        """What a client prints for every IAM token refusal (``{user}`` placeholder), rendered
        from the wire message the endpoint sends (``iam_refusal_message``)."""
        message = self.iam_refusal_message.replace("{client}", "<client ip>")
        if self.iam_refusal_code is None:
            return f"FATAL:  {message} (SQLSTATE {self.iam_refusal_sqlstate})"
        return f"ERROR {self.iam_refusal_code} ({self.iam_refusal_sqlstate}): {message}"

    def __str__(self) -> str:
        return self.name


POSTGRES = Engine(
    name="postgres", label="PostgreSQL", default_port=5432, default_image="postgres:16",
    image_env="RDSIAM_POSTGRES_IMAGE", default_master="postgres", flavour="postgresql",
    admin_database="postgres",
    url_schemes=("postgres", "postgresql"),
    container_ready_line="database system is ready to accept connections",
    iam_refusal_message='PAM authentication failed for user "{user}"',
    iam_refusal_sqlstate="28000", iam_refusal_code=None,
    tls_hint="connect with sslmode=require or stricter", cleartext_hint=None, driver="psycopg",
    iam_users_relayed_when_disabled=False,
    _iam_user_ddl=_pg_iam_user_ddl, _connect_kwargs=_pg_kwargs,
)
MYSQL = Engine(
    name="mysql", label="MySQL", default_port=3306, default_image="mysql:8.0",
    image_env="RDSIAM_MYSQL_IMAGE", default_master="admin", flavour="mysql", admin_database=None,
    url_schemes=("mysql", "mariadb"),
    container_ready_line="ready for connections",
    iam_refusal_message="Access denied for user '{user}'@'{client}' (using password: YES)",
    iam_refusal_sqlstate="28000", iam_refusal_code=1045,
    tls_hint="connect with TLS (ssl_mode=REQUIRED / ssl=true / --ssl)", driver="pymysql",
    cleartext_hint="enable the client's cleartext plugin: enable_cleartext_plugin=True "
                   "(mysql-connector), --enable-cleartext-plugin (mysql CLI) or "
                   "LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN=1 (libmysqlclient)",
    iam_users_relayed_when_disabled=True,
    _iam_user_ddl=_my_iam_user_ddl, _connect_kwargs=_my_kwargs,
)
ENGINES: dict[EngineName, Engine] = {POSTGRES.name: POSTGRES, MYSQL.name: MYSQL}


def engine(name: str | Engine) -> Engine:
    """The engine called ``name`` (an ``Engine`` is returned as is).

    Raises ValueError for a name that is not one of ``ENGINE_NAMES``.
    """
    if isinstance(name, Engine):
        return name
    for known in ENGINES.values():
        if known.name == name:
            return known
    raise ValueError(f"engine must be one of {ENGINE_NAMES}, not {name!r}")


MysqlServerName = Literal["mysql", "mariadb"]
"""How users name a server product of the ``mysql`` engine (``--rdsiam-mysql-flavour``)."""


@dataclass(frozen=True, slots=True)
class ServerFlavour:
    """A server product behind the ``mysql`` engine: Oracle MySQL or MariaDB. Frozen and
    hashable; compare flavours with ``is`` (``ORACLE_MYSQL``, ``MARIADB``)."""

    name: MysqlServerName
    label: str
    """How people write it (``MySQL``, ``MariaDB``)."""
    default_image: str
    """The official container image used when nothing else is configured."""
    image_env: str
    """Environment variable that overrides ``default_image`` when this flavour is asked for."""

    def __str__(self) -> str:
        return self.name


ORACLE_MYSQL = ServerFlavour(name="mysql", label="MySQL", default_image="mysql:8.4",
                             image_env="RDSIAM_ORACLE_MYSQL_IMAGE")
MARIADB = ServerFlavour(name="mariadb", label="MariaDB", default_image="mariadb:11",
                        image_env="RDSIAM_MARIADB_IMAGE")
MYSQL_FLAVOURS: dict[MysqlServerName, ServerFlavour] = {
    ORACLE_MYSQL.name: ORACLE_MYSQL, MARIADB.name: MARIADB}


def mysql_flavour(name: str | ServerFlavour) -> ServerFlavour:
    """The flavour called ``name`` (a ``ServerFlavour`` is returned as is).

    Raises ValueError for a name that is not ``mysql`` or ``mariadb``.
    """
    if isinstance(name, ServerFlavour):
        return name
    for known in MYSQL_FLAVOURS.values():
        if known.name == name:
            return known
    raise ValueError(f"MySQL flavour must be one of {tuple(MYSQL_FLAVOURS)}, not {name!r}")


def flavour_of_version(version: str) -> ServerFlavour:
    """The flavour a server's ``VERSION()`` (or ``--version`` output) names: MariaDB says so
    (``10.11.6-MariaDB-0+deb12u1``), Oracle MySQL does not (``9.7.4-2``, ``8.4.3``)."""
    return MARIADB if "mariadb" in version.lower() else ORACLE_MYSQL
