import pytest

from rdsiam_emulator.protocols.mysql.constants import Capability as C
from rdsiam_emulator.protocols.mysql.messages import (
    AuthSwitch,
    ChangeUser,
    ErrPacket,
    Greeting,
    HandshakeResponse,
    access_denied,
    auth_switch_request,
    ok_packet,
    ok_status,
)
from rdsiam_emulator.protocols.mysql.packets import ProtocolError, lenenc_bytes

# A MariaDB 10.11 greeting, byte for byte as the server sends it (connection id 5).
MARIADB_GREETING = bytes.fromhex(
    "0a352e352e352d31302e31312e31392d4d617269614442"
    "2d302b64656231327531000500000041424344454647480"
    "0feff2d0200ff8115000000000000"  # caps lo, charset 45, status, caps hi, len 21, reserved
    "1d000000"  # MariaDB extended capabilities in the last 4 reserved bytes
    "494a4b4c4d4e4f5051525354006d7973716c5f6e61746976655f70617373776f726400"
)


def test_parse_real_mariadb_greeting_and_rebuild_identically():
    g = Greeting.parse(MARIADB_GREETING)
    assert g.server_version == b"5.5.5-10.11.19-MariaDB-0+deb12u1"
    assert g.connection_id == 5
    assert g.nonce == b"ABCDEFGHIJKLMNOPQRST"
    assert g.auth_plugin == "mysql_native_password"
    assert g.charset == 45
    assert not g.capabilities & C.LONG_PASSWORD  # MariaDB marker
    assert g.reserved[-4:] == b"\x1d\x00\x00\x00"
    assert g.build() == MARIADB_GREETING


def test_greeting_error_is_reported():
    err = ErrPacket(1040, "08004", "Too many connections").build()
    with pytest.raises(ProtocolError, match="Too many connections"):
        Greeting.parse(err)


def _response(caps: int, **kw) -> HandshakeResponse:
    base = dict(capabilities=caps, max_packet=1 << 24, charset=45, filler=b"\0" * 23)
    base.update(kw)
    return HandshakeResponse(**base)


FULL = (C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH | C.CONNECT_WITH_DB | C.CONNECT_ATTRS
        | C.PLUGIN_AUTH_LENENC_CLIENT_DATA | C.DEPRECATE_EOF | C.MULTI_STATEMENTS)


def test_handshake_response_roundtrip_all_fields():
    attrs = lenenc_bytes(b"_client_name") + lenenc_bytes(b"pymysql")
    resp = _response(FULL, user=b"iam_user", auth_response=b"x" * 300, database=b"app",
                     auth_plugin="mysql_native_password", attributes=attrs)
    raw = resp.build()
    back = HandshakeResponse.parse(raw)
    assert back == resp
    assert back.attribute_pairs() == {"_client_name": "pymysql"}


def test_handshake_response_one_byte_length_auth():
    caps = C.PROTOCOL_41 | C.SECURE_CONNECTION
    raw = _response(caps, user=b"bob", auth_response=b"\x01" * 20).build()
    assert raw[32:] == b"bob\0" + b"\x14" + b"\x01" * 20
    assert HandshakeResponse.parse(raw).auth_response == b"\x01" * 20


def test_ssl_request_detected():
    raw = _response(C.PROTOCOL_41 | C.SSL, is_ssl_request=True).build()
    assert len(raw) == 32
    assert HandshakeResponse.parse(raw).is_ssl_request


def test_old_protocol_client_refused():
    with pytest.raises(ProtocolError) as info:
        HandshakeResponse.parse(b"\x00" * 40)
    assert info.value.code == 1251


def test_truncated_response_raises():
    raw = _response(FULL, user=b"bob", auth_response=b"x" * 20).build()
    with pytest.raises(ProtocolError):
        HandshakeResponse.parse(raw[:36])  # user without NUL


def test_err_packet_has_sql_state_marker():
    err = access_denied("iam_user", "10.1.2.3")
    raw = err.build()
    assert raw[:4] == b"\xff\x15\x04#" and raw[4:9] == b"28000"
    assert ErrPacket.parse(raw).render() == (
        "ERROR 1045 (28000): Access denied for user 'iam_user'@'10.1.2.3' (using password: YES)")


def test_auth_switch_roundtrip_and_old_style_refused():
    raw = auth_switch_request("mysql_clear_password", b"")
    assert raw == b"\xfemysql_clear_password\0"
    assert AuthSwitch.parse(raw) == AuthSwitch("mysql_clear_password", b"")
    assert AuthSwitch.parse(auth_switch_request("mysql_native_password", b"N" * 20 + b"\0")).data \
        == b"N" * 20
    with pytest.raises(ProtocolError):
        AuthSwitch.parse(b"\xfe")


def test_ok_status():
    assert ok_status(ok_packet(status=0x000A)) == 0x000A


def test_change_user_roundtrip():
    caps = C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH | C.CONNECT_ATTRS
    cu = ChangeUser(b"bob", b"s" * 20, b"db", 45, "mysql_native_password",
                    lenenc_bytes(b"k") + lenenc_bytes(b"v"))
    raw = cu.build(caps)
    assert raw[0] == 0x11
    assert ChangeUser.parse(raw, caps) == cu


def test_as_seen_from_names_the_clients_address():
    """#17: 3118 (account locked) names the address the server saw (the endpoint's)."""
    from rdsiam_emulator.protocols.mysql.messages import ErrPacket, as_seen_from

    locked = ErrPacket(3118, "HY000", "Access denied for user 'o''x'@'10.88.0.1'. Account is "
                       "locked.")
    assert as_seen_from(locked, "o''x", "192.0.2.7").message == (
        "Access denied for user 'o''x'@'192.0.2.7'. Account is locked.")
    pattern = ErrPacket(1044, "42000", "Access denied for user 'v'@'%' to database 'app'")
    assert as_seen_from(pattern, "v", "192.0.2.7") is pattern  # the account's host, not ours
