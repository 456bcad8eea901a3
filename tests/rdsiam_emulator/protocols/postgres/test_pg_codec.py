"""Byte-level tests of the PostgreSQL codec, the handshake machines and SCRAM."""

from __future__ import annotations

import base64
import struct

import pytest

from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.protocols.postgres.backend import (
    BackendLogin,
    LoginFailed,
    LoginSucceeded,
    md5_password,
)
from rdsiam_emulator.protocols.postgres.codec import ProtocolError
from rdsiam_emulator.protocols.postgres.frontend import (
    NEED_DATA,
    CancelRequested,
    FrontendHandshake,
    GSSEncRequested,
    PasswordReceived,
    SSLRequested,
    StartupReceived,
    State,
)
from rdsiam_emulator.protocols.postgres.scram import ScramClient, ScramError, scram_verifier

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


# --------------------------------------------------------------------------------- frontend


def test_frontend_ssl_then_startup_then_password() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.ssl_request())
    assert isinstance(hs.next_event(), SSLRequested)
    assert hs.accept_ssl() == b"S"
    hs.tls_established()
    startup = codec.startup_message({"user": "iam_user", "database": "app",
                                     "application_name": "t"})
    hs.receive_data(startup[:10])
    assert hs.next_event() is NEED_DATA
    hs.receive_data(startup[10:])
    ev = hs.next_event()
    assert isinstance(ev, StartupReceived)
    assert (ev.user, ev.database, ev.params["application_name"]) == ("iam_user", "app", "t")
    assert ev.raw == startup
    assert hs.request_cleartext_password() == b"R\x00\x00\x00\x08\x00\x00\x00\x03"
    hs.receive_data(codec.password_message("tok?en"))
    pw = hs.next_event()
    assert isinstance(pw, PasswordReceived)
    assert pw.password == "tok?en"
    assert "tok" not in repr(pw)


def test_frontend_database_defaults_to_user() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "alice"}))
    ev = hs.next_event()
    assert isinstance(ev, StartupReceived)
    assert ev.database == "alice"


def test_frontend_gssenc_refused_then_ssl_allowed() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.gssenc_request())
    assert isinstance(hs.next_event(), GSSEncRequested)
    assert hs.refuse_gssenc() == b"N"
    hs.receive_data(codec.ssl_request())
    assert isinstance(hs.next_event(), SSLRequested)


def test_frontend_rejects_plaintext_buffered_after_ssl_request() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.ssl_request() + codec.startup_message({"user": "x"}))
    assert isinstance(hs.next_event(), SSLRequested)
    with pytest.raises(ProtocolError, match="unencrypted data after SSL request"):
        hs.accept_ssl()


def test_frontend_second_ssl_request_is_a_violation() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.ssl_request())
    hs.next_event()
    hs.accept_ssl()
    hs.tls_established()
    hs.receive_data(codec.ssl_request())
    with pytest.raises(ProtocolError):
        hs.next_event()


def test_frontend_cancel_request() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.cancel_request(4242, 0xDEADBEEF))
    assert hs.next_event() == CancelRequested(4242, 0xDEADBEEF)
    assert hs.state == State.DONE


def test_frontend_unsupported_protocol_version() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "x"}, protocol=2 << 16))
    with pytest.raises(ProtocolError) as err:
        hs.next_event()
    assert err.value.sqlstate == "0A000"
    assert "2.0" in err.value.message


def test_frontend_missing_user() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"database": "x"}))
    with pytest.raises(ProtocolError, match="no PostgreSQL user name") as err:
        hs.next_event()
    assert err.value.sqlstate == "28000"


def test_frontend_wrong_message_instead_of_password() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "x"}))
    hs.next_event()
    hs.request_cleartext_password()
    hs.receive_data(codec.typed(b"Q", b"select 1\x00"))
    with pytest.raises(ProtocolError, match="expected password response"):
        hs.next_event()


def test_frontend_oversized_password_message() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "x"}))
    hs.next_event()
    hs.request_cleartext_password()
    hs.receive_data(b"p" + struct.pack("!i", 10_000_000))
    with pytest.raises(ProtocolError, match="invalid message length"):
        hs.next_event()


def test_frontend_take_rest_returns_pipelined_bytes() -> None:
    hs = FrontendHandshake()
    query = codec.typed(b"Q", b"select 1\x00")
    hs.receive_data(codec.startup_message({"user": "x"}) + query)
    assert isinstance(hs.next_event(), StartupReceived)
    assert hs.take_rest() == query


# --------------------------------------------------------------------------------- SCRAM

RFC7677_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)


