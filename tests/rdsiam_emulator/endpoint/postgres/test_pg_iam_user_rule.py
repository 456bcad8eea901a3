"""One "is this an IAM user?" answer: the backend handle asks the endpoint's admin client, and
both agree on a real PostgreSQL 15, also with what the server does at login."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import psycopg.sql
from pg_env import PgServer, RunningEndpoint

from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.postgres_admin import AdminClient


def endpoint_answers(pg_server: PgServer, names: list[str]) -> dict[str, bool]:
    """What an endpoint's admin client (its own session, as an endpoint has) answers."""
    async def ask() -> dict[str, bool]:
        admin = AdminClient(BackendAddress.from_handle(pg_server.handle), timeout=10)
        try:
            return {name: await admin.is_iam_user(name) for name in names}
        finally:
            await admin.close()

    return asyncio.run(ask())


def test_handle_and_endpoint_agree_on_who_is_an_iam_user(pg_server: PgServer) -> None:
    tag = uuid.uuid4().hex[:8]
    direct, indirect, plain, group = (f"{n}_{tag}" for n in ("direct", "indirect", "plain", "grp"))
    su_member, su_plain = f"su_member_{tag}", f"su_plain_{tag}"
    pg_server.sql(
        f"CREATE ROLE {direct} LOGIN", f"GRANT rds_iam TO {direct}",
        f"CREATE ROLE {group} NOLOGIN", f"GRANT rds_iam TO {group}",
        f"CREATE ROLE {indirect} LOGIN", f"GRANT {group} TO {indirect}",
        f"CREATE ROLE {plain} LOGIN",
        f"CREATE ROLE {su_member} LOGIN SUPERUSER", f"GRANT rds_iam TO {su_member}",
        f"CREATE ROLE {su_plain} LOGIN SUPERUSER",
    )
    expected = {direct: True, indirect: True, group: True, plain: False,
                su_member: True,  # membership decides, as for the RDS master user
                su_plain: False,  # pg_has_role would say True for any superuser
                f"missing_{tag}": False, "it's \"odd\"": False}

    handle = {user: pg_server.handle.is_iam_user(user) for user in expected}
    endpoint = endpoint_answers(pg_server, list(expected))
    assert handle == expected
    assert endpoint == expected


def login_resolves_to(pg_server: PgServer, name: str, password: str) -> str | None:
    """The role a password login as ``name`` lands on (the server's own matching), or None when
    the server refuses it."""
    try:
        conn = psycopg.connect(host=pg_server.host, port=pg_server.port, user=name,
                               password=password, dbname="postgres", connect_timeout=10)
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc), exc
        return None
    with conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def test_handle_endpoint_and_server_login_agree_on_tricky_names(
        pg_server: PgServer, endpoint: RunningEndpoint) -> None:
    tag = uuid.uuid4().hex[:6]
    iam = [f"tsp_{tag} ", f"Caps_{tag}", f"it's \"q\"_{tag}", f"üñí_{tag}", f"tsq_{tag}"]
    plain = f"plain_{tag}"
    password = "pw-Tricky-1"
    ident = psycopg.sql.Identifier
    with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
        for name in [*iam, plain]:
            conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                ident(name), psycopg.sql.Literal(password)))
        for name in iam:
            conn.execute(psycopg.sql.SQL("GRANT rds_iam TO {}").format(ident(name)))
    try:
        probes = sorted({p for n in [*iam, plain]
                         for p in (n, n + " ", n.rstrip(" "), n.lower(), n.upper(), " " + n,
                                   n.replace("ü", "u"))})
        at_login = {p: login_resolves_to(pg_server, p, password) for p in probes}
        expected = {p: at_login[p] in iam for p in probes}
        assert at_login[f"tsp_{tag}"] is None and at_login[f"tsq_{tag} "] is None
        assert at_login[f"caps_{tag}"] is None
        assert sum(expected.values()) == len(iam)
        from_handle = {p: pg_server.handle.is_iam_user(p) for p in probes}
        assert from_handle == expected
        # the running endpoint's own admin session, the one its logins ask
        from_endpoint = {p: endpoint.loop.run(endpoint.endpoint.admin.is_iam_user(p))
                         for p in probes}
        assert from_endpoint == expected
    finally:
        with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
            for name in [*iam, plain]:
                conn.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(ident(name)))
