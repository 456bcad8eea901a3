"""Password scrambles for the backend logins the endpoint performs itself.

``mysql_native_password``: SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))).
``caching_sha2_password`` fast path: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce).
Full path over a connection without TLS: the password + NUL, XORed with the nonce (cycled),
encrypted with the server's RSA public key using OAEP (SHA-1 MGF1), as MySQL 8.0.5+ expects.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def native_password(password: bytes, nonce: bytes) -> bytes:
    """``mysql_native_password``'s 20-byte response to the first 20 bytes of ``nonce``; empty for an
    empty password.
    """
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()  # noqa: S324 - the protocol mandates SHA-1
    stage2 = hashlib.sha1(stage1).digest()  # noqa: S324
    return _xor(stage1, hashlib.sha1(nonce[:20] + stage2).digest())  # noqa: S324


def caching_sha2_password(password: bytes, nonce: bytes) -> bytes:
    """``caching_sha2_password``'s 32-byte fast-auth response to the first 20 bytes of ``nonce``;
    empty for an empty password.
    """
    if not password:
        return b""
    stage1 = hashlib.sha256(password).digest()
    stage2 = hashlib.sha256(stage1).digest()
    return _xor(stage1, hashlib.sha256(stage2 + nonce[:20]).digest())


def xor_with_nonce(password: bytes, nonce: bytes) -> bytes:
    """(password + NUL) XOR the nonce repeated; the plaintext of the RSA exchange."""
    plain = password + b"\0"
    if not nonce:
        raise ValueError("empty nonce")
    return bytes(byte ^ nonce[i % len(nonce)] for i, byte in enumerate(plain))


class PasswordTooLongForRsa(ValueError):
    """The password (plus its NUL) exceeds what RSA-OAEP carries with the server's key (the key's
    size in bytes less 42: 214 bytes for MySQL's 2048-bit key); an IAM token always does."""


def rsa_encrypt_password(password: bytes, nonce: bytes, public_key_pem: bytes) -> bytes:
    """Encrypt for caching_sha2_password / sha256_password full authentication.

    Raises ``PasswordTooLongForRsa`` when the password does not fit the key, ``ValueError``
    when the key is not an RSA key.
    """
    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the server's public key is not an RSA key")
    plain = xor_with_nonce(password, nonce[:20])
    if len(plain) > key.key_size // 8 - 42:
        raise PasswordTooLongForRsa(
            f"a {len(password)}-byte password does not fit RSA-OAEP with a {key.key_size}-bit key")
    return key.encrypt(
        plain,
        padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303 - MySQL uses SHA-1 OAEP
            algorithm=hashes.SHA1(),  # noqa: S303
            label=None,
        ),
    )


def scramble_for(plugin: str, password: bytes, nonce: bytes) -> bytes | None:
    """The first auth response for ``plugin``, or None if the endpoint cannot speak it."""
    if plugin == "mysql_native_password":
        return native_password(password, nonce)
    if plugin == "caching_sha2_password":
        return caching_sha2_password(password, nonce)
    if plugin == "mysql_clear_password":
        return password + b"\0"
    return None
