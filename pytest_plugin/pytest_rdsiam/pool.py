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
from typing import Any

import pytest

from pytest_rdsiam.options import PluginSettings
from rdsiam_emulator.backends import BackendError, BackendHandle, BackendSpec, start_backend
from rdsiam_emulator.clock import OffsetClock
from rdsiam_emulator.engines import MYSQL, POSTGRES, EngineName, flavour_of_version, mysql_flavour
from rdsiam_emulator.engines import engine as engine_named
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.instances import EmulatedInstance, Emulator, InstanceConfig

_URL_EXAMPLE = {POSTGRES: "postgresql://admin:pw@127.0.0.1:5432/postgres",
                MYSQL: "mysql://root:pw@127.0.0.1:3306/"}
_HOW_TO_HONOUR = {
    POSTGRES: "install that major under /usr/lib/postgresql/<major>/bin or point "
                "$RDSIAM_PG_BINDIR at it (local), use --rdsiam-backend docker with "
                "--rdsiam-postgres-image, or give --rdsiam-postgres-url of such a server",
    MYSQL: "use --rdsiam-backend docker (official image mysql:<version> / mariadb:<version>, "
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
        self._handles: dict[EngineName, BackendHandle] = {}
        self._lock = threading.Lock()

    def spec_for(self, engine: EngineName) -> BackendSpec:
        """The backend to start for ``engine``; ``pytest.UsageError`` naming the option when the
        settings cannot describe one (``external`` without a URL)."""
        s = self._settings
        info = engine_named(engine)
        own = s.for_engine(info)
        if s.backend == "external" and not own.url:
            raise pytest.UsageError(
                f"--rdsiam-backend external needs --rdsiam-{engine}-url (ini rdsiam_{engine}_url):"
                f" the admin URL of your {engine} server, e.g. {_URL_EXAMPLE[info]}")
        flavour = (mysql_flavour(s.mysql_flavour)
                   if info is MYSQL and s.mysql_flavour != "auto" else None)
        return BackendSpec(engine=info.name, provider=s.backend, image=own.image,
                           version=own.version, external_admin_url=own.url, reuse=s.reuse,
                           flavour=flavour)

    def get(self, engine: EngineName) -> BackendHandle:
        """The running backend of ``engine``, started (and checked against the settings) on
        first use. Raises ``BackendError`` when none can be started or it does not honour the
        settings."""
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

    def _check_honoured(self, engine: EngineName, handle: BackendHandle) -> None:
        """Fail, saying what would honour them, when the running server is not the flavour or
        version the settings ask for: never a silent substitute."""
        s = self._settings
        info = engine_named(engine)
        wanted_version = s.for_engine(info).version
        wanted = (mysql_flavour(s.mysql_flavour)
                  if info is MYSQL and s.mysql_flavour != "auto" else None)
        asked: list[str] = []
        if wanted is not None and flavour_of_version(handle.version) is not wanted:
            asked.append(f"--rdsiam-mysql-flavour {wanted}")
        if wanted_version and not version_matches(wanted_version, handle.version):
            asked.append(f"--rdsiam-{engine}-version {wanted_version}")
        if not asked:
            return
        kind = info.label if wanted is None else wanted.label
        raise BackendError(
            f"{' and '.join(asked)} cannot be honoured: the {handle.provider} backend runs "
            f"{handle.flavour} {handle.version}. To get {kind} {wanted_version or ''}".rstrip()
            + f": {_HOW_TO_HONOUR[info]}; or drop the option to use this server.")

    def stop_all(self) -> None:
        """Stop every backend started so far and forget them; a later ``get`` starts a new one."""
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

    def default_config(self, engine: EngineName, **overrides: Any) -> InstanceConfig:
        """The instance the settings describe for ``engine``, with ``overrides`` (InstanceConfig
        field names) applied."""
        s = self.settings
        base = InstanceConfig(
            instance_id=f"rdsiam-{engine}", engine=engine,
            region=s.region, account_id=s.account_id, naming=s.naming,
            require_tls=s.require_tls, future_skew=s.future_skew,
            throttling=s.throttling, global_keys=s.global_keys,
        )
        return replace(base, **overrides)

    def shared(self, engine: EngineName) -> EmulatedInstance:
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

    def next_id(self, engine: EngineName) -> str:
        """A fresh instance id, ``rdsiam-<engine>-<n>``, n counting from 1 (thread-safe)."""
        with self._lock:
            self._counter += 1
            return f"rdsiam-{engine}-{self._counter}"

    def close(self) -> None:
        """Close every instance's endpoint and the emulator's event loop (``Emulator.close``).

        The backends belong to the ``BackendPool`` and are not stopped here.
        """
        self.emulator.close()
