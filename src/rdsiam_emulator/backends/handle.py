"""The running-server handle every provider returns: connection facts plus admin operations.

Why one base class: endpoints and the pytest plugin only see this surface; whether the server is a
container, a local process or someone else's server is the provider's business (its ``stopper``).
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rdsiam_emulator.endpoint.loop_thread import run_blocking

from . import lifecycle
from .errors import BackendError
from .procs import ServerProcess
from .spec import Engine, Flavour

_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_counter = itertools.count(1)

Row = tuple[Any, ...]


class AdminClientLike(Protocol):
    """What the handles need of an engine's admin client (``endpoint/*_admin.AdminClient``)."""

    async def is_iam_user(self, user: str) -> bool:
        """The engine's one answer to "is this an IAM user?"."""

    async def close(self) -> None:
        """Close the client's session."""


def check_identifier(name: str) -> str:
    """Database names we create are plain identifiers (quoted anyway, but keep them portable)."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


class BackendHandle(ABC):
    """A bootstrapped server. ``stop()`` is idempotent and also runs at process exit."""

    engine: Engine
    template_name = "rdsiam_template"

    def __init__(
        self,
        *,
        flavour: Flavour,
        version: str,
        host: str,
        port: int,
        admin_user: str,
        admin_password: str,
        master_user: str,
        master_password: str,
        dbname: str,
        provider: str,
        stopper: Callable[[], None],
        unix_socket: str | None = None,
        process: ServerProcess | None = None,
        tcp: bool = True,
    ) -> None:
        self.flavour: Flavour = flavour
        self.version = version
        self.host = host
        self.port = port
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.master_user = master_user
        self.master_password = master_password
        self.dbname = dbname
        self.provider = provider
        self.unix_socket = unix_socket
        self.tcp = tcp
        """Does the server listen on ``host:port`` over TCP? False for a local server without
        ``listen_tcp``: then ``host``/``port`` name its socket (see the engine handles)."""
        self._stopper: Callable[[], None] | None = stopper
        self._process = process
        """The local server process (None for containers and external servers)."""
        self._stop_lock = threading.Lock()
        self._admin_lock = threading.RLock()
        lifecycle.register(self)

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Close the admin connection and run the provider's ``stopper``; idempotent."""
        with self._stop_lock:
            stopper, self._stopper = self._stopper, None
        if stopper is None:
            return
        try:
            self._close_admin()
        finally:
            try:
                stopper()
            finally:
                lifecycle.unregister(self)

    @property
    def stopped(self) -> bool:
        """True once ``stop`` ran."""
        return self._stopper is None

    @property
    def server_pid(self) -> int | None:
        """The local server's main process id (PostgreSQL's postmaster, mysqld), else None."""
        return None if self._process is None else self._process.pid

    @property
    def server_running(self) -> bool:
        """False once ``stop`` ran or the local server's main process exited (killed, crashed);
        True for servers not started here (containers, external: not known, assumed up)."""
        if self.stopped:
            return False
        return self._process is None or self._process.alive

    def restart(self) -> None:
        """Stop the local server if it still runs (also after it was killed) and start it again
        on the same port with the same data; connections to it are lost, new ones work.

        Raises BackendError for servers this process did not start (containers, external) or
        if the server does not come back.
        """
        if self._process is None or self.stopped:
            raise BackendError(f"{self!r}: only a running local server can be restarted")
        with self._admin_lock:
            self._close_admin()
            self._process.restart()

    def __enter__(self) -> BackendHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:  # no passwords
        return (
            f"<{type(self).__name__} {self.flavour} {self.version} {self.host}:{self.port} "
            f"via {self.provider}{' stopped' if self.stopped else ''}>"
        )

    # -- admin SQL ---------------------------------------------------------------------------------
    @abstractmethod
    def admin_execute(
        self, sql: str, params: Sequence[Any] | None = None, *, dbname: str | None = None
    ) -> list[Row]:
        """Run one statement as the hidden admin and return its rows (empty for DDL)."""

    @abstractmethod
    def _close_admin(self) -> None: ...

    # -- bootstrap & isolation ---------------------------------------------------------------------
    @abstractmethod
    def bootstrap(self) -> None:
        """Create the RDS-like accounts, the configured database and the per-test template."""

    @abstractmethod
    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` as a copy of ``template`` (default: the bootstrap template), owned by
        master.
        """

    @abstractmethod
    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, disconnecting its sessions."""

    @abstractmethod
    def reset_users(self) -> list[str]:
        """Drop every non-bootstrap role/user (and what it owns/was granted); restore the bootstrap
        accounts' passwords and memberships. Returns the dropped names."""

    def is_iam_user(self, db_user: str) -> bool:
        """Is ``db_user`` IAM-enabled (PostgreSQL: a member of rds_iam; MySQL: in the catalog)?

        The endpoint's own answer: asked through the engine's one admin client on a session of
        its own (``_admin_client``). Names compare exactly, as the server matches a login name.
        Raises ``BackendError`` when the server cannot be reached or refuses the query.
        """

        async def ask() -> bool:
            admin = self._admin_client()
            try:
                return await admin.is_iam_user(db_user)
            finally:
                await admin.close()

        try:
            return run_blocking(ask)
        except self._admin_client_errors as exc:
            raise BackendError(f"IAM-user query on {self!r} failed: {exc}") from exc

    _admin_client_errors: tuple[type[Exception], ...] = (ConnectionError,)
    """What the engine's admin client raises for an unreachable server or a refused query."""

    @abstractmethod
    def _admin_client(self) -> AdminClientLike:
        """A new admin client of this engine for this server (the endpoint's class)."""

    def fresh_database(self, prefix: str = "t") -> str:
        """A new, uniquely named database for one test (unique across processes and xdist
        workers).
        """
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        return self.create_database(check_identifier(name))

    def admin_dsn(self, dbname: str | None = None) -> dict[str, Any]:
        """Connection keywords for the admin account (psycopg / PyMySQL spelling per engine)."""
        return self._dsn(self.admin_user, self.admin_password, dbname)

    def master_dsn(self, dbname: str | None = None) -> dict[str, Any]:
        """Connection keywords for the master user (psycopg / PyMySQL spelling per engine); the
        database is ``dbname`` or the configured one.
        """
        return self._dsn(self.master_user, self.master_password, dbname)

    def dsn(self, user: str, password: str, dbname: str | None = None) -> dict[str, Any]:
        """Connection keywords for ``user`` with ``password`` (psycopg / PyMySQL spelling per
        engine), straight to the server (not through an endpoint)."""
        return self._dsn(user, password, dbname)

    @abstractmethod
    def _dsn(self, user: str, password: str, dbname: str | None) -> dict[str, Any]: ...
