"""Login machines with scripted peers. The MySQL 8 server side (caching_sha2_password fast and
full authentication with RSA) is computed here from the protocol definition with a self-made key;
the same exchanges against a real Oracle MySQL are in endpoint/mysql/test_oracle_mysql.py."""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rdsiam_emulator.protocols.mysql.constants import Capability as C
from rdsiam_emulator.protocols.mysql.handshake import (
    AuthData,
    BackendLogin,
    ClientHello,
    ForwardToClient,
    FrontendHandshake,
    LoginFailed,
    LoginSucceeded,
    NotifyClient,
    SendBackend,
    SslRequested,
)
from rdsiam_emulator.protocols.mysql.messages import (
    ErrPacket,
    Greeting,
    HandshakeResponse,
    auth_switch_request,
    ok_packet,
)
from rdsiam_emulator.protocols.mysql.packets import PacketDecoder, ProtocolError, encode_packet
from rdsiam_emulator.protocols.need_data import NEED_DATA

NONCE = b"0123456789abcdefghij"
CAPS = (C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH | C.PLUGIN_AUTH_LENENC_CLIENT_DATA
        | C.CONNECT_WITH_DB | C.SSL | C.DEPRECATE_EOF)


def mysql8_greeting() -> Greeting:
    return Greeting(b"8.0.36", 42, NONCE, int(CAPS), 255, 2, "caching_sha2_password")


def client_response(**kw) -> HandshakeResponse:
    base = dict(capabilities=int(CAPS), max_packet=1 << 24, charset=255, filler=b"\0" * 23,
                user=b"app_user", auth_response=b"", database=b"app",
                auth_plugin="caching_sha2_password")
    base.update(kw)
    return HandshakeResponse(**base)


def packets(data: bytes):
    return PacketDecoder().feed(data)


def feed(machine, data: bytes = b""):
    """h11's pull style: bytes in, then every event until NEED_DATA."""
    machine.receive_data(data)
    events = []
    while (event := machine.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def test_frontend_tls_then_cleartext_switch():
    front = FrontendHandshake(mysql8_greeting())
    greeting = packets(front.start())[0]
    assert greeting.seq == 0 and Greeting.parse(greeting.payload).nonce == NONCE
    ssl_req = HandshakeResponse(int(CAPS), 1 << 24, 255, b"\0" * 23, is_ssl_request=True)
    (ev,) = feed(front, encode_packet(1, ssl_req.build()))
    assert isinstance(ev, SslRequested)
    front.tls_started()
    (ev,) = feed(front, encode_packet(2, client_response().build()))
    assert isinstance(ev, ClientHello) and ev.tls and ev.response.user == b"app_user"
    switch = packets(front.request_cleartext())[0]
    assert switch.seq == 3 and switch.payload == b"\xfemysql_clear_password\0"
    (ev,) = feed(front, encode_packet(4, b"token\0"))
    assert isinstance(ev, AuthData) and ev.payload == b"token\0"
    err = packets(front.fail(ErrPacket(1045, "28000", "x")))[0]
    assert err.seq == 5


def test_frontend_rejects_wrong_sequence_and_bytes_after_ssl_request():
    front = FrontendHandshake(mysql8_greeting())
    front.start()
    with pytest.raises(ProtocolError) as info:
        feed(front, encode_packet(3, client_response().build()))
    assert info.value.code == 1156
    front = FrontendHandshake(mysql8_greeting())
    front.start()
    ssl_req = HandshakeResponse(int(CAPS), 1 << 24, 255, b"\0" * 23, is_ssl_request=True)
    with pytest.raises(ProtocolError):
        feed(front, encode_packet(1, ssl_req.build()) + b"\x16\x03\x01")


def test_frontend_ssl_flag_without_tls_is_refused():
    front = FrontendHandshake(mysql8_greeting())
    front.start()
    with pytest.raises(ProtocolError):
        feed(front, encode_packet(1, client_response().build()))


def _server_expected_sha2(password: bytes, nonce: bytes, answer: bytes) -> bool:
    # what a MySQL 8 server checks for fast auth: XOR(answer, SHA256(SHA256(SHA256(pw)) + nonce))
    # must equal SHA256(pw), whose SHA256 it has cached
    stage2 = hashlib.sha256(hashlib.sha256(password).digest()).digest()
    mask = hashlib.sha256(stage2 + nonce).digest()
    stage1 = bytes(a ^ b for a, b in zip(answer, mask, strict=True))
    return hashlib.sha256(stage1).digest() == stage2


def test_backend_own_login_mysql8_fast_auth():
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(), password=b"derived")
    first = packets(login.start())[0]
    sent = HandshakeResponse.parse(first.payload)
    assert first.seq == 1 and not sent.capabilities & C.SSL
    assert sent.auth_plugin == "caching_sha2_password" and sent.database == b"app"
    assert _server_expected_sha2(b"derived", NONCE, sent.auth_response)
    assert feed(login, encode_packet(2, b"\x01\x03")) == []
    (ev,) = feed(login, encode_packet(3, ok_packet()))
    assert isinstance(ev, LoginSucceeded)


