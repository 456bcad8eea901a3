"""#13 break-it: ``PostgresHandle.admin_execute`` documents "Raises ``BackendError`` for every
failure
(connecting, the session lost, the statement refused)", but on the shared session a statement whose
retry (after the one reconnect) fails with an ``OperationalError`` lets the raw
``psycopg.OperationalError`` out: the retry in admin_execute is not wrapped."""

from __future__ import annotations

import pytest

from rdsiam_emulator.backends import BackendSpec, PostgresHandle, start_local
from rdsiam_emulator.backends.errors import BackendError


@pytest.fixture(scope="module")
def handle():
    h = start_local(BackendSpec(engine="postgres", provider="local", version="15"))
    assert isinstance(h, PostgresHandle)
    try:
        yield h
    finally:
        h.stop()


def test_lost_session_twice_is_a_backend_error(handle: PostgresHandle) -> None:
    # the statement ends its own session on the first try and on the retry
    with pytest.raises(BackendError):
        handle.admin_execute("SELECT pg_terminate_backend(pg_backend_pid())")


def test_the_dbname_path_already_wraps_it(handle: PostgresHandle) -> None:
    """The same statement on the ``dbname`` path is a BackendError (passes: the contrast)."""
    with pytest.raises(BackendError):
        handle.admin_execute("SELECT pg_terminate_backend(pg_backend_pid())",
                             dbname="rdsiam_template")
