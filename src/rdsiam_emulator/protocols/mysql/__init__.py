"""Sans-I/O MySQL/MariaDB wire protocol: packet codec, handshake messages and login state machines.

Nothing here touches sockets, TLS or asyncio: functions and machines take bytes and return
events/bytes, so every corner of the handshake is testable with byte vectors (h11 style).
"""
