"""Fixtures for the PostgreSQL endpoint tests; they live in pg_env.py."""

from pg_env import ca, endpoint, loop_thread, pg_server

__all__ = ["ca", "endpoint", "loop_thread", "pg_server"]
