"""Aurora PostgreSQL's own catalog objects on the members of an emulated cluster (docs/aurora.md).

Clients such as the AWS Advanced Python Wrapper decide that a server is Aurora, and learn the
cluster's topology, from objects only Aurora has:

- the setting ``rds.extensions`` (in ``pg_settings``) naming ``aurora_stat_utils``;
- ``pg_catalog.aurora_db_instance_identifier()``: the instance identifier of the server queried;
- ``pg_catalog.aurora_replica_status()``: one row per member, ``session_id`` =
  ``'MASTER_SESSION_ID'`` on the writer.

The functions are owned by the hidden superuser and live in ``pg_catalog`` of every database that
accepts connections (``template1`` included, so later databases have them), made on the writer and
replicated. A replica is a physical copy, so a member's identity comes from a setting each server
has on its own: ``unix_socket_directories`` (fixed at start, never settable by a session; the
function reads it as its owner, ``SECURITY DEFINER`` with a fixed ``search_path``). The
writer is written into ``aurora_replica_status()`` and rewritten on the new writer at failover.
``rds.extensions`` is a custom setting in each member's own ``postgresql.auto.conf``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from psycopg import sql

from .postgres_handle import PostgresHandle
from .replication import wait_for_replay

RDS_EXTENSIONS = "aurora_stat_utils"
"""``rds.extensions`` on every member: only what clients look for (Aurora's list is longer)."""


def _member_socket(handle: PostgresHandle) -> str:
    if handle.unix_socket is None:
        raise ValueError(f"{handle!r}: Aurora catalog objects need local socket servers")
    return handle.unix_socket


def _identifier_function(members: Sequence[tuple[str, PostgresHandle]]) -> sql.Composed:
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(_member_socket(h)), sql.Literal(i))
        for i, h in members)
    body = sql.SQL("SELECT CASE pg_catalog.current_setting('unix_socket_directories') {} END"
                   ).format(cases).as_string(None)
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION pg_catalog.aurora_db_instance_identifier() RETURNS text "
        # the setting is the superuser's to read: the function runs as its owner, fixed path
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
        "AS {}").format(sql.Literal(body))


def _status_function(members: Sequence[tuple[str, str]], writer_id: str) -> sql.Composed:
    """(instance id, reader session UUID) pairs; the writer's session is MASTER_SESSION_ID."""
    rows = sql.SQL(", ").join(
        sql.SQL("({}, {})").format(sql.Literal(i), sql.Literal(s)) for i, s in members)
    writer = sql.Literal(writer_id)
    # the connected instance's last_update_timestamp is NULL (Aurora PostgreSQL >= 13.9); lag and
    # CPU are not measured here: 0 for readers, NULL lag for the writer
    body = sql.SQL(
        "SELECT m.server_id, "
        "CASE WHEN m.server_id = {w} THEN 'MASTER_SESSION_ID' ELSE m.session_id END, "
        "CASE WHEN m.server_id = pg_catalog.aurora_db_instance_identifier() THEN NULL "
        "ELSE pg_catalog.now() END, "
        "CASE WHEN m.server_id = {w} THEN NULL ELSE 0 END::real, "
        "0::real "
        "FROM (VALUES {rows}) AS m(server_id, session_id)").format(w=writer, rows=rows)
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION pg_catalog.aurora_replica_status("
        "OUT server_id text, OUT session_id text, OUT last_update_timestamp timestamptz, "
        "OUT replica_lag_in_msec real, OUT cpu real) RETURNS SETOF record "
        # a fixed search_path: a session's own operators never take part
        "LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS {}").format(
            sql.Literal(body.as_string(None)))


# pg_settings leaves out placeholder settings (custom names no module defined), so Aurora's
# rds.extensions, a placeholder here, would be missing: the view gets its row added
_SETTINGS_VIEW_DDL = (
    "CREATE OR REPLACE VIEW pg_catalog.pg_settings AS "
    "SELECT * FROM pg_catalog.pg_show_all_settings() AS a "
    "UNION ALL SELECT 'rds.extensions'::text, s.setting, NULL::text, 'Customized Options'::text, "
    "'Extensions RDS allows on this instance'::text, NULL::text, 'sighup'::text, 'string'::text, "
    "'configuration file'::text, NULL::text, NULL::text, NULL::text[], NULL::text, s.setting, "
    "NULL::text, NULL::integer, false "
    "FROM (SELECT pg_catalog.current_setting('rds.extensions', true) AS setting) AS s "
    "WHERE s.setting IS NOT NULL")
