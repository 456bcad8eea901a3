"""Real database servers behind one small interface: containers, local binaries or an external
server.

    spec = BackendSpec(engine="postgres", provider="auto", dbname="app")
    handle = start_backend(spec)        # bootstrapped like RDS; handle.stop() is idempotent
    db = handle.fresh_database()        # per-test isolation
    handle.reset_users()                # drop every non-bootstrap role/user

See docs/backends.md.
"""

from .errors import BackendError, BackendUnavailable
from .handle import BackendHandle
from .mysql_catalog import CATALOG_SCHEMA, CATALOG_TABLE
from .mysql_handle import MysqlHandle
from .postgres_handle import PostgresHandle
from .provider import start_backend, start_local
from .spec import ADMIN_USER, BackendSpec, Engine, Flavour, ProviderName

__all__ = [
    "ADMIN_USER",
    "CATALOG_SCHEMA",
    "CATALOG_TABLE",
    "BackendError",
    "BackendHandle",
    "BackendSpec",
    "BackendUnavailable",
    "Engine",
    "Flavour",
    "MysqlHandle",
    "PostgresHandle",
    "ProviderName",
    "start_backend",
    "start_local",
]
