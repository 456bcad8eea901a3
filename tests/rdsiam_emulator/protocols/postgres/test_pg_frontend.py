"""Direct tests of the server-side start-up machine (``FrontendHandshake``): bytes in, events and
reply bytes out, including malformed and out-of-order input."""

from __future__ import annotations

import struct

import pytest

from rdsiam_emulator.protocols.postgres import codec
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
    assert hs.state == State.DONE  # (fuzz/checks.check_pg_frontend's rule: errors end it)


def test_frontend_hand_over_returns_pipelined_bytes() -> None:
    hs = FrontendHandshake()
    query = codec.typed(b"Q", b"select 1\x00")
    hs.receive_data(codec.startup_message({"user": "x"}) + query)
    assert isinstance(hs.next_event(), StartupReceived)
    assert hs.take_rest() == query




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


def _events(hs: FrontendHandshake) -> list[object]:
    out: list[object] = []
    while (ev := hs.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def test_frontend_byte_at_a_time_gives_the_same_events() -> None:
    startup = codec.startup_message({"user": "u", "database": "d"})
    hs = FrontendHandshake()
    seen: list[object] = []
    for i in range(len(codec.ssl_request())):
        hs.receive_data(codec.ssl_request()[i:i + 1])
        seen += _events(hs)
    assert seen == [SSLRequested()]
    hs.accept_ssl()
    hs.tls_established()
    for i in range(len(startup)):
        hs.receive_data(startup[i:i + 1])
        seen += _events(hs)
    assert isinstance(seen[-1], StartupReceived)
    assert seen[-1].raw == startup
    hs.request_cleartext_password()
    password = codec.password_message("t" * 40)
    for i in range(len(password)):
        hs.receive_data(password[i:i + 1])
        seen += _events(hs)
    assert seen[-1] == PasswordReceived("t" * 40)
    assert len(seen) == 3
    assert hs.state == State.AUTHENTICATING


def test_frontend_refused_ssl_then_plaintext_startup() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.ssl_request())
    assert isinstance(hs.next_event(), SSLRequested)
    assert hs.refuse_ssl() == b"N"
    assert hs.state == State.STARTUP
    hs.receive_data(codec.startup_message({"user": "u"}))
    assert isinstance(hs.next_event(), StartupReceived)
    assert hs.tls is False


@pytest.mark.parametrize("reply", ["accept_ssl", "refuse_ssl", "refuse_gssenc",
                                   "request_cleartext_password"])
def test_frontend_replies_out_of_state_raise(reply: str) -> None:
    hs = FrontendHandshake()  # nothing received: no request to answer
    with pytest.raises(RuntimeError, match="not allowed in state startup"):
        getattr(hs, reply)()


def test_frontend_second_gssenc_request_is_a_violation() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.gssenc_request())
    hs.next_event()
    hs.refuse_gssenc()
    hs.receive_data(codec.gssenc_request())
    with pytest.raises(ProtocolError, match=r"1234\.5680") as err:
        hs.next_event()
    assert err.value.sqlstate == "0A000"
    assert hs.state == State.DONE


def test_frontend_gssenc_after_tls_is_a_violation() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.ssl_request())
    hs.next_event()
    hs.accept_ssl()
    hs.tls_established()
    hs.receive_data(codec.gssenc_request())
    with pytest.raises(ProtocolError, match=r"1234\.5680"):
        hs.next_event()


def test_frontend_cancel_code_with_wrong_length_is_an_unknown_protocol() -> None:
    hs = FrontendHandshake()
    body = struct.pack("!iII", codec.CANCEL_REQUEST_CODE, 1, 2) + b"xxxx"  # 4 bytes too many
    hs.receive_data(struct.pack("!i", len(body) + 4) + body)
    with pytest.raises(ProtocolError, match=r"1234\.5678") as err:
        hs.next_event()
    assert err.value.sqlstate == "0A000"


