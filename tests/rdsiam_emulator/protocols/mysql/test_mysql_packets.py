import pytest

from rdsiam_emulator.protocols.mysql.packets import (
    PacketDecoder,
    ProtocolError,
    Reader,
    encode_packet,
    encode_packets,
    lenenc_int,
)


def test_encode_simple_packet():
    assert encode_packet(3, b"\x03SELECT 1") == b"\x09\x00\x00\x03\x03SELECT 1"


def test_decoder_handles_split_and_joined_input():
    data = encode_packet(0, b"abc") + encode_packet(1, b"")
    dec = PacketDecoder()
    assert dec.feed(data[:2]) == []
    assert dec.feed(data[2:6]) == []
    first = dec.feed(data[6:7])
    assert [(p.seq, p.payload) for p in first] == [(0, b"abc")]
    rest = dec.feed(data[7:])
    assert [(p.seq, p.payload) for p in rest] == [(1, b"")]


def test_16mb_continuation_roundtrip():
    payload = bytes(range(256)) * (0xFFFFFF // 256 + 10)
    frames, next_seq = encode_packets(7, payload)
    assert len(frames) == 2 and next_seq == 9
    assert frames[0][:4] == b"\xff\xff\xff\x07"
    dec = PacketDecoder(max_payload=32 * 1024 * 1024)
    packets = dec.feed(b"".join(frames))
    assert len(packets) == 1
    assert packets[0].payload == payload and packets[0].seq == 8


def test_exact_multiple_of_chunk_needs_empty_trailer():
    frames, next_seq = encode_packets(0, b"x" * 0xFFFFFF)
    assert len(frames) == 2 and frames[1] == b"\x00\x00\x00\x01" and next_seq == 2


def test_oversized_packet_rejected_before_buffering():
    dec = PacketDecoder(max_payload=1000)
    with pytest.raises(ProtocolError) as info:
        dec.feed(b"\x01\x10\x00\x00")  # announces 4097 bytes
    assert info.value.code == 1153


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (250, b"\xfa"), (251, b"\xfc\xfb\x00"), (65536, b"\xfd\x00\x00\x01"),
     (1 << 24, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00")],
)
def test_lenenc_int(value, encoded):
    assert lenenc_int(value) == encoded
    assert Reader(encoded).lenenc_int() == value


def test_reader_rejects_truncation_and_bad_prefix():
    with pytest.raises(ProtocolError):
        Reader(b"\x01").uint(2)
    with pytest.raises(ProtocolError):
        Reader(b"\xff").lenenc_int()
    with pytest.raises(ProtocolError):
        Reader(b"abc").nul_str()
