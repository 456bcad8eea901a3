"""#13 break-it: the handle's (and endpoint's) "is this an IAM user?" says True for a role name
longer
than 63 bytes whose 63rd byte splits a multibyte character, while the server's own login with that
name fails: PostgreSQL cuts a StartupMessage user name at byte 63 (possibly mid-character), but the
literal in is_iam_user_sql is cut by the name type's input at a character boundary (62 bytes). The
IAM login through the endpoint then fails at the backend with the server's own FATAL (a mangled
name ending in U+FFFD, "password authentication failed"), not RDS's PAM message."""

from __future__ import annotations

import uuid

import psycopg
import psycopg.sql
import pytest
from pg_env import PgServer


@pytest.mark.xfail(strict=True, reason=(
    'known limit (docs/postgres.md): a name over 63 bytes is cut by the server mid-'
    'character, by the admin query at a character boundary'))
def test_is_iam_user_agrees_with_the_server_login_for_a_long_multibyte_name(
        pg_server: PgServer) -> None:
    name = "é" * 3 + uuid.uuid4().hex[:6] + "é" * 40  # 92 bytes; byte 63 splits an é
    ident = psycopg.sql.Identifier(name)
    with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw-1'").format(ident))
        conn.execute(psycopg.sql.SQL("GRANT rds_iam TO {}").format(ident))
    try:
        def server_accepts_login(user: str) -> bool:
            try:
                with psycopg.connect(host=pg_server.host, port=pg_server.port, user=user,
                                     password="pw-1", dbname="postgres", connect_timeout=10):
                    return True
            except psycopg.OperationalError:
                return False

        stored = name.encode()[:62].decode()  # the role as CREATE ROLE truncated it
        assert server_accepts_login(stored)  # control: the role and its password work
        server_accepts = server_accepts_login(name)
        assert server_accepts is False  # the server's own matching refuses this login name
        assert pg_server.handle.is_iam_user(name) == server_accepts
    finally:
        with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
