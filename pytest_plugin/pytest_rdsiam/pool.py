"""Session-wide resources: one backend per engine, one emulated instance per configuration.

Started lazily the first time a test asks, shared by every test of the session (or of the xdist
worker), stopped at the end. Per-test isolation is a fresh database, not a fresh server.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_rdsiam.options import PluginSettings
from rdsiam_emulator.backends import BackendError, BackendHandle, BackendSpec, start_backend
from rdsiam_emulator.clock import OffsetClock
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.instances import EmulatedInstance, Emulator, InstanceConfig

_URL_EXAMPLE = {"postgres": "postgresql://admin:pw@127.0.0.1:5432/postgres",
                "mysql": "mysql://root:pw@127.0.0.1:3306/"}
_HOW_TO_HONOUR = {
    "postgres": "install that major under /usr/lib/postgresql/<major>/bin or point "
                "$RDSIAM_PG_BINDIR at it (local), use --rdsiam-backend docker with "
                "--rdsiam-postgres-image, or give --rdsiam-postgres-url of such a server",
    "mysql": "use --rdsiam-backend docker (official image mysql:<version> / mariadb:<version>, "
             "or --rdsiam-mysql-image), point $RDSIAM_MYSQLD at such a server binary (local), "
             "or give --rdsiam-mysql-url of such a server",
}


_START_FOR_PYTEST: Callable[[BackendSpec], BackendHandle] = functools.partial(
    start_backend, audience="pytest")
"""``start_backend`` whose "no server" message names the plugin's options."""


def version_matches(wanted: str, actual: str) -> bool:
    """``"8.0"`` matches ``"8.0.36"``, ``"10.11"`` matches ``"10.11.6-MariaDB-0+deb12u1"``;
    ``"8"`` does not match ``"80.1"`` (whole dot-separated parts only)."""
    want = wanted.strip().split(".")
    have = actual.strip().split("-", 1)[0].split(".")
    return have[:len(want)] == want


class BackendPool:
    """One running backend per engine, started on first use."""

    def __init__(self, settings: PluginSettings,
                 starter: Callable[[BackendSpec], BackendHandle] = _START_FOR_PYTEST) -> None:
        self._settings = settings
        self._starter = starter
        self._handles: dict[str, BackendHandle] = {}
        self._lock = threading.Lock()

    def spec_for(self, engine: str) -> BackendSpec:
        """The backend to start for ``engine``; ``pytest.UsageError`` naming the option when the
        settings cannot describe one (``external`` without a URL)."""
        s = self._settings
        url = s.postgres_url if engine == "postgres" else s.mysql_url
        if s.backend == "external" and not url:
            raise pytest.UsageError(
                f"--rdsiam-backend external needs --rdsiam-{engine}-url (ini rdsiam_{engine}_url):"
                f" the admin URL of your {engine} server, e.g. {_URL_EXAMPLE[engine]}")
        if engine == "postgres":
            return BackendSpec(engine="postgres", provider=s.backend,  # type: ignore[arg-type]
                               image=None if s.postgres_image == "postgres:16" else
                               s.postgres_image,
                               version=s.postgres_version,
                               external_admin_url=s.postgres_url, reuse=s.reuse)
        image: str | None = None if s.mysql_image == "mysql:8.0" else s.mysql_image
        if s.mysql_flavour == "mariadb" and image is None:
            image = "mariadb"
        return BackendSpec(engine="mysql", provider=s.backend,  # type: ignore[arg-type]
                           image=image, version=s.mysql_version,
                           external_admin_url=s.mysql_url, reuse=s.reuse)

    def get(self, engine: str) -> BackendHandle:
        with self._lock:
            handle = self._handles.get(engine)
            if handle is None or handle.stopped:
                handle = self._starter(self.spec_for(engine))
                try:
                    self._check_honoured(engine, handle)
                except BaseException:
                    handle.stop()
                    raise
                self._handles[engine] = handle
            return handle

    def _check_honoured(self, engine: str, handle: BackendHandle) -> None:
        """Fail, saying what would honour them, when the running server is not the flavour or
        version the settings ask for: never a silent substitute."""
        s = self._settings
        wanted_version = s.postgres_version if engine == "postgres" else s.mysql_version
        asked: list[str] = []
        if engine == "mysql" and s.mysql_flavour not in {"auto", handle.flavour}:
            asked.append(f"--rdsiam-mysql-flavour {s.mysql_flavour}")
        if wanted_version and not version_matches(wanted_version, handle.version):
            asked.append(f"--rdsiam-{engine}-version {wanted_version}")
        if not asked:
            return
        kind = {"postgres": "PostgreSQL", "mysql": "MySQL", "mariadb": "MariaDB"}[
            s.mysql_flavour if engine == "mysql" and s.mysql_flavour != "auto" else engine]
        raise BackendError(
            f"{' and '.join(asked)} cannot be honoured: the {handle.provider} backend runs "
            f"{handle.flavour} {handle.version}. To get {kind} {wanted_version or ''}".rstrip()
            + f": {_HOW_TO_HONOUR[engine]}; or drop the option to use this server.")

    def stop_all(self) -> None:
        with self._lock:
            handles, self._handles = list(self._handles.values()), {}
        for handle in handles:
            handle.stop()


class InstancePool:
    """Emulated instances shared by the session, keyed by their configuration."""

    def __init__(self, settings: PluginSettings, state_dir: Path,
                 backends: BackendPool) -> None:
        self.settings = settings
        self.clock = OffsetClock()
        events_path = Path(settings.events_file) if settings.events_file else None
        self.events = EventLog(jsonl_path=events_path)
        self.emulator = Emulator(state_dir, clock=self.clock, events=self.events,
                                event_loop=None if settings.event_loop == "auto"
                                else settings.event_loop)
        self.backends = backends
        self._instances: dict[InstanceConfig, EmulatedInstance] = {}
        self._lock = threading.Lock()
        self._counter = 0

    def default_config(self, engine: str, **overrides: object) -> InstanceConfig:
        s = self.settings
        base = InstanceConfig(
            instance_id=f"rdsiam-{engine}", engine=engine,  # type: ignore[arg-type]
            region=s.region, account_id=s.account_id, naming=s.naming,  # type: ignore[arg-type]
            require_tls=s.require_tls, future_skew=s.future_skew,
            throttling=s.throttling, global_keys=s.global_keys,
        )
        return replace(base, **overrides)  # type: ignore[arg-type]

    def shared(self, engine: str) -> EmulatedInstance:
        """The session's default instance for ``engine``."""
        config = self.default_config(engine)
        with self._lock:
            instance = self._instances.get(config)
            if instance is None:
                instance = self.emulator.start_instance(config, self.backends.get(engine))
                self._instances[config] = instance
            return instance

    def new_instance(self, config: InstanceConfig) -> EmulatedInstance:
        """A separate instance (own endpoint, own resource id) on the engine's shared backend."""
        return self.emulator.start_instance(config, self.backends.get(config.engine))

    def next_id(self, engine: str) -> str:
        with self._lock:
            self._counter += 1
            return f"rdsiam-{engine}-{self._counter}"

    def close(self) -> None:
        self.emulator.close()
