"""SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL uses it, client side, plus verifier creation.

PostgreSQL sends an empty user name in client-first (the user comes from the StartupMessage) and
``n,,`` as GS2 header when no channel binding is used. The expensive PBKDF2 step is cached per
(password, salt, iterations): the emulator logs in as the same IAM users over and over with the same
derived passwords, so caching makes backend logins cheap without weakening anything on the wire.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

MECHANISM = "SCRAM-SHA-256"


class ScramError(Exception):
    """The server's SCRAM messages are malformed or its signature is wrong."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


@functools.lru_cache(maxsize=1024)
def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The ``SCRAM-SHA-256$iter:salt$StoredKey:ServerKey`` string PostgreSQL stores for a role.

    Setting this with ALTER ROLE keeps the plaintext password off the server (and its logs).
    """
    salt = salt if salt is not None else os.urandom(16)
    salted = salted_password(password, salt, iterations)
    stored_key = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
    server_key = _hmac(salted, b"Server Key")
    return f"{MECHANISM}${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _parse_attrs(message: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError(f"malformed SCRAM attribute {part[:10]!r}")
        attrs[part[0]] = part[2:]
    return attrs


class ScramClient:
    """One SCRAM-SHA-256 exchange: client_first, client_final(server_first), verify."""

    def __init__(self, password: str, *, username: str = "", nonce: str | None = None) -> None:
        self._password = password
        self._nonce = nonce if nonce is not None else _b64(os.urandom(18))
        self._bare = f"n={username},r={self._nonce}"
        self._server_signature: bytes | None = None

    def client_first(self) -> bytes:
        return ("n,," + self._bare).encode("ascii")

    def client_final(self, server_first: bytes) -> bytes:
        try:
            text = server_first.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ScramError("server-first-message is not ASCII") from exc
        attrs = _parse_attrs(text)
        nonce, salt_b64, iters = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if nonce is None or salt_b64 is None or iters is None:
            raise ScramError("server-first-message lacks r, s or i")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ScramError("the server nonce does not extend the client nonce")
        try:
            salt = base64.b64decode(salt_b64, validate=True)
            iterations = int(iters)
        except ValueError as exc:
            raise ScramError("invalid salt or iteration count") from exc
        if iterations < 1:
            raise ScramError("invalid iteration count")
        salted = salted_password(self._password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._bare},{text},{without_proof}".encode("ascii")
        signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(proof)}".encode("ascii")

    def verify_server_final(self, server_final: bytes) -> None:
        if self._server_signature is None:
            raise ScramError("server-final before server-first")
        try:
            attrs = _parse_attrs(server_final.decode("ascii"))
        except UnicodeDecodeError as exc:
            raise ScramError("server-final-message is not ASCII") from exc
        if "e" in attrs:
            raise ScramError(f"server reported SCRAM error {attrs['e']!r}")
        given = attrs.get("v", "")
        if not hmac.compare_digest(given, _b64(self._server_signature)):
            raise ScramError("the server signature is wrong")
