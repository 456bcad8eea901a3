"""The cluster endpoints' TCP forwarder (endpoint/forward.py) on loopback, against a small
asyncio echo server: splicing, and closing with connections open."""

import asyncio
import logging

import pytest

from rdsiam_emulator.endpoint.event_loops import new_event_loop
from rdsiam_emulator.endpoint.forward import Forwarder


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _open_and_close(connections: int) -> list[bytes]:
    target = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = target.sockets[0].getsockname()[1]
    forwarder = Forwarder(lambda: ("127.0.0.1", port))
    await forwarder.start()
    clients = [await asyncio.open_connection("127.0.0.1", forwarder.port)
               for _ in range(connections)]
    for i, (reader, writer) in enumerate(clients):
        writer.write(b"ping %d" % i)
        assert await reader.readexactly(6) == b"ping %d" % i
    await asyncio.wait_for(forwarder.close(), 10)
    # every client sees its connection end (EOF or reset), none hangs
    ends = []
    for reader, writer in clients:
        try:
            ends.append(await asyncio.wait_for(reader.read(), 10))
        except ConnectionError:
            ends.append(b"reset")
        writer.close()
    target.close()
    await target.wait_closed()
    await asyncio.sleep(0.1)  # let the loop run the handlers' done callbacks
    return ends


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_close_with_open_connections_is_quiet(caplog, loop_name):
    loop = new_event_loop(loop_name)  # both loops the endpoints run on (uvloop: a dependency)
    try:
        with caplog.at_level(logging.DEBUG):
            ends = loop.run_until_complete(_open_and_close(3))
    finally:
        loop.close()
    assert all(end in (b"", b"reset") for end in ends), ends
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    # was one "Exception in callback … CancelledError" per connection (asyncio), one "Unhandled
    # exception in client_connected_cb" RuntimeError (uvloop, write_eof on an aborted side)
    assert errors == []