def test_backend_own_login_mysql8_full_auth_with_rsa():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(), password=b"derived")
    login.start()
    (ev,) = feed(login, encode_packet(2, b"\x01\x04"))  # perform full authentication
    assert isinstance(ev, SendBackend) and packets(ev.data)[0].payload == b"\x02"
    (ev,) = feed(login, encode_packet(4, b"\x01" + pem))
    blob = packets(ev.data)[0].payload
    plain = key.decrypt(blob, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                           algorithm=hashes.SHA1(), label=None))
    assert bytes(b ^ NONCE[i % 20] for i, b in enumerate(plain)) == b"derived\0"
    (ev,) = feed(login, encode_packet(6, ok_packet()))
    assert isinstance(ev, LoginSucceeded)


def test_backend_own_login_switch_to_native_and_failure():
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(), password=b"pw")
    login.start()
    new_nonce = b"N" * 20
    (ev,) = feed(login,
        encode_packet(2, auth_switch_request("mysql_native_password", new_nonce + b"\0")))
    from rdsiam_emulator.protocols.mysql.scramble import native_password
    assert packets(ev.data)[0].payload == native_password(b"pw", new_nonce)
    (ev,) = feed(login, encode_packet(4, ErrPacket(1045, "28000", "denied").build()))
    assert isinstance(ev, LoginFailed) and ev.error.code == 1045


def test_backend_relay_reroutes_cleartext_full_auth_to_rsa():
    """Client on TLS answers a full-auth request in cleartext; the plain backend link gets RSA."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(auth_response=b"s" * 32),
                                       password=None, client_tls=True)
    first = HandshakeResponse.parse(packets(login.start())[0].payload)
    assert first.auth_response == b"s" * 32  # relayed unchanged
    (ev,) = feed(login, encode_packet(2, b"\x01\x04"))
    assert isinstance(ev, ForwardToClient)
    login.from_client(b"master-pw\0")
    (ev,) = feed(login)
    assert packets(ev.data)[0].payload == b"\x02"
    (ev,) = feed(login, encode_packet(4, b"\x01" + pem))
    plain = key.decrypt(packets(ev.data)[0].payload, padding.OAEP(
        mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    assert bytes(b ^ NONCE[i % 20] for i, b in enumerate(plain)) == b"master-pw\0"


def test_backend_relay_password_too_long_for_rsa_is_a_refusal():
    """An IAM token (over 1 KB) sent in clear to a password user's full authentication does not
    fit RSA-OAEP with the server's 2048-bit key: a 1045 login failure, not a crash (seen on
    Oracle MySQL 9: the relayed login used to end with the connection lost)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(auth_response=b"s" * 32),
                                       password=None, client_tls=True)
    login.start()
    feed(login, encode_packet(2, b"\x01\x04"))
    login.from_client(b"t" * 214 + b"\0")  # 214 bytes + NUL: one more than 2048-bit OAEP takes
    feed(login)
    (ev,) = feed(login, encode_packet(4, b"\x01" + pem))
    assert isinstance(ev, LoginFailed) and ev.error.code == 1045
    assert ev.error.sqlstate == "28000"


