"""Reading command responses, sans-I/O: the outcomes of (multi-statement) account DDL, whose
answers may hold result sets (``IDENTIFIED BY RANDOM PASSWORD``), and the COM_QUERY layout
with query attributes."""

import pytest

from rdsiam_emulator.protocols.mysql.messages import split_query
from rdsiam_emulator.protocols.mysql.packets import Packet, ProtocolError, lenenc_bytes
from rdsiam_emulator.protocols.mysql.results import DdlOutcomes

MORE = b"\x08\x00"  # SERVER_MORE_RESULTS_EXISTS
LAST = b"\x02\x00"  # autocommit only
ERR = b"\xff\x74\x05#HY000Operation ALTER USER failed for 'x'@'%'"


def _random_password_result(deprecate_eof: bool, status: bytes) -> list[bytes]:
    """What MySQL 8 answers ALTER USER ... IDENTIFIED BY RANDOM PASSWORD with: four columns
    (user, host, generated password, auth_factor) and one row."""
    out = [b"\x04"] + [b"\x03def" + b"\x00" * 12] * 4
    if not deprecate_eof:
        out.append(b"\xfe\x00\x00" + LAST)
    out.append(lenenc_bytes(b"u") + lenenc_bytes(b"%") + lenenc_bytes(b"pw") + lenenc_bytes(b"1"))
    out.append(b"\xfe\x00\x00" + status + b"\x00\x00" if deprecate_eof
               else b"\xfe\x00\x00" + status)
    return out


def _feed(reader: DdlOutcomes, payloads: list[bytes]) -> list[bool]:
    return [reader.feed(Packet(i + 1, p)) for i, p in enumerate(payloads)]


@pytest.mark.parametrize("deprecate_eof", [False, True])
def test_a_result_set_is_a_successful_statement(deprecate_eof):
    reader = DdlOutcomes(deprecate_eof)
    payloads = [b"\x00\x00\x00" + MORE + b"\x00\x00",
                *_random_password_result(deprecate_eof, MORE), ERR]
    assert _feed(reader, payloads) == [False] * (len(payloads) - 1) + [True]
    assert not reader.unknown
    assert [o.ok for o in reader.outcomes] == [True, True, False]
    assert [o.rows for o in reader.outcomes] == [False, True, False]
    assert reader.outcomes[2].error is not None and reader.outcomes[2].error.code == 1396


@pytest.mark.parametrize("deprecate_eof", [False, True])
def test_a_last_result_set_ends_the_response(deprecate_eof):
    reader = DdlOutcomes(deprecate_eof)
    payloads = _random_password_result(deprecate_eof, LAST)
    assert _feed(reader, payloads)[-1] is True
    assert [o.ok for o in reader.outcomes] == [True] and not reader.unknown


def test_other_shapes_are_unknown():
    reader = DdlOutcomes()
    assert reader.feed(Packet(1, b"\xfb/tmp/x"))  # LOCAL INFILE request
    assert reader.unknown and reader.outcomes == []
    reader = DdlOutcomes()
    _feed(reader, [b"\x01", b"\x03def", b"\x00row instead of EOF"])
    assert reader.unknown and reader.done


def test_split_query_without_attributes():
    assert split_query(b"\x03SELECT 1", False) == (b"\x03", b"SELECT 1")


def test_split_query_with_attributes_of_each_value_shape():
    names = [b"s", b"n", b"i", b"t", b"d"]
    types = [b"\xfe\x00", b"\x06\x00", b"\x08\x80", b"\x0c\x00", b"\x05\x00"]
    values = (lenenc_bytes(b"text;*/")  # a string
              + b"\x01\x00\x00\x00\x00\x00\x00\x00"  # unsigned LONGLONG
              + b"\x04\xea\x07\x0b\x1e"  # DATETIME: length byte + date
              + b"\x00" * 8)  # DOUBLE
    head = (b"\x03\x05\x01" + b"\x02" + b"\x01"  # 5 params, 1 set, "n" is NULL, bind flag
            + b"".join(t + lenenc_bytes(n) for t, n in zip(types, names, strict=True)) + values)
    assert split_query(head + b"CREATE USER x", True) == (head, b"CREATE USER x")
    assert split_query(b"\x03\x00\x01SELECT 1", True) == (b"\x03\x00\x01", b"SELECT 1")


@pytest.mark.parametrize("payload", [
    b"\x03\x01\x01\x00\x01\x42\x00\x01aSELECT 1",  # a type this reader does not know
    b"\x03\x01\x01\x00\x00\xfe\x00\x01a",  # no bind flag
    b"\x03\x02\x01\x00\x01\xfe\x00",  # cut short
])
def test_split_query_refuses_what_it_cannot_read(payload):
    with pytest.raises(ProtocolError):
        split_query(payload, True)
