"""Sans-I/O wire protocols: codecs and handshake state machines (bytes in, events and bytes out).

Nothing here touches sockets, asyncio or TLS; the endpoint glue in ``rdsiam_emulator.endpoint``
feeds bytes in and writes the returned bytes out.
"""
