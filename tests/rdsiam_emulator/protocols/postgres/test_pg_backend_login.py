"""Direct tests of the backend-login machine (``BackendLogin``): server bytes in, client bytes and
one outcome out, for every authentication method and for malformed server input. The SCRAM exchange
has its own file (test_pg_scram.py)."""

from __future__ import annotations

import struct

from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.protocols.postgres.backend import (
    MAX_BACKEND_MESSAGE,
    BackendLogin,
    LoginFailed,
    LoginSucceeded,
    md5_password,
)


def _greeting() -> bytes:
    return (codec.parameter_status("server_version", "15.8")
            + codec.backend_key_data(77, 0xFFFFFFFE) + codec.ready_for_query(b"I"))


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


def _logged_in_greeting(login: BackendLogin, data: bytes) -> LoginSucceeded:
    result = login.receive_data(data)
    assert isinstance(result, LoginSucceeded)
    return result


def test_backend_login_startup_keeps_user_and_database_and_extra_params() -> None:
    login = BackendLogin(user="u", database="db",
                         params={"database": "other", "user": "x", "TimeZone": "UTC"}, password="p")
    assert login.data_to_send() == codec.startup_message(
        {"user": "u", "database": "db", "TimeZone": "UTC"})
    assert login.data_to_send() == b""  # drained


def test_backend_login_trust_then_greeting_byte_at_a_time() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    login.data_to_send()
    data = codec.auth_ok() + _greeting()
    results = [login.receive_data(data[i:i + 1]) for i in range(len(data))]
    assert all(r is None for r in results[:-1])
    final = results[-1]
    assert isinstance(final, LoginSucceeded)
    assert final.greeting == _greeting()
    assert login.data_to_send() == b""  # trust: no password was sent


def test_backend_login_notices_and_negotiation_before_auth_are_skipped() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    notice = codec.typed(b"N", b"SNOTICE\x00Mhello\x00\x00")
    negotiate = codec.negotiate_protocol_version(codec.PROTOCOL_3_0, ["_pq_.x"])
    result = _logged_in_greeting(login, notice + negotiate + codec.auth_ok() + _greeting())
    assert result.greeting == _greeting()  # nothing from before AuthenticationOk


def test_backend_login_notice_after_auth_is_part_of_the_greeting() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    notice = codec.typed(b"N", b"SNOTICE\x00Mhello\x00\x00")
    result = _logged_in_greeting(login, codec.auth_ok() + notice + _greeting())
    assert result.greeting == notice + _greeting()


def test_backend_login_error_after_auth_ok_fails() -> None:
    login = BackendLogin(user="u", database="nodb", password="p")
    error = codec.fatal("3D000", 'database "nodb" does not exist')
    result = login.receive_data(codec.auth_ok() + error)
    assert isinstance(result, LoginFailed)
    assert (result.sqlstate, result.message) == ("3D000", 'database "nodb" does not exist')


def test_backend_login_result_is_fixed_and_rest_is_kept() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    extra = codec.typed(b"A", b"\x00\x00\x00\x01chan\x00x\x00")
    first = login.receive_data(codec.auth_ok() + _greeting() + extra)
    assert isinstance(first, LoginSucceeded)
    assert login.receive_data(codec.fatal("XX000", "late")) is first
    assert login.take_rest() == extra


def test_backend_login_unexpected_message_during_auth_fails() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    result = login.receive_data(codec.ready_for_query())
    assert isinstance(result, LoginFailed)
    assert result.sqlstate == "08P01"
    assert "unexpected message b'Z' during authentication" in result.message


def test_backend_login_unsupported_auth_method_fails() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    result = login.receive_data(codec.authentication(7))  # GSSAPI
    assert isinstance(result, LoginFailed)
    assert "unsupported authentication request 7" in result.message


def test_backend_login_md5_without_salt_fails() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    result = login.receive_data(codec.authentication(5, b"ab"))
    assert isinstance(result, LoginFailed)
    assert "4-byte salt" in result.message
    assert login.data_to_send() == codec.startup_message({"user": "u", "database": "db"})


def test_backend_login_short_or_oversized_messages_fail() -> None:
    short = BackendLogin(user="u", database="db", password="p")
    result = short.receive_data(codec.typed(b"R", b"\x00\x00"))
    assert isinstance(result, LoginFailed)
    assert "too short" in result.message
    huge = BackendLogin(user="u", database="db", password="p")
    result = huge.receive_data(b"S" + struct.pack("!i", MAX_BACKEND_MESSAGE + 1))
    assert isinstance(result, LoginFailed)
    assert "invalid message length" in result.message


def test_backend_login_short_backend_key_data_fails() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    result = login.receive_data(codec.auth_ok() + codec.typed(b"K", b"\x00\x00\x00\x01"))
    assert isinstance(result, LoginFailed)
    assert result.sqlstate == "08P01"


def test_backend_login_result_repr_hides_the_greeting_bytes() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    result = _logged_in_greeting(login, codec.auth_ok() + _greeting())
    assert "greeting" not in repr(result)
