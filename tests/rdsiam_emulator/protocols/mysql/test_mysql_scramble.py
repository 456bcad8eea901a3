import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pymysql import _auth as pymysql_auth

from rdsiam_emulator.protocols.mysql import scramble

NONCE = bytes(range(1, 21))


def test_native_password_known_vector():
    # computed by hand from the definition: SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw)))
    pw = b"secret"
    s1 = hashlib.sha1(pw).digest()
    s2 = hashlib.sha1(s1).digest()
    expected = bytes(a ^ b for a, b in zip(s1, hashlib.sha1(NONCE + s2).digest(), strict=True))
    assert scramble.native_password(pw, NONCE) == expected
    assert scramble.native_password(b"", NONCE) == b""


@pytest.mark.parametrize("pw", [b"x", b"secret", "pässwörd".encode(), bytes(range(7, 247, 6))])
def test_scrambles_match_pymysql(pw):
    assert scramble.native_password(pw, NONCE) == pymysql_auth.scramble_native_password(pw, NONCE)
    assert scramble.caching_sha2_password(pw, NONCE) == pymysql_auth.scramble_caching_sha2(
        pw, NONCE)


def test_caching_sha2_matches_mysql_connector():
    from mysql.connector.plugins.caching_sha2_password import MySQLCachingSHA2PasswordAuthPlugin

    plugin = MySQLCachingSHA2PasswordAuthPlugin(username="u", password="secret", ssl_enabled=False)
    assert scramble.caching_sha2_password(b"secret", NONCE) == plugin._scramble(NONCE)


def test_rsa_full_auth_decrypts_to_password():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    blob = scramble.rsa_encrypt_password(b"derived-pw", NONCE, pem)
    plain = key.decrypt(blob, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                           algorithm=hashes.SHA1(), label=None))
    unmasked = bytes(b ^ NONCE[i % 20] for i, b in enumerate(plain))
    assert unmasked == b"derived-pw\0"


def test_rsa_matches_pymysql_xor():
    assert scramble.xor_with_nonce(b"abc", NONCE) == pymysql_auth._xor_password(b"abc\0", NONCE)


def test_scramble_for_unknown_plugin():
    assert scramble.scramble_for("auth_gssapi_client", b"x", NONCE) is None
    assert scramble.scramble_for("mysql_clear_password", b"tok", NONCE) == b"tok\0"
