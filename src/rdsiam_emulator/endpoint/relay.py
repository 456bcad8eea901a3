"""Connections as asyncio Protocols that first serve a handshake, then relay bytes to a peer.

Why Protocols and not streams: after authentication every byte is forwarded unchanged, and the
cheapest way in asyncio is to write each received chunk straight into the peer's transport from
``data_received`` — no task wake-up, no copy into a StreamReader. Flow control uses the transports'
own watermarks: when the peer's write buffer is full, asyncio calls ``pause_writing`` on the peer's
protocol, which pauses reading on this side (and resumes symmetrically), so a slow client cannot
make the endpoint buffer a large result.

The same object serves the handshake (``read``/``write`` with a small await API) so no buffered
bytes are lost when switching to relay mode, and TLS can be started in between (``start_tls``).

Why TLS here and not the loop's (``loop.start_tls``, ``connect_accepted_socket(ssl=...)``): both
asyncio's and uvloop's SSL protocols give every connection its own 256 KiB read buffer and ask
``SSLObject.read`` for 256 KiB at a time (a 256 KiB allocation per read, shrunk afterwards). Under
connection churn those large, short-lived blocks interleave with OpenSSL's small long-lived ones
in the loop thread's malloc arena, and the process's RSS grew every round without being returned
(issue #16; docs/benchmarks/README.md has the figures). Here every connection reads into one
buffer per thread (``BufferedProtocol``) and TLS runs over memory BIOs, decrypting into another
per-thread buffer: the only per-connection memory is OpenSSL's own state and the bytes actually
received.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from typing import Any, cast

HANDSHAKE_BUFFER_LIMIT = 256 * 1024
"""Pause reading a client that sends more than this before it is authenticated."""
RELAY_WRITE_HIGH_WATER = 1024 * 1024
"""Write buffer per direction before the other side is paused: large enough that bulk transfers
(COPY, big results) are not paused and resumed every 64 KiB, small enough to bound memory."""
RECV_BUFFER_SIZE = 256 * 1024
"""Bytes one socket read may return (the size asyncio's and uvloop's own reads use)."""
TLS_READ_SIZE = 64 * 1024
"""Plaintext bytes one ``SSLObject.read`` may return (a TLS record holds at most 16 KiB)."""


class _ThreadBuffers(threading.local):
    """The receive and decrypt buffers of one thread, shared by its connections: a protocol
    copies what it needs out of them before the loop reads the next socket."""

    def __init__(self) -> None:
        self.recv = memoryview(bytearray(RECV_BUFFER_SIZE))
        self.plain = bytearray(TLS_READ_SIZE)
        self.plain_view = memoryview(self.plain)


_BUFFERS = _ThreadBuffers()


class ConnectionClosed(Exception):
    """The peer closed the connection (or it broke) while a handshake was reading."""


class RelayConnection(asyncio.BufferedProtocol):
    """One side of a relayed session; ``link`` two of them to start forwarding.

    ``transport`` is the socket's transport, or after ``start_tls`` a ``TlsTransport`` over it
    (same API: writes are encrypted, ``get_extra_info("ssl_object")`` is the ``SSLObject``).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._tls: _TlsState | None = None
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

    def get_buffer(self, sizehint: int) -> memoryview:
        """asyncio callback: where the next socket read goes (this thread's shared buffer)."""
        return _BUFFERS.recv

    def buffer_updated(self, nbytes: int) -> None:
        """asyncio callback: ``nbytes`` arrived in the buffer; plaintext goes to
        ``data_received``, TLS bytes are decrypted first."""
        tls = self._tls
        if tls is None:
            self.data_received(bytes(_BUFFERS.recv[:nbytes]))
            return
        tls.incoming.write(_BUFFERS.recv[:nbytes])
        if tls.handshaking:
            self._wake()
        else:
            self._decrypt(tls)

    def data_received(self, data: bytes) -> None:
        """Plaintext arrived: forward ``data`` to the peer once linked, else buffer it for ``read``.

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
        """Upgrade this server-side connection to TLS: bytes already buffered are the start of
        the client's handshake. Returns once the handshake is done; afterwards ``transport``
        encrypts and received bytes are decrypted before ``data_received``.

        Raises ``ssl.SSLError`` (its alert is sent to the client first), ``ConnectionClosed``
        when the client leaves, ``TimeoutError`` after ``timeout`` seconds.
        """
        raw = self.transport
        assert raw is not None and self._tls is None
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        sslobj = context.wrap_bio(incoming, outgoing, server_side=True)
        tls = _TlsState(sslobj, incoming, outgoing, raw)
        self._tls = tls
        if self._buf:
            incoming.write(self._buf)
            self._buf.clear()
            self._resume_reading()
        async with asyncio.timeout(timeout):
            while True:
                try:
                    sslobj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                finally:
                    _flush(tls)  # our handshake records, or the alert saying why it failed
                if self._eof or raw.is_closing():
                    raise ConnectionClosed("the client left during the TLS handshake")
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
        tls.handshaking = False
        self.transport = cast(asyncio.Transport, TlsTransport(raw, tls))
        if incoming.pending:  # application data that came with the client's Finished
            self._decrypt(tls)

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

    def _decrypt(self, tls: _TlsState) -> None:
        """Hand every whole record in ``tls.incoming`` to ``data_received`` as plaintext, up to
        ``TLS_READ_SIZE`` bytes per call (records are at most 16 KiB: a bulk transfer is
        relayed in 64 KiB writes, not one per record)."""
        view = _BUFFERS.plain_view
        reader = cast(Any, tls.sslobj)  # typeshed: read's buffer is a bytearray; any works
        more = True
        while more and not tls.failed:
            filled, finished = 0, False
            while filled < TLS_READ_SIZE:
                try:
                    count = int(reader.read(TLS_READ_SIZE - filled, view[filled:]))
                except ssl.SSLWantReadError:
                    more = False
                    break
                except ssl.SSLZeroReturnError:
                    count = 0
                except ssl.SSLError:
                    tls.failed = True  # a broken or forged record: the connection is over
                    tls.raw.abort()
                    return
                if count == 0:  # close_notify: the client finished sending
                    finished, more = True, False
                    break
                filled += count
                if not reader.pending() and not tls.incoming.pending:
                    # nothing left to decrypt: spare the read that would end in
                    # SSLWantReadError (an exception per record)
                    more = False
                    break
            if filled:
                self.data_received(bytes(view[:filled]))
            if finished and not self._eof and self.eof_received() is not True \
                    and self.transport is not None:
                self.transport.close()
        _flush(tls)  # e.g. the answer to a TLS 1.3 KeyUpdate

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


class _TlsState:
    """One connection's TLS over memory BIOs (the socket's bytes go in and out through them)."""

    __slots__ = ("failed", "handshaking", "incoming", "outgoing", "raw", "sslobj")

    def __init__(self, sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO,
                 outgoing: ssl.MemoryBIO, raw: asyncio.Transport) -> None:
        self.sslobj = sslobj
        self.raw = raw
        """The socket's transport (ciphertext)."""
        self.incoming = incoming
        self.outgoing = outgoing
        self.handshaking = True
        self.failed = False


