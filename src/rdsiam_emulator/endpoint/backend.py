"""What every endpoint knows about the real server behind it, in the same words for each engine.

``BackendAddress`` (where it is, the hidden admin account), ``BackendUnreachable`` (it cannot be
reached or refused the admin login) and ``EndpointSettings`` (what every endpoint is configured
with; each engine's settings extend it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class BackendUnreachable(ConnectionError):
    """The real server cannot be reached, or refused the emulator's admin login or query."""


class _HandleLike(Protocol):
    host: str
    port: int
    admin_user: str
    admin_password: str
    unix_socket: str | None


@dataclass(frozen=True, slots=True)
class BackendAddress:
    """The real server behind an endpoint and the emulator's hidden admin account on it."""

    host: str
    port: int
    admin_user: str
    admin_password: str = field(repr=False)
    unix_socket: str | None = None
    """The server's private socket as its handle gives it (PostgreSQL: the socket directory,
    libpq's ``host``; MySQL: the socket file), when it has one (local servers). Client sessions
    and the admin session go there instead of loopback TCP: cheaper per message and per session,
    and a local server normally has no TCP at all (docs/backends.md)."""

    @classmethod
    def from_handle(cls, handle: _HandleLike) -> BackendAddress:
        """From a ``backends.BackendHandle`` (or anything with the same five attributes),
        including its private socket when it has one."""
        return cls(handle.host, handle.port, handle.admin_user, handle.admin_password,
                   unix_socket=handle.unix_socket)

    def describe(self) -> str:
        """Where the server is, for event details (``host:port`` or the socket)."""
        return self.unix_socket or f"{self.host}:{self.port}"


@dataclass
class EndpointSettings:
    """What every endpoint is configured with; times in seconds."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    """0: any free port (read it from the endpoint's ``port`` once started)."""
    handshake_timeout: float = 10.0
    """Seconds a client may take from connecting to being logged in."""
    backend_timeout: float = 10.0
    """Seconds to reach the server, or for one admin query."""