def test_backend_relay_password_that_fits_rsa_at_the_limit():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(auth_response=b"s" * 32),
                                       password=None, client_tls=True)
    login.start()
    feed(login, encode_packet(2, b"\x01\x04"))
    login.from_client(b"t" * 213 + b"\0")
    feed(login)
    (ev,) = feed(login, encode_packet(4, b"\x01" + pem))
    assert isinstance(ev, SendBackend)
    plain = key.decrypt(packets(ev.data)[0].payload, padding.OAEP(
        mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    assert bytes(b ^ NONCE[i % 20] for i, b in enumerate(plain)) == b"t" * 213 + b"\0"


def test_backend_relay_fast_auth_notifies_client():
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(auth_response=b"s" * 32),
                                       password=None, client_tls=True)
    login.start()
    (ev,) = feed(login, encode_packet(2, b"\x01\x03"))
    assert isinstance(ev, NotifyClient)
    (ev,) = feed(login, encode_packet(3, ok_packet()))
    assert isinstance(ev, LoginSucceeded)


def test_backend_wrong_sequence_rejected():
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(), password=b"x")
    login.start()
    with pytest.raises(ProtocolError):
        feed(login, encode_packet(5, ok_packet()))


def test_machines_pull_events_and_need_data_for_a_partial_packet():
    front = FrontendHandshake(mysql8_greeting())
    front.start()
    ssl_req = encode_packet(1, HandshakeResponse(int(CAPS), 1 << 24, 255, b"\0" * 23,
                                                 is_ssl_request=True).build())
    front.receive_data(ssl_req[:5])
    assert front.next_event() is NEED_DATA
    (ev,) = feed(front, ssl_req[5:])
    assert isinstance(ev, SslRequested)
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(), password=b"x")
    login.start()
    assert login.next_event() is NEED_DATA
    login.receive_data(encode_packet(2, ok_packet()) + encode_packet(3, ok_packet()))
    with pytest.raises(ProtocolError, match="after the login result"):
        login.next_event()


def _pem_and_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)


def _rsa_plain(key, blob: bytes, nonce: bytes) -> bytes:
    plain = key.decrypt(blob, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                           algorithm=hashes.SHA1(), label=None))
    return bytes(b ^ nonce[i % 20] for i, b in enumerate(plain))


def test_backend_own_login_answers_a_switch_to_sha256_password_with_rsa():
    """#17: Oracle MySQL switches a login for an account it does not have (and a sha256_password
    account) to sha256_password: the endpoint asks for the RSA key (0x01) and sends its password
    encrypted, then reports the server's verdict instead of failing the handshake."""
    key, pem = _pem_and_key()
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(), password=b"derived")
    login.start()
    nonce = b"S" * 20
    (ev,) = feed(login, encode_packet(2, auth_switch_request("sha256_password", nonce + b"\0")))
    assert isinstance(ev, SendBackend) and packets(ev.data)[0].payload == b"\x01"
    (ev,) = feed(login, encode_packet(4, b"\x01" + pem))
    assert _rsa_plain(key, packets(ev.data)[0].payload, nonce) == b"derived\0"
    (ev,) = feed(login, encode_packet(6, ErrPacket(1045, "28000", "denied").build()))
    assert isinstance(ev, LoginFailed) and ev.error.code == 1045


def test_backend_relay_reroutes_a_tls_clients_sha256_password_cleartext_to_rsa():
    """#17: a client on TLS answers the switch to sha256_password with its password in clear;
    the plain backend link gets the key request (0x01) and the RSA-encrypted password."""
    key, pem = _pem_and_key()
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(auth_response=b"s" * 32),
                                       password=None, client_tls=True)
    login.start()
    nonce = b"T" * 20
    (ev,) = feed(login, encode_packet(2, auth_switch_request("sha256_password", nonce + b"\0")))
    assert isinstance(ev, ForwardToClient)
    login.from_client(b"S2-pw-1\0")
    (ev,) = feed(login)
    assert packets(ev.data)[0].payload == b"\x01"
    (ev,) = feed(login, encode_packet(4, b"\x01" + pem))
    assert _rsa_plain(key, packets(ev.data)[0].payload, nonce) == b"S2-pw-1\0"
    (ev,) = feed(login, encode_packet(6, ok_packet()))
    assert isinstance(ev, LoginSucceeded)


@pytest.mark.parametrize("answer", [b"\0", b"\x01"])
def test_backend_relay_sha256_password_empty_or_key_request_passes_unchanged(answer):
    """An empty password needs no secrecy; a client that asks for the key itself gets it."""
    login = BackendLogin.for_handshake(mysql8_greeting(), client_response(), password=None,
                                       client_tls=True)
    login.start()
    feed(login, encode_packet(2, auth_switch_request("sha256_password", NONCE + b"\0")))
    login.from_client(answer)
    (ev,) = feed(login)
    assert packets(ev.data)[0].payload == answer
