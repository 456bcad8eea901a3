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


def test_single_whole_packets_take_the_fast_path_but_are_still_inspected():
    framer = CommandFramer()
    query = encode_packet(0, b"\x03SELECT 1")
    items, rest = framer.feed(query)
    assert items == [query] and items[0] is query and rest == b""  # forwarded without a copy
    ddl = encode_packet(0, b"\x03ALTER USER x IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    items, rest = framer.feed(ddl)
    assert len(items) == 1 and isinstance(items[0], Intercept) and items[0].raw == ddl
    change = encode_packet(0, b"\x11bob\0")
    items, rest = CommandFramer().feed(change)
    assert len(items) == 1 and isinstance(items[0], Intercept)
    not_a_command = encode_packet(1, b"\x11bob\0")  # seq != 0: an auth answer, not a command
    assert CommandFramer().feed(not_a_command) == ([not_a_command], b"")
    empty = encode_packet(0, b"")
    assert CommandFramer().feed(empty) == ([empty], b"")


def test_fast_path_hands_over_to_the_framer_for_partial_packets():
    framer = CommandFramer()
    query = encode_packet(0, b"\x03SELECT 'a long text', 2")
    big = encode_packet(0, b"\x03INSERT INTO t VALUES ('" + b"x" * 2_000_000 + b"')")
    out: list[bytes] = []
    for chunk in (query[:7], query[7:] + big[:5000], big[5000:], query):
        items, rest = framer.feed(chunk)
        assert rest == b"" and all(isinstance(i, bytes) for i in items)
        out.extend(i for i in items if isinstance(i, bytes))
    assert b"".join(out) == query + big + query
    assert framer.feed(query) == ([query], b"")  # whole packets again: the fast path


def test_password_changes_without_the_word_user_are_intercepted():
    for text in (b"\x03GRANT SELECT ON *.* TO bob IDENTIFIED BY 'x'",
                 b"\x03SET PASSWORD FOR bob = PASSWORD('x')", b"\x03set password = 'x'"):
        packet = encode_packet(0, text)
        items, rest = CommandFramer().feed(packet)  # the single-packet fast path
        assert isinstance(items[0], Intercept) and items[0].raw == packet and rest == b""
        items, rest = CommandFramer().feed(packet + encode_packet(0, b"\x0e"))  # the framer
        assert isinstance(items[0], Intercept) and items[0].raw == packet
