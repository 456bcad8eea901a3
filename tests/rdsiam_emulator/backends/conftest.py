"""Session-wide local servers (one per xdist worker) and clean state for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rdsiam_emulator.backends import BackendSpec, MysqlHandle, PostgresHandle, start_backend


@pytest.fixture(scope="session")
def local_pg() -> Iterator[PostgresHandle]:
    handle = start_backend(BackendSpec("postgres", provider="local", dbname="appdb"))
    assert isinstance(handle, PostgresHandle)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def local_my() -> Iterator[MysqlHandle]:
    handle = start_backend(BackendSpec("mysql", provider="local", dbname="appdb"))
    assert isinstance(handle, MysqlHandle)
    yield handle
    handle.stop()


@pytest.fixture
def pg(local_pg: PostgresHandle) -> Iterator[PostgresHandle]:
    yield local_pg
    local_pg.reset_users()


@pytest.fixture
def my(local_my: MysqlHandle) -> Iterator[MysqlHandle]:
    yield local_my
    local_my.reset_users()
