"""Byte-level tests of the PostgreSQL codec (framing, encoders, readers)."""

from __future__ import annotations

import struct

import pytest

from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.protocols.postgres.codec import ProtocolError

# --------------------------------------------------------------------------------- codec


def test_ssl_request_bytes_are_the_documented_ones() -> None:
    assert codec.ssl_request() == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
    assert codec.gssenc_request() == b"\x00\x00\x00\x08\x04\xd2\x16\x30"


def test_startup_message_layout() -> None:
    raw = codec.startup_message({"user": "bob", "database": "db"})
    assert raw == (b"\x00\x00\x00\x1e\x00\x03\x00\x00user\x00bob\x00database\x00db\x00\x00")


def test_fatal_error_fields_in_server_order() -> None:
    raw = codec.fatal("28000", 'PAM authentication failed for user "u"', routine="auth_failed")
    assert raw[:1] == b"E"
    assert struct.unpack("!i", raw[1:5])[0] == len(raw) - 1
    fields = codec.parse_fields(raw[5:])
    assert list(fields) == ["S", "V", "C", "M", "R"]
    assert fields["C"] == "28000"
    assert raw.endswith(b"auth_failed\x00\x00")


def test_message_reader_splits_coalesced_and_partial_input() -> None:
    data = codec.parameter_status("a", "1") + codec.ready_for_query()
    reader = codec.MessageReader()
    reader.feed(data[:3])
    assert reader.next_message() is None
    reader.feed(data[3:])
    first = reader.next_message()
    assert first == codec.Message(b"S", b"a\x001\x00")
    second = reader.next_message()
    assert second == codec.Message(b"Z", b"I")
    assert reader.next_message() is None


@pytest.mark.parametrize("length", [3, -1, codec.MAX_AUTH_MESSAGE + 1, 0x7FFFFFFF])
def test_message_reader_rejects_bad_lengths(length: int) -> None:
    reader = codec.MessageReader()
    reader.feed(b"p" + struct.pack("!i", length))
    with pytest.raises(ProtocolError):
        reader.next_message()


@pytest.mark.parametrize("length", [0, 7, codec.MAX_STARTUP_PACKET + 1, 0x7FFFFFFF])
def test_startup_reader_rejects_bad_lengths(length: int) -> None:
    reader = codec.StartupReader()
    reader.feed(struct.pack("!i", length) + b"\x00" * 8)
    with pytest.raises(ProtocolError, match="invalid length of startup packet"):
        reader.next_packet()
