"""Session-wide resources: one backend per engine, one emulated instance per configuration.

Started lazily the first time a test asks, shared by every test of the session (or of the xdist
worker), stopped at the end. Per-test isolation is a fresh database, not a fresh server.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_rdsiam.options import PluginSettings
from rdsiam_emulator.backends import BackendError, BackendHandle, BackendSpec, start_backend
from rdsiam_emulator.clock import OffsetClock
from rdsiam_emulator.engines import (
    MARIADB,
    MYSQL,
    ORACLE_MYSQL,
    POSTGRES,
    Engine,
    EngineName,
    ServerFlavour,
    flavour_of_version,
    mysql_flavour,
)
from rdsiam_emulator.engines import engine as engine_named
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.instances import EmulatedInstance, Emulator, InstanceConfig

_URL_EXAMPLE = {POSTGRES: "postgresql://admin:pw@127.0.0.1:5432/postgres",
                MYSQL: "mysql://root:pw@127.0.0.1:3306/"}
_HOW_TO_HONOUR_LOCAL = {
    POSTGRES: "install that major under /usr/lib/postgresql/<major>/bin or point "
                "$RDSIAM_PG_BINDIR at it (local), use --rdsiam-backend docker with "
                "--rdsiam-postgres-image, or give --rdsiam-postgres-url of such a server",
    MYSQL: "use --rdsiam-backend docker (official image mysql:<version> / mariadb:<version>, "
             "or --rdsiam-mysql-image), point $RDSIAM_MYSQLD at such a server binary (local), "
             "or give --rdsiam-mysql-url of such a server",
}
_VERSION_TAG = re.compile(r"\d+(?:\.\d+)*")


_START_FOR_PYTEST: Callable[[BackendSpec], BackendHandle] = functools.partial(
    start_backend, audience="pytest")
"""``start_backend`` whose "no server" message names the plugin's options."""


def _image_tag(image: str) -> str | None:
    """The tag of ``image`` (``10.11`` of ``localhost/x-mariadb:10.11``), None when untagged."""
    name = image.rsplit("/", 1)[-1].split("@", 1)[0]
    return name.split(":", 1)[1] if ":" in name else None


def _image_flavour(image: str) -> ServerFlavour | None:
    """The MySQL flavour an image's name says it runs, None when the name does not say."""
    repo = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0].lower()
    if "mariadb" in repo:
        return MARIADB
    return ORACLE_MYSQL if "mysql" in repo else None


def _versions_conflict(wanted: str, tag: str) -> bool:
    """Whether a server tagged ``tag`` cannot be version ``wanted``: ``"8.4"`` and ``"10.11"``
    conflict, ``"10.11.6"`` and ``"10.11"`` do not (the tag is less precise)."""
    want, have = wanted.strip().split("."), tag.split(".")
    common = min(len(want), len(have))
    return want[:common] != have[:common]


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
                spec = self.spec_for(engine)
                self._check_image(engine, spec)
                handle = self._starter(spec)
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
        provider = handle.provider.split(":", 1)[0]
        raise BackendError(
            f"{' and '.join(asked)} cannot be honoured: the {handle.provider} backend runs "
            f"{handle.flavour} {handle.version}. To get {kind} {wanted_version or ''}".rstrip()
            + f": {self._how_to_honour(info, provider, self.spec_for(engine), kind)}; "
            "or drop the option to use this server.")

    def _check_image(self, engine: EngineName, spec: BackendSpec) -> None:
        """Before a container starts: fail as ``_check_honoured`` would once it ran, when the
        image's tag or name already says it is not the version or flavour asked for (a
        configured image is used whatever version is asked, and a start takes half a minute)."""
        if spec.provider != "docker" or spec.image_chosen_by() is None:
            return  # no container, or the official image of the version and flavour asked for
        info = engine_named(engine)
        image = spec.resolved_image()
        asked: list[str] = []
        if spec.flavour is not None and info is MYSQL:
            named = _image_flavour(image)
            if named is not None and named is not spec.flavour:
                asked.append(f"--rdsiam-mysql-flavour {spec.flavour}")
        tag = _image_tag(image)
        if (spec.version and tag is not None and _VERSION_TAG.fullmatch(tag)
                and _versions_conflict(spec.version, tag)):
            asked.append(f"--rdsiam-{engine}-version {spec.version}")
        if not asked:
            return
        kind = info.label if spec.flavour is None else spec.flavour.label
        raise BackendError(
            f"{' and '.join(asked)} cannot be honoured: the docker backend would run {image}, "
            f"which its name and tag say is not that (nothing was started). To get {kind} "
            f"{spec.version or ''}".rstrip()
            + f": {self._how_to_honour(info, 'docker', spec, kind)}; "
            "or drop the option to use that image.")

    @staticmethod
    def _how_to_honour(info: Engine, provider: str, spec: BackendSpec, kind: str) -> str:
        """What would give the server asked for, for the backend actually in use."""
        what = f"an image of {kind} {spec.version or ''}".rstrip()
        url = f"--rdsiam-{info.name}-url"
        if provider == "docker":
            chosen_by = spec.image_chosen_by()
            option = f"--rdsiam-{info.name}-image"
            if chosen_by is not None and chosen_by.startswith("$"):
                var = chosen_by[1:]
                without = {k: v for k, v in os.environ.items() if k != var}
                official = replace(spec, image=None).resolved_image(without)
                return (f"the image comes from {chosen_by}, which is used whatever version is "
                        f"asked: set it (or {option}) to {what}, or unset it to run {official}; "
                        f"or give {url} of such a server")
            if chosen_by == "image":
                return (f"the image comes from {option}: name {what} there; or give {url} of "
                        "such a server")
            return f"give {option} {what}, or give {url} of such a server"
        if provider == "external":
            return (f"give {url} of such a server, or use --rdsiam-backend docker or local "
                    "without it")
        return _HOW_TO_HONOUR_LOCAL[info]

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
