"""The SCRAM-SHA-256 exchange the backend login performs (scramp's client, driven by
``BackendLogin``) and the verifier the endpoint stores, checked against RFC 5802 / RFC 7677
computed here independently with hashlib/hmac."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from scramp import ScramException

from rdsiam_emulator.protocols.postgres import codec
from rdsiam_emulator.protocols.postgres.backend import BackendLogin, LoginFailed, LoginSucceeded
from rdsiam_emulator.protocols.postgres.scram import (
    SALTED_PASSWORDS,
    SaltedPasswordCache,
    scram_verifier,
)

CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"  # RFC 7677 section 3
SERVER_NONCE = CLIENT_NONCE + "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC7677_SERVER_FIRST = f"r={SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".encode()


def _h(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _expected(password: str, client_first_bare: bytes, server_first: bytes,
              final_without_proof: bytes, salt: bytes = SALT,
              iterations: int = 4096) -> tuple[bytes, bytes]:
    """(ClientProof, ServerSignature) per RFC 5802 section 3."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = _h(salted, b"Client Key")
    auth = client_first_bare + b"," + server_first + b"," + final_without_proof
    signature = _h(hashlib.sha256(client_key).digest(), auth)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return proof, _h(_h(salted, b"Server Key"), auth)


def _to_server_first(password: str = "pencil") -> tuple[BackendLogin, bytes]:
    """A login that has sent client-first; returns it with the client-first-bare it sent."""
    login = BackendLogin(user="app_user", database="db", password=password,
                         scram_nonce=CLIENT_NONCE)
    login.data_to_send()
    assert login.receive_data(codec.auth_sasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])) is None
    sent = login.data_to_send()
    mechanism = b"SCRAM-SHA-256\x00"
    assert sent[:1] == b"p" and mechanism in sent
    data = sent[5 + len(mechanism) + 4:]
    assert data.startswith(b"n,,")  # GS2 header: no channel binding
    bare = data[3:]
    assert bare.endswith(b",r=" + CLIENT_NONCE.encode())
    return login, bare


def _client_final(login: BackendLogin, server_first: bytes) -> bytes:
    assert login.receive_data(codec.authentication(codec.AUTH_SASL_CONTINUE, server_first)) is None
    sent = login.data_to_send()
    assert sent[:1] == b"p"
    return sent[5:]


def test_scram_exchange_matches_rfc5802_and_logs_in() -> None:
    login, bare = _to_server_first()
    final = _client_final(login, RFC7677_SERVER_FIRST)
    without_proof, _, proof_b64 = final.rpartition(b",p=")
    assert without_proof == b"c=biws,r=" + SERVER_NONCE.encode()
    proof, server_sig = _expected("pencil", bare, RFC7677_SERVER_FIRST, without_proof)
    assert base64.b64decode(proof_b64) == proof
    assert login.receive_data(codec.authentication(
        codec.AUTH_SASL_FINAL, b"v=" + base64.b64encode(server_sig))) is None
    greeting = codec.parameter_status("server_version", "15.8") + codec.ready_for_query()
    result = login.receive_data(codec.auth_ok() + greeting)
    assert isinstance(result, LoginSucceeded)
    assert result.greeting == greeting


def test_scram_wrong_server_signature_fails_the_login() -> None:
    login, _ = _to_server_first()
    _client_final(login, RFC7677_SERVER_FIRST)
    result = login.receive_data(codec.authentication(
        codec.AUTH_SASL_FINAL, b"v=" + base64.b64encode(b"x" * 32)))
    assert isinstance(result, LoginFailed)
    assert result.sqlstate == "08P01"
    assert "signature" in result.message