# a system view: only with allow_system_table_mods, for this one transaction
_SETTINGS_VIEW = sql.SQL(
    "DO {}").format(sql.Literal(
        "BEGIN PERFORM pg_catalog.set_config('allow_system_table_mods', 'on', true); "
        f"EXECUTE {sql.Literal(_SETTINGS_VIEW_DDL).as_string(None)}; END"))


def _databases(handle: PostgresHandle) -> list[str]:
    return [str(r[0]) for r in handle.admin_execute(
        "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname")]


class AuroraCatalog:
    """The Aurora-only objects of one cluster's PostgreSQL members.

    ``members`` are (instance identifier, handle) pairs, writer first; every handle a local
    server with its own socket directory. Methods raise ``BackendError`` when admin SQL fails
    or a reader does not replay in time.
    """

    def __init__(self, members: Sequence[tuple[str, PostgresHandle]]) -> None:
        if not members:
            raise ValueError("a cluster has at least one member")
        sockets = [_member_socket(h) for _, h in members]
        if len(set(sockets)) != len(sockets):
            raise ValueError("members must be distinct servers")
        self._members = list(members)
        self._sessions = [(i, str(uuid.uuid4())) for i, _ in members]

    def install(self, writer_id: str) -> None:
        """Set ``rds.extensions`` on every member, create both functions on ``writer_id`` (the
        current writer) in every database, and wait until the readers have replayed them."""
        value = sql.Literal(RDS_EXTENSIONS)
        for _, handle in self._members:
            # ALTER SYSTEM knows a custom name only once the session has a placeholder (the
            # shared admin session keeps it: the same value)
            handle.admin_execute(sql.SQL("SET rds.extensions = {}").format(value))
            handle.admin_execute(sql.SQL("ALTER SYSTEM SET rds.extensions = {}").format(value))
            handle.admin_execute("SELECT pg_reload_conf()")
        self._define(writer_id, (_identifier_function(self._members), _SETTINGS_VIEW))

    def add_member(self, instance_id: str, handle: PostgresHandle, writer_id: str) -> None:
        """A new reader (a replica of ``writer_id``, ``create_db_instance`` into a running
        cluster): give it ``rds.extensions`` and its identity, and list it in
        ``aurora_replica_status()`` on every member. Raises ValueError for a known identifier
        or a server that is already a member."""
        if any(i == instance_id for i, _ in self._members):
            raise ValueError(f"{instance_id!r} is already a member")
        if _member_socket(handle) in {_member_socket(h) for _, h in self._members}:
            raise ValueError("members must be distinct servers")
        value = sql.Literal(RDS_EXTENSIONS)
        handle.admin_execute(sql.SQL("SET rds.extensions = {}").format(value))
        handle.admin_execute(sql.SQL("ALTER SYSTEM SET rds.extensions = {}").format(value))
        handle.admin_execute("SELECT pg_reload_conf()")
        self._members.append((instance_id, handle))
        self._sessions.append((instance_id, str(uuid.uuid4())))
        self._define(writer_id, (_identifier_function(self._members),))

    def remove_member(self, instance_id: str, writer_id: str) -> None:
        """A reader deleted (``delete_db_instance``): no longer listed by
        ``aurora_replica_status()``. Raises KeyError for an unknown one."""
        self._handle(instance_id)
        self._members = [(i, h) for i, h in self._members if i != instance_id]
        self._sessions = [(i, sid) for i, sid in self._sessions if i != instance_id]
        self._define(writer_id, (_identifier_function(self._members),))

    def set_writer(self, writer_id: str) -> None:
        """After a failover: rewrite ``aurora_replica_status()`` on the new writer so that every
        member reports ``writer_id`` as the writer; wait until the readers have replayed it."""
        self._define(writer_id, ())

    def _define(self, writer_id: str, extra: Sequence[sql.Composed]) -> None:
        writer = self._handle(writer_id)
        statements = [*extra, _status_function(self._sessions, writer_id)]
        for dbname in _databases(writer):
            for statement in statements:
                writer.admin_execute(statement, dbname=dbname)
        for instance_id, handle in self._members:
            # a dead reader (failover skips it too) replays it when it comes back
            if instance_id != writer_id and handle.server_running:
                wait_for_replay(writer, handle)

    def _handle(self, instance_id: str) -> PostgresHandle:
        for i, handle in self._members:
            if i == instance_id:
                return handle
        raise KeyError(instance_id)
