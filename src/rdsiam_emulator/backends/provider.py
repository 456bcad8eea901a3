"""Choosing a provider: ``auto`` uses the external server when an admin URL is given (an explicitly
named server wins over detection), else tries a Docker-API engine, then local binaries; if none
works it raises one error that says how to get each."""

from __future__ import annotations

import logging

from rdsiam_emulator.engines import POSTGRES

from .containers import start_container
from .errors import Audience, BackendUnavailable, how_to_get_a_backend
from .external import start_external
from .handle import BackendHandle
from .local_mysql import start_local_mysql
from .local_postgres import start_local_postgres
from .spec import BackendSpec

log = logging.getLogger(__name__)


def start_local(spec: BackendSpec) -> BackendHandle:
    """``start_local_postgres`` or ``start_local_mysql`` by engine (raises as they do)."""
    return start_local_postgres(spec) if spec.engine_info is POSTGRES else start_local_mysql(spec)


def start_backend(spec: BackendSpec, *, audience: Audience = "library") -> BackendHandle:
    """Start (or attach to) the server ``spec`` describes and return its bootstrapped handle.

    Raises ``BackendUnavailable`` (with how to get a server, in the terms of ``audience``: the
    pytest plugin's options, the CLI's or the library's arguments) when ``auto`` finds none,
    ``BackendError`` when a server exists but fails."""
    if spec.provider == "docker":
        return start_container(spec)
    if spec.provider == "local":
        return start_local(spec)
    if spec.provider == "external" or spec.external_admin_url:
        return start_external(spec)
    reasons: list[str] = []
    for name, start in (("docker", start_container), ("local", start_local)):
        try:
            return start(spec)
        except BackendUnavailable as exc:
            log.info("backend provider %s unavailable: %s", name, exc)
            reasons.append(f"  - {name}: {exc}")
    raise BackendUnavailable(how_to_get_a_backend(audience) + "\nWhat was tried:\n"
                             + "\n".join(reasons))