@pytest.mark.parametrize(("server_first", "words"), [
    (b"r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce"),
    (f"r={CLIENT_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".encode(), "nonce"),
    (f"r={SERVER_NONCE},i=4096".encode(), "malformed"),
    (f"r={SERVER_NONCE},s=***,i=4096".encode(), "base 64"),
    (f"r={SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4k".encode(), "iteration"),
    # a broken or hostile server must not make the endpoint spin in PBKDF2 for minutes
    (f"r={SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2147483647".encode(), "10000000"),
    (b"e=other-error", "error"),
    (b"\xff\xfe", "utf-8"),
    (b"", "malformed"),
], ids=["foreign-nonce", "unextended-nonce", "no-salt", "bad-salt", "bad-count", "huge-count",
        "server-error", "not-utf8", "empty"])
def test_scram_malformed_server_first_fails_the_login(server_first: bytes, words: str) -> None:
    login, _ = _to_server_first()
    result = login.receive_data(codec.authentication(codec.AUTH_SASL_CONTINUE, server_first))
    assert isinstance(result, LoginFailed)
    assert result.sqlstate == "08P01"
    assert result.message.startswith("backend login failed: ")
    assert words in result.message.lower()
    assert login.data_to_send() == b""  # no client-final after a bad server-first


@pytest.mark.parametrize("server_final", [b"e=invalid-proof", b"v=***", b"", b"\xff"])
def test_scram_malformed_server_final_fails_the_login(server_final: bytes) -> None:
    login, _ = _to_server_first()
    _client_final(login, RFC7677_SERVER_FIRST)
    result = login.receive_data(codec.authentication(codec.AUTH_SASL_FINAL, server_final))
    assert isinstance(result, LoginFailed)
    assert result.sqlstate == "08P01"


def test_scram_messages_out_of_order_fail_the_login() -> None:
    login = BackendLogin(user="u", database="db", password="pw")
    login.data_to_send()
    result = login.receive_data(codec.authentication(codec.AUTH_SASL_CONTINUE,
                                                     RFC7677_SERVER_FIRST))
    assert isinstance(result, LoginFailed)
    assert "SASLContinue without SASL" in result.message
    login = BackendLogin(user="u", database="db", password="pw")
    result = login.receive_data(codec.authentication(codec.AUTH_SASL_FINAL, b"v=AAAA"))
    assert isinstance(result, LoginFailed)
    assert "SASLFinal without SASL" in result.message
    # server-final before server-first: the SCRAM client refuses the order
    login, _ = _to_server_first()
    result = login.receive_data(codec.authentication(codec.AUTH_SASL_FINAL, b"v=AAAA"))
    assert isinstance(result, LoginFailed)


def test_scram_only_channel_binding_offered_fails_the_login() -> None:
    login = BackendLogin(user="u", database="db", password="pw")
    result = login.receive_data(codec.auth_sasl(["SCRAM-SHA-256-PLUS"]))
    assert isinstance(result, LoginFailed)
    assert "no supported SASL mechanism" in result.message


def test_verifier_has_postgres_layout_and_rfc_keys() -> None:
    verifier = scram_verifier("pencil", salt=SALT, iterations=4096)
    head, keys = verifier.rsplit("$", 1)
    assert head == "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    stored_b64, server_b64 = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", SALT, 4096)
    assert base64.b64decode(stored_b64) == hashlib.sha256(_h(salted, b"Client Key")).digest()
    server_key = base64.b64decode(server_b64)
    # The ServerKey reproduces RFC 7677's server signature.
    auth = (b"n=user,r=" + CLIENT_NONCE.encode() + b"," + RFC7677_SERVER_FIRST
            + b",c=biws,r=" + SERVER_NONCE.encode())
    assert base64.b64encode(_h(server_key, auth)) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_verifier_default_salt_is_random_16_bytes() -> None:
    first, second = scram_verifier("pw"), scram_verifier("pw")
    assert first != second
    salt_b64 = first.split("$")[1].split(":")[1]
    assert len(base64.b64decode(salt_b64)) == 16
    assert first.startswith("SCRAM-SHA-256$4096:")


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"salt": b"short"}, "12 bytes"),
    ({"iterations": 100}, "4096"),
])
def test_verifier_rejects_weak_parameters(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ScramException, match=words):
        scram_verifier("pw", **kwargs)  # type: ignore[arg-type]


