"""Fixtures for the PostgreSQL endpoint tests; they live in pg_env.py."""

# Imported at collection, before any pytester run snapshots sys.modules: pytester's in-process
# runs (tests/pytest_rdsiam) drop modules imported during them, and a later re-import of the
# dialect re-registers its SQL functions with an SAWarning each.
import sqlalchemy.dialects.postgresql  # noqa: F401
from pg_env import ca, endpoint, loop_thread, pg_server

__all__ = ["ca", "endpoint", "loop_thread", "pg_server"]
