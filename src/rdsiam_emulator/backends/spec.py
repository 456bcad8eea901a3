"""What a caller asks of a backend: a small, frozen value that every provider understands.

Why a value and not keyword soup: the pytest plugin, the CLI config file and the standalone server
all build the same thing, and a frozen dataclass can be hashed into a container-reuse key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Literal, get_args

from rdsiam_emulator.engines import (
    ENGINE_NAMES,
    MARIADB,
    MYSQL,
    EngineName,
    ServerFlavour,
)
from rdsiam_emulator.engines import Engine as EngineInfo
from rdsiam_emulator.engines import engine as engine_named

Engine = EngineName
"""The engine's name (``rdsiam_emulator.engines.EngineName``); ``BackendSpec.engine_info`` is
the engine object."""
ProviderName = Literal["auto", "docker", "local", "external"]
Flavour = Literal["postgresql", "mariadb", "mysql"]

ENGINES: tuple[Engine, ...] = ENGINE_NAMES
PROVIDERS: tuple[ProviderName, ...] = get_args(ProviderName)

#: The image for ``mysql`` when the user selects MariaDB (``image="mariadb"`` is a shorthand).
MARIADB_IMAGE = MARIADB.default_image
MARIADB_IMAGE_ENV = MARIADB.image_env

ADMIN_USER = "rdsadmin"
"""The hidden superuser the emulator itself uses; never handed to clients."""


@dataclass(frozen=True)
class BackendSpec:
    """One real server to run.

    ``image`` is for containers (None: ``$RDSIAM_<ENGINE>_IMAGE`` or the official default;
    ``"mariadb"``
    means ``$RDSIAM_MARIADB_IMAGE`` or ``mariadb:11``). ``version`` picks local binaries
    (PostgreSQL major, e.g. ``"15"``) or, when ``image`` is unset and no override is configured,
    the tag
    of the official image. ``master_password`` None: a random one per start (read it from the
    handle).
    ``flavour`` (``mysql`` engine only; ``engines.ORACLE_MYSQL`` / ``engines.MARIADB``, None: no
    preference) picks the image when ``image`` is unset (``$<flavour.image_env>``, else the
    flavour's official image); the local provider runs whichever server binary it finds (the
    handle's ``flavour`` says which; the pytest plugin refuses a mismatch).
    ``reuse`` keeps a container running after the process ends and finds it again next time by
    label. ``listen_tcp`` (local servers only): also listen on 127.0.0.1:<port> with password
    authentication. Off by default: then the server is reachable only through its private unix
    socket, so nobody can log in around the endpoint with a password account (the master's above
    all). Turn it on only to compare with direct TCP/TLS connections (bench/).
    """

    engine: Engine
    provider: ProviderName = "auto"
    image: str | None = None
    version: str | None = None
    dbname: str = "app"
    master_username: str | None = None
    master_password: str | None = None
    external_admin_url: str | None = None
    reuse: bool = False
    listen_tcp: bool = False
    flavour: ServerFlavour | None = None

    def __post_init__(self) -> None:
        engine_named(self.engine)  # ValueError for an unknown name
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}, not {self.provider!r}")
        if self.provider == "external" and not self.external_admin_url:
            raise ValueError("provider 'external' needs external_admin_url")
        for name, value in (("dbname", self.dbname), ("master_username", self.master_user)):
            if not value or len(value) > 63 or "\x00" in value:
                raise ValueError(f"{name} must be 1-63 characters without NUL")
        if self.flavour is not None and self.engine_info is not MYSQL:
            raise ValueError(f"flavour {self.flavour} is for the mysql engine, not {self.engine}")
        if self.master_user == ADMIN_USER:
            raise ValueError(f"{ADMIN_USER!r} is reserved for the emulator")

    @property
    def engine_info(self) -> EngineInfo:
        """The engine object (``rdsiam_emulator.engines``) this spec names."""
        return engine_named(self.engine)

    @property
    def master_user(self) -> str:
        """The master user name: ``master_username`` or the engine's RDS default."""
        return self.master_username or self.engine_info.default_master

    def resolved_image(self, environ: dict[str, str] | None = None) -> str:
        """The container image to run, honouring the per-engine override variables."""
        env = os.environ if environ is None else environ
        if self.image in ("mariadb", "mariadb:latest") and self.engine_info is MYSQL:
            return env.get(MARIADB_IMAGE_ENV) or MARIADB_IMAGE
        if self.image:
            return self.image
        wanted = self.flavour or self.engine_info
        override = env.get(wanted.image_env)
        if override:
            return override
        default = wanted.default_image
        if self.version:
            return f"{default.split(':', 1)[0]}:{self.version}"
        return default

    def image_chosen_by(self, environ: dict[str, str] | None = None) -> str | None:
        """What picked ``resolved_image`` instead of ``version``: ``"image"`` (this spec's
        ``image``), ``"$NAME"`` (the override variable NAME) or None (the official image,
        tagged ``version`` when one is given)."""
        env = os.environ if environ is None else environ
        if self.image in ("mariadb", "mariadb:latest") and self.engine_info is MYSQL:
            return f"${MARIADB_IMAGE_ENV}" if env.get(MARIADB_IMAGE_ENV) else "image"
        if self.image:
            return "image"
        wanted = self.flavour or self.engine_info
        return f"${wanted.image_env}" if env.get(wanted.image_env) else None

    def with_provider(self, provider: ProviderName) -> BackendSpec:
        """A copy of this spec with ``provider`` replaced."""
        return replace(self, provider=provider)