class _Pbkdf2Counter:
    """Counts scramp's PBKDF2 runs (its ``Hi`` calls ``scramp.utils.pbkdf2_hmac_hashlib``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import scramp.utils

        self.calls = 0
        real = scramp.utils.pbkdf2_hmac_hashlib

        def counting(*args: object) -> bytes:
            self.calls += 1
            return real(*args)  # type: ignore[no-any-return]

        monkeypatch.setattr(scramp.utils, "pbkdf2_hmac_hashlib", counting)


def _scram_login(password: str, salt: bytes, iterations: int,
                 cache: SaltedPasswordCache | None) -> None:
    """One whole SCRAM login against a scripted server; asserts the proof is RFC 5802's."""
    login = BackendLogin(user="app_user", database="db", password=password,
                         scram_nonce=CLIENT_NONCE, salted_passwords=cache)
    login.data_to_send()
    login.receive_data(codec.auth_sasl(["SCRAM-SHA-256"]))
    sent = login.data_to_send()
    bare = sent[sent.index(b"n,,") + 3:]
    server_first = (f"r={SERVER_NONCE},s={base64.b64encode(salt).decode()},"
                    f"i={iterations}").encode()
    final = _client_final(login, server_first)
    without_proof, _, proof_b64 = final.rpartition(b",p=")
    proof, server_sig = _expected(password, bare, server_first, without_proof, salt, iterations)
    assert base64.b64decode(proof_b64) == proof
    assert login.receive_data(codec.authentication(
        codec.AUTH_SASL_FINAL, b"v=" + base64.b64encode(server_sig))) is None
    assert isinstance(login.receive_data(codec.auth_ok() + codec.ready_for_query()),
                      LoginSucceeded)


def test_second_login_with_same_password_salt_and_count_runs_no_pbkdf2(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pbkdf2 = _Pbkdf2Counter(monkeypatch)
    cache = SaltedPasswordCache(maxsize=8)
    _scram_login("pencil", SALT, 4096, cache)
    assert (pbkdf2.calls, cache.computed, cache.hits) == (1, 1, 0)
    _scram_login("pencil", SALT, 4096, cache)
    assert (pbkdf2.calls, cache.computed, cache.hits) == (1, 1, 1)
    # a new salt (ALTER ROLE), another password, another count: each computed once, correctly
    _scram_login("pencil", b"another-salt-16b", 4096, cache)
    _scram_login("pencil2", SALT, 4096, cache)
    _scram_login("pencil", SALT, 4097, cache)
    assert (pbkdf2.calls, cache.computed, len(cache)) == (4, 4, 4)
    _scram_login("pencil", SALT, 4096, cache)
    assert pbkdf2.calls == 4
    # no cache: every login derives
    _scram_login("pencil", SALT, 4096, None)
    _scram_login("pencil", SALT, 4096, None)
    assert pbkdf2.calls == 6


def test_salted_password_cache_is_bounded_keyed_by_hash_and_scoped_to_logins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pbkdf2 = _Pbkdf2Counter(monkeypatch)
    cache = SaltedPasswordCache(maxsize=2)
    for password in ("first-pw", "second-pw", "first-pw", "third-pw"):
        _scram_login(password, SALT, 4096, cache)
    assert len(cache) == 2 and cache.computed == 3 and cache.hits == 1
    _scram_login("second-pw", SALT, 4096, cache)  # the least recently used was dropped
    assert cache.computed == 4
    assert all(len(key) == 32 and b"pw" not in key for key in cache._entries)
    assert "pw" not in repr(cache)
    # scramp's other users (here the verifier) are not cached
    before = pbkdf2.calls
    scram_verifier("first-pw", salt=SALT)
    scram_verifier("first-pw", salt=SALT)
    assert pbkdf2.calls == before + 2
    with pytest.raises(ValueError, match="maxsize"):
        SaltedPasswordCache(maxsize=0)


def test_the_process_wide_cache_is_the_default() -> None:
    login = BackendLogin(user="u", database="db", password="p")
    assert login._salted_passwords is SALTED_PASSWORDS
