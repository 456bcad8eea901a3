"""A TCP forwarder for the shared endpoints of an emulated Aurora cluster (docs/aurora.md).

Aurora's cluster and reader endpoints are DNS names that point at one member's address at a time
(the writer; one of the readers per lookup). Here each member has its own listener, so the cluster
and reader names get a listener each that splices every new connection, before TLS, to the member
listener ``choose()`` names at accept time. TLS, the token check and the login stay the member
endpoint's: nothing here reads the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Target = tuple[str, int]
CHUNK = 64 * 1024


class Forwarder:
    """Listens on ``listen_host``/``listen_port`` (0: any free port, read ``port`` after
    ``start``) and splices each connection to ``choose()`` (host, port), or closes it when
    ``choose()`` gives None. ``connect_timeout``: seconds to reach the target."""

    def __init__(self, choose: Callable[[], Target | None], *, listen_host: str = "127.0.0.1",
                 listen_port: int = 0, connect_timeout: float = 10.0) -> None:
        self._choose = choose
        self._listen = (listen_host, listen_port)
        self._timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: set[asyncio.StreamWriter] = set()
        self._closing = False
        self.port = 0
        self.connections = 0
        """Connections accepted so far (diagnostics, tests of the spreading)."""

    async def start(self) -> None:
        """Bind and listen; raises ``OSError`` when the address cannot be bound."""
        self._server = await asyncio.start_server(self._accept, *self._listen,
                                                  reuse_address=True, backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening and cut every spliced connection (both sides reset), waiting up to
        ``grace`` seconds for their handlers to end."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        # abort rather than cancel: a cancelled connection handler makes Python 3.11's stream
        # protocol log a CancelledError traceback per connection
        for stream in list(self._streams):
            stream.transport.abort()
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in late:  # stuck connecting upstream: the last resort
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _track(self, stream: asyncio.StreamWriter) -> None:
        self._streams.add(stream)
        if self._closing:
            stream.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._track(writer)
        self.connections += 1
        try:
            await self._splice(reader, writer)
        finally:
            self._tasks.discard(task)
            self._streams.discard(writer)
            writer.close()

    async def _splice(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = None if self._closing else self._choose()
        if target is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                up_reader, up_writer = await asyncio.open_connection(*target)
        except (OSError, TimeoutError) as exc:
            log.warning("forwarder: cannot reach %s:%s: %s", target[0], target[1], exc)
            return
        self._track(up_writer)
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._streams.discard(up_writer)
            up_writer.close()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until ``src`` ends, then half-close ``dst``; a reset or an aborted side (``close``)
    ends the copy quietly."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if not dst.transport.is_closing() and dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError, RuntimeError):  # uvloop: RuntimeError on a closed handle
        with contextlib.suppress(Exception):
            dst.close()