@pytest.mark.parametrize("body", [
    b"user\x00u\x00",           # no terminating NUL after the last pair
    b"user\x00u\x00database\x00",  # a name without a value
    b"user\x00\xff\xfe\x00\x00",   # not UTF-8
], ids=["unterminated", "odd", "non-utf8"])
def test_frontend_malformed_startup_parameters(body: bytes) -> None:
    hs = FrontendHandshake()
    payload = struct.pack("!i", codec.PROTOCOL_3_0) + body
    hs.receive_data(struct.pack("!i", len(payload) + 4) + payload)
    with pytest.raises(ProtocolError) as first:
        hs.next_event()
    # also found by fuzzing (fuzz/regressions/pg_handshake/)
    assert hs.state is State.DONE and hs.error is first.value
    # the broken machine parses nothing more, not even a well-formed start-up after it
    hs.receive_data(codec.startup_message({"user": "bob"}))
    with pytest.raises(ProtocolError) as again:
        hs.next_event()
    assert again.value is first.value
    with pytest.raises(RuntimeError):
        hs.request_cleartext_password()


def test_frontend_garbled_startup_length_is_not_reported_to_the_client() -> None:
    hs = FrontendHandshake()
    hs.receive_data(b"GET / HTTP/1.1\r\n")  # a stray HTTP client: length 0x47455420
    with pytest.raises(ProtocolError) as err:
        hs.next_event()
    assert err.value.report is False
    assert hs.state == State.DONE


def test_frontend_password_with_embedded_nul_is_a_violation() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "u"}))
    hs.next_event()
    hs.request_cleartext_password()
    hs.receive_data(codec.typed(b"p", b"to\x00ken\x00"))
    with pytest.raises(ProtocolError, match="invalid password packet size"):
        hs.next_event()
    assert hs.state == State.DONE


def test_frontend_password_not_utf8_is_replaced_not_raised() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "u"}))
    hs.next_event()
    hs.request_cleartext_password()
    hs.receive_data(codec.typed(b"p", b"tok\xffen\x00"))
    ev = hs.next_event()
    assert ev == PasswordReceived("tok\ufffden")


def test_frontend_password_waits_for_the_whole_message() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "u"}))
    hs.next_event()
    hs.request_cleartext_password()
    msg = codec.password_message("abc")
    hs.receive_data(msg[:-1])
    assert hs.next_event() is NEED_DATA
    assert hs.state == State.AWAIT_PASSWORD
    hs.receive_data(msg[-1:])
    assert hs.next_event() == PasswordReceived("abc")


def test_frontend_fail_writes_fatal_and_ends() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "u"}))
    hs.next_event()
    raw = hs.fail("28000", "PAM authentication failed for user \"u\"", routine="auth_failed")
    assert raw == codec.fatal("28000", "PAM authentication failed for user \"u\"",
                              routine="auth_failed")
    assert hs.state == State.DONE
    hs.receive_data(codec.password_message("late"))
    assert hs.next_event() is NEED_DATA  # nothing is parsed after the end


def test_frontend_empty_database_defaults_to_user() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "alice", "database": ""}))
    ev = hs.next_event()
    assert isinstance(ev, StartupReceived)
    assert ev.database == "alice"


def test_frontend_partial_ssl_request_needs_data() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.ssl_request()[:7])
    assert hs.next_event() is NEED_DATA
    assert hs.state == State.STARTUP


def test_frontend_smaller_auth_message_limit_is_enforced() -> None:
    hs = FrontendHandshake(max_auth_message=64)
    hs.receive_data(codec.startup_message({"user": "u"}))
    hs.next_event()
    hs.request_cleartext_password()
    hs.receive_data(codec.password_message("x" * 100))
    with pytest.raises(ProtocolError, match="invalid message length"):
        hs.next_event()


def test_frontend_cancel_request_event_and_nothing_after() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.cancel_request(1, 2) + codec.startup_message({"user": "u"}))
    assert _events(hs) == [CancelRequested(1, 2)]


def test_malformed_password_message_ends_the_machine_for_good() -> None:
    hs = FrontendHandshake()
    hs.receive_data(codec.startup_message({"user": "bob"}))
    assert isinstance(hs.next_event(), StartupReceived)
    hs.request_cleartext_password()
    hs.receive_data(b"p" + struct.pack("!I", 2))  # a length below 4
    with pytest.raises(ProtocolError, match="invalid message length") as first:
        hs.next_event()
    assert hs.state is State.DONE and hs.error is first.value
    hs.receive_data(codec.password_message("token"))
    with pytest.raises(ProtocolError) as again:
        hs.next_event()
    assert again.value is first.value
