"""#13 break-it: a PostgreSQL server that accepts connections but never answers (SIGSTOP) makes
``PostgresHandle.is_iam_user`` give up after ~20 s (held: no hang) with a BackendError whose text
ends in "admin query failed: " and nothing after it: the TimeoutError's str() is empty, so nothing
says it timed out (the MySQL client's text says TimeoutError())."""

from __future__ import annotations

import os
import signal

import pytest

from rdsiam_emulator.backends import BackendSpec, start_local
from rdsiam_emulator.backends.errors import BackendError


def test_a_silent_server_is_reported_as_a_timeout() -> None:
    handle = start_local(BackendSpec(engine="postgres", provider="local", version="15"))
    pid = handle._process.pid  # type: ignore[attr-defined, union-attr]
    try:
        assert handle.is_iam_user("nobody") is False
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(BackendError) as failed:
            handle.is_iam_user("nobody")
        text = str(failed.value)
        assert not text.rstrip().endswith("failed:"), text
        assert "time" in text.lower(), text
    finally:
        os.kill(pid, signal.SIGCONT)
        handle.stop()
