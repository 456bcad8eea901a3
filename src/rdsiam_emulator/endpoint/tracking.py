"""What both endpoints share: the tasks and connections they own, and shutting them down.

Why a base class: every client connection's task and sockets must be released on close (tests
check ``active_tasks``/``active_connections`` after garbage, timeouts and dead backends), and the
two endpoints did this with the same code twice.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Coroutine
from typing import Any, Self

from rdsiam_emulator.endpoint.relay import RelayConnection


class TrackedEndpoint(abc.ABC):
    """An endpoint that owns tasks and connections; an async context manager (start/close)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[RelayConnection] = set()
        self.port = 0

    @abc.abstractmethod
    async def start(self) -> None:
        """Listen; sets ``port``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop listening and release everything (calls ``_release_all``)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def active_connections(self) -> int:
        """Connections the endpoint tracks now: client and backend sides, handshake or relay."""
        return len(self._conns)

    @property
    def active_tasks(self) -> int:
        """Tasks the endpoint spawned (client sessions and their helpers) not yet ended."""
        return len(self._tasks)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a tracked task (dropped from the set when it ends)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _release_all(self) -> None:
        """Abort every connection and cancel every task, waiting for the tasks to end."""
        for conn in list(self._conns):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
