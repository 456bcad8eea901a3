"""Connections as asyncio Protocols that first serve a handshake, then relay bytes to a peer.

Why Protocols and not streams: after authentication every byte is forwarded unchanged, and the
cheapest way in asyncio is to write each received chunk straight into the peer's transport from
``data_received`` — no task wake-up, no copy into a StreamReader. Flow control uses the transports'
own watermarks: when the peer's write buffer is full, asyncio calls ``pause_writing`` on the peer's
protocol, which pauses reading on this side (and resumes symmetrically), so a slow client cannot
make the endpoint buffer a large result.

The same object serves the handshake (``read``/``write`` with a small await API) so no buffered
bytes are lost when switching to relay mode, and TLS can be started in between with
``loop.start_tls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, cast

HANDSHAKE_BUFFER_LIMIT = 256 * 1024
"""Pause reading a client that sends more than this before it is authenticated."""
RELAY_WRITE_HIGH_WATER = 1024 * 1024
"""Write buffer per direction before the other side is paused: large enough that bulk transfers
(COPY, big results) are not paused and resumed every 64 KiB, small enough to bound memory."""


class ConnectionClosed(Exception):
    """The peer closed the connection (or it broke) while a handshake was reading."""


class RelayConnection(asyncio.Protocol):
    """One side of a relayed session; ``link`` two of them to start forwarding."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._peer: RelayConnection | None = None
        self._eof = False
        self._reading_paused = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # ---------------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same API.
        """asyncio callback: keep the transport (uvloop's has the ``asyncio.Transport`` API)."""
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """asyncio callback: forward ``data`` to the peer once linked, else buffer it for ``read``.

        Before linking, reading pauses while over ``HANDSHAKE_BUFFER_LIMIT`` bytes are buffered.
        """
        peer = self._peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
            return
        self._buf += data
        if len(self._buf) > HANDSHAKE_BUFFER_LIMIT and self.transport is not None:
            self._pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        """asyncio callback: the other end finished sending; wakes ``read`` and closes the peer
        after flushing. Returns False, so asyncio closes this side too.
        """
        self._eof = True
        self._wake()
        peer = self._peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()  # flushes what is buffered, then closes
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio callback: the connection is gone (``exc`` None for a clean close); resolves
        ``closed`` and closes the peer.
        """
        self._eof = True
        self._wake()
        if not self.closed.done():
            self.closed.set_result(None)
        peer = self._peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()

    def pause_writing(self) -> None:
        """asyncio callback: our write buffer is over its high-water mark; pause the peer."""
        peer = self._peer
        if peer is not None:
            peer._pause_reading()

    def resume_writing(self) -> None:
        """asyncio callback: our write buffer drained; resume reading the peer."""
        peer = self._peer
        if peer is not None:
            peer._resume_reading()

    # ---------------------------------------------------------------------- handshake API

    async def read(self) -> bytes:
        """Everything buffered (waiting for at least one byte); raises ConnectionClosed at EOF."""
        while not self._buf:
            if self._eof or self.transport is None or self.transport.is_closing():
                raise ConnectionClosed("connection closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._buf)
        self._buf.clear()
        self._resume_reading()
        return data

    def write(self, data: bytes) -> None:
        """Send ``data`` (buffered by the transport); silently dropped once closing or closed."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def unread(self, data: bytes) -> None:
        """Put bytes back in front of the buffer (read too far during the handshake)."""
        if data:
            self._buf[:0] = data

    async def start_tls(self, context: ssl.SSLContext, *, timeout: float) -> None:
        """Upgrade this server-side connection to TLS (after answering ``S``)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        new = await loop.start_tls(self.transport, self, context, server_side=True,
                                   ssl_handshake_timeout=timeout)
        if new is None:
            raise ConnectionClosed("TLS handshake did not complete")
        self.transport = new

    def extra(self, name: str) -> Any:
        """The transport's ``get_extra_info(name)`` (e.g. ``"peername"``, ``"ssl_object"``); None
        before the connection is made or when the transport has no such item.
        """
        return None if self.transport is None else self.transport.get_extra_info(name)

    def close(self) -> None:
        """Close the transport after flushing its buffer; no-op before the connection is made."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close the transport at once, dropping its buffer; no-op before the connection is made."""
        if self.transport is not None:
            self.transport.abort()

    # ---------------------------------------------------------------------- relay

    @property
    def linked(self) -> bool:
        """True once ``link`` paired this side with a peer (relay mode)."""
        return self._peer is not None

    def link(self, peer: RelayConnection) -> None:
        """Start forwarding in both directions; flushes bytes buffered during the handshake."""
        self._peer, peer._peer = peer, self
        for side in (self, peer):
            if side.transport is not None:
                side.transport.set_write_buffer_limits(high=RELAY_WRITE_HIGH_WATER)
        for side, other in ((self, peer), (peer, self)):
            if side._buf and other.transport is not None:
                other.transport.write(bytes(side._buf))
            side._buf.clear()
            side._resume_reading()
            if side._eof and other.transport is not None:
                other.transport.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is lost (``closed`` resolves)."""
        await self.closed

    # ---------------------------------------------------------------------- internals

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.resume_reading()
