"""TLS in ``RelayConnection`` (memory BIOs, per-thread buffers; issue #16): handshake, bulk data
in both directions, the client's close_notify, a forged record, a client that leaves
mid-handshake and handshake garbage. A loopback echo server made of
``RelayConnection`` and real TLS client sockets, on both event loops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdsiam_emulator.endpoint.loop_thread import LoopThread
from rdsiam_emulator.endpoint.relay import ConnectionClosed, RelayConnection
from rdsiam_emulator.tls import EmulatorCA

NAME = "relay.example"


class EchoServer:
    """Accepts on 127.0.0.1, upgrades to TLS at once, echoes until EOF; records each outcome."""

    def __init__(self, lt: LoopThread, context: ssl.SSLContext) -> None:
        self.lt = lt
        self.context = context
        self.outcomes: list[str] = []
        self.conns: list[RelayConnection] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._make, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _make(self) -> RelayConnection:
        conn = RelayConnection()
        self.conns.append(conn)
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._serve(conn)))
        return conn

    async def _serve(self, conn: RelayConnection) -> None:
        try:
            await conn.start_tls(self.context, timeout=5)
            while True:
                conn.write(await conn.read())
        except ConnectionClosed:
            self.outcomes.append("closed")
            conn.close()
        except ssl.SSLError:
            self.outcomes.append("tls error")
            conn.abort()
        await conn.wait_closed()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self.conns:
            conn.abort()
        await self._server.wait_closed()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> EmulatorCA:
    return EmulatorCA(Path(tmp_path_factory.mktemp("ca")))


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest, ca: EmulatorCA) -> Iterator[EchoServer]:
    lt = LoopThread(loop=request.param)
    echo = EchoServer(lt, ca.server_certificate([NAME]).server_context())
    lt.run(echo.start())
    try:
        yield echo
    finally:
        lt.run(echo.stop())
        lt.stop()


def _client(server: EchoServer, ca: EmulatorCA) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return ca.client_context().wrap_socket(sock, server_hostname=NAME)


def _recv_exactly(sock: ssl.SSLSocket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(min(1 << 20, n - len(data)))
        assert chunk, f"closed after {len(data)} of {n} bytes"
        data += chunk
    return bytes(data)


def _wait_for(server: EchoServer, outcome: str) -> None:
    async def poll() -> None:
        while outcome not in server.outcomes:
            await asyncio.sleep(0.01)

    server.lt.run(poll(), timeout=10)


def test_echo_small_and_bulk_both_ways(server: EchoServer, ca: EmulatorCA) -> None:
    with _client(server, ca) as sock:
        sock.sendall(b"ping")
        assert _recv_exactly(sock, 4) == b"ping"
        blob = os.urandom(3 * 1024 * 1024 + 17)  # many records, more than one read buffer
        sent = bytearray()
        for start in range(0, len(blob), 1 << 20):
            part = blob[start:start + (1 << 20)]
            sock.sendall(part)
            sent += _recv_exactly(sock, len(part))
        assert bytes(sent) == blob
        assert sock.version() in ("TLSv1.2", "TLSv1.3")


def test_client_close_notify_is_eof(server: EchoServer, ca: EmulatorCA) -> None:
    sock = _client(server, ca)
    sock.sendall(b"x")
    assert _recv_exactly(sock, 1) == b"x"
    raw = sock.unwrap()  # sends close_notify; the server answers with its own and closes
    try:
        _wait_for(server, "closed")
        raw.settimeout(5)
        assert raw.recv(100) == b""
    finally:
        raw.close()


def test_forged_record_ends_only_that_connection(server: EchoServer, ca: EmulatorCA) -> None:
    good = _client(server, ca)
    bad = _client(server, ca)
    try:
        bad.sendall(b"hello")
        assert _recv_exactly(bad, 5) == b"hello"
        # an application-data record that no key produced: the MAC check fails
        bad_sock = socket.socket(fileno=os.dup(bad.fileno()))
        try:
            bad_sock.sendall(b"\x17\x03\x03" + struct.pack("!H", 64) + os.urandom(64))
        finally:
            bad_sock.close()
        bad.settimeout(5)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            while bad.recv(100):
                pass
            raise ConnectionResetError("closed")  # EOF is also the expected end
        good.sendall(b"still here")
        assert _recv_exactly(good, 10) == b"still here"
    finally:
        good.close()
        bad.close()


def test_client_leaving_mid_handshake(server: EchoServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00")  # the start of a ClientHello record, then nothing
    _wait_for(server, "closed")


def test_handshake_garbage_gets_an_alert(server: EchoServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 100)
        data = b""
        while chunk := sock.recv(100):
            data += chunk
    _wait_for(server, "tls error")
    assert data[:1] == b"\x15"  # a TLS alert record tells the client why, then the close


def test_records_split_and_coalesced_then_close_notify(server: EchoServer,
                                                       ca: EmulatorCA) -> None:
    """_decrypt stops reading once OpenSSL and the incoming BIO are both empty: records cut
    into pieces, many records in one segment and a close_notify right behind data all still
    arrive whole."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ca.client_context().wrap_bio(incoming, outgoing, server_hostname=NAME)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                incoming.write(raw.recv(65536))
        raw.sendall(outgoing.read())
        messages = [bytes([65 + i % 26]) * (i + 1) for i in range(40)]
        for m in messages:  # one record each
            tls.write(m)
        records = outgoing.read()
        for start in range(0, len(records), 7):  # cut mid-record, mid-header
            raw.sendall(records[start:start + 7])
        expected = b"".join(messages)
        got = bytearray()
        while len(got) < len(expected):
            try:
                got += tls.read(65536)
            except ssl.SSLWantReadError:
                data = raw.recv(65536)
                assert data, f"closed after {len(got)} of {len(expected)} bytes"
                incoming.write(data)
        assert bytes(got) == expected
        tls.write(b"last-words")
        with contextlib.suppress(ssl.SSLWantReadError):  # the server's answer is not awaited
            tls.unwrap()  # close_notify in the same segment as the data
        raw.sendall(outgoing.read())
        _wait_for(server, "closed")
    finally:
        raw.close()