def _flush(tls: _TlsState) -> None:
    """Send what OpenSSL wrote to ``tls.outgoing`` (records, alerts) on the socket."""
    if tls.outgoing.pending and not tls.raw.is_closing():
        tls.raw.write(tls.outgoing.read())


class TlsTransport:
    """The ``asyncio.Transport`` API of a TLS connection whose socket transport is ``raw``:
    ``write`` encrypts, ``close`` sends close_notify first; reading, flow control and
    buffer sizes are the socket transport's (ciphertext)."""

    def __init__(self, raw: asyncio.Transport, tls: _TlsState) -> None:
        self._raw = raw
        self._tls = tls
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` and queue it on the socket; dropped once closing."""
        if self._closing or self._raw.is_closing() or self._tls.failed:
            return
        self._tls.sslobj.write(data)
        self._raw.write(self._tls.outgoing.read())

    def writelines(self, chunks: list[bytes]) -> None:
        """``write`` of every chunk, in order."""
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        """Send close_notify, then close the socket after flushing (idempotent)."""
        if self._closing:
            return
        self._closing = True
        if not self._raw.is_closing() and not self._tls.failed:
            with contextlib.suppress(ssl.SSLError):  # the peer's close_notify is not awaited
                self._tls.sslobj.unwrap()
            _flush(self._tls)
        self._raw.close()

    def abort(self) -> None:
        """Close the socket at once, dropping what is buffered."""
        self._closing = True
        self._raw.abort()

    def is_closing(self) -> bool:
        """True once ``close``/``abort`` was called or the socket transport is closing."""
        return self._closing or self._raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``ssl_object``, ``peercert``, ``cipher``, ``compression`` from TLS; anything else
        (``peername``, ``socket``...) from the socket transport."""
        sslobj = self._tls.sslobj
        if name == "ssl_object":
            return sslobj
        if name == "peercert":
            return sslobj.getpeercert()
        if name == "cipher":
            return sslobj.cipher()
        if name == "compression":
            return sslobj.compression()
        return self._raw.get_extra_info(name, default)

    def pause_reading(self) -> None:
        """Stop reading the socket."""
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        """Read the socket again."""
        self._raw.resume_reading()

    def is_reading(self) -> bool:
        """Whether the socket is being read."""
        return self._raw.is_reading()

    def get_write_buffer_size(self) -> int:
        """Ciphertext bytes queued on the socket."""
        return self._raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """The socket transport's watermarks (ciphertext bytes)."""
        self._raw.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The socket transport's (low, high) watermarks."""
        return self._raw.get_write_buffer_limits()