def test_scram_rfc7677_test_vector() -> None:
    client = ScramClient("pencil", username="user", nonce=RFC7677_CLIENT_NONCE)
    assert client.client_first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = client.client_final(RFC7677_SERVER_FIRST)
    assert final == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    client.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_scram_rejects_wrong_server_signature() -> None:
    client = ScramClient("pencil", username="user", nonce=RFC7677_CLIENT_NONCE)
    client.client_final(RFC7677_SERVER_FIRST)
    with pytest.raises(ScramError, match="signature"):
        client.verify_server_final(b"v=" + base64.b64encode(b"x" * 32))


def test_scram_rejects_nonce_not_extending_ours() -> None:
    client = ScramClient("pencil", nonce="abc")
    with pytest.raises(ScramError, match="nonce"):
        client.client_final(b"r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")


def test_scram_verifier_matches_rfc_keys() -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt=salt, iterations=4096)
    assert verifier.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    # The ServerKey determines the RFC's server signature: recompute it from the verifier.
    import hashlib
    import hmac

    server_key = base64.b64decode(verifier.rsplit(":", 1)[1])
    auth = (b"n=user,r=rOprNGfwEbeRWgbNEkqO," + RFC7677_SERVER_FIRST +
            b",c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    sig = hmac.new(server_key, auth, hashlib.sha256).digest()
    assert base64.b64encode(sig) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


# --------------------------------------------------------------------------------- backend login


def _greeting() -> bytes:
    return (codec.parameter_status("server_version", "15.8")
            + codec.backend_key_data(77, 0xFFFFFFFE) + codec.ready_for_query(b"I"))


def test_backend_login_scram_full_exchange() -> None:
    login = BackendLogin(user="user", database="db", password="pencil",
                         params={"application_name": "app", "user": "ignored"},
                         scram_nonce=RFC7677_CLIENT_NONCE)
    startup = login.data_to_send()
    assert startup == codec.startup_message({"user": "user", "database": "db",
                                             "application_name": "app"})
    assert login.receive_data(codec.auth_sasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])) is None
    first = login.data_to_send()
    assert first == codec.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=" +
                                                RFC7677_CLIENT_NONCE.encode())
    assert login.receive_data(codec.authentication(codec.AUTH_SASL_CONTINUE,
                                                   RFC7677_SERVER_FIRST)) is None
    final = login.data_to_send()
    assert final.startswith(b"p") and b"c=biws,r=" in final
    # The user name is empty in client-first, so the RFC signature does not apply; a wrong
    # signature must fail the login.
    result = login.receive_data(codec.authentication(codec.AUTH_SASL_FINAL, b"v=AAAA"))
    assert isinstance(result, LoginFailed)
    assert "signature" in result.message


def test_backend_login_md5_then_greeting() -> None:
    login = BackendLogin(user="bob", database="db", password="pw")
    login.data_to_send()
    login.receive_data(codec.auth_md5(b"abcd"))
    assert login.data_to_send() == codec.password_message(md5_password("pw", "bob", b"abcd"))
    greeting = _greeting()
    result = login.receive_data(codec.auth_ok() + greeting)
    assert isinstance(result, LoginSucceeded)
    assert result.greeting == greeting
    assert (result.pid, result.key, result.status) == (77, 0xFFFFFFFE, b"I")
    assert result.parameters == {"server_version": "15.8"}


def test_md5_password_known_value() -> None:
    # printf pwbob | md5sum → inner; printf '<inner>abcd' | md5sum → outer (coreutils).
    assert md5_password("pw", "bob", b"abcd") == "md51a89e4e7c9fb4925ffce5b9465b55641"


def test_backend_login_cleartext_and_error() -> None:
    login = BackendLogin(user="bob", database="db", password="pw")
    login.data_to_send()
    login.receive_data(codec.auth_cleartext())
    assert login.data_to_send() == codec.password_message("pw")
    error = codec.fatal("28P01", 'password authentication failed for user "bob"')
    result = login.receive_data(error)
    assert isinstance(result, LoginFailed)
    assert result.sqlstate == "28P01"


def test_backend_login_unsupported_sasl_only_plus() -> None:
    login = BackendLogin(user="bob", database="db", password="pw")
    result = login.receive_data(codec.auth_sasl(["SCRAM-SHA-256-PLUS"]))
    assert isinstance(result, LoginFailed)
    assert result.sqlstate == "08P01"


def test_negotiate_protocol_version_only_when_asked() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "x"}))
    plain = hs.next_event()
    assert isinstance(plain, StartupReceived)
    assert hs.negotiate_protocol_version(plain) == b""
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "x", "_pq_.opt": "1"},
                                          protocol=(3 << 16) | 2))
    newer = hs.next_event()
    assert isinstance(newer, StartupReceived)
    assert hs.negotiate_protocol_version(newer) == (
        b"v\x00\x00\x00\x15\x00\x03\x00\x00\x00\x00\x00\x01_pq_.opt\x00")
