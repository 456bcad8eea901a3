from rdsiam_emulator.protocols.mysql.framing import CommandFramer, Intercept
from rdsiam_emulator.protocols.mysql.packets import encode_packet


def test_plain_queries_stream_through_even_when_split():
    framer = CommandFramer()
    data = encode_packet(0, b"\x03SELECT 1") + encode_packet(0, b"\x0e")
    out = []
    for i in range(len(data)):
        items, rest = framer.feed(data[i : i + 1])
        assert rest == b""
        out.extend(items)
    assert b"".join(out) == data and not any(isinstance(i, Intercept) for i in out)


def test_user_ddl_and_change_user_are_intercepted_with_rest_kept():
    framer = CommandFramer()
    ddl = encode_packet(0, b"\x03CREATE USER x IDENTIFIED WITH AWSAuthenticationPlugin")
    before = encode_packet(0, b"\x03SELECT 1")
    after = encode_packet(0, b"\x0e")
    items, rest = framer.feed(before + ddl + after)
    assert items[0] == before
    assert isinstance(items[1], Intercept) and items[1].raw == ddl
    assert rest == after
    items, rest = CommandFramer().feed(encode_packet(0, b"\x11bob\0"))
    assert isinstance(items[0], Intercept)


def test_large_packets_are_not_buffered():
    framer = CommandFramer()
    big = encode_packet(0, b"\x03INSERT INTO t VALUES ('" + b"x" * 2_000_000 + b"')")
    items, _ = framer.feed(big[:100_000])
    assert b"".join(i for i in items if isinstance(i, bytes)) == big[:100_000]
    items, _ = framer.feed(big[100_000:])
    assert b"".join(i for i in items if isinstance(i, bytes)) == big[100_000:]
