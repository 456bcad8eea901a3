"""The SCRAM-SHA-256 verifier PostgreSQL stores for a role, computed with ``scramp``.

The exchange itself (client side, RFC 5802 / RFC 7677) is ``scramp.ScramClient``, driven by
:class:`rdsiam_emulator.protocols.postgres.backend.BackendLogin`; this module only formats the
stored form that ``ALTER ROLE ... PASSWORD`` accepts (PostgreSQL's ``scram_build_secret``).
"""

from __future__ import annotations

import base64
import os

from scramp import ScramMechanism

MECHANISM = "SCRAM-SHA-256"
"""The SASL mechanism name PostgreSQL offers and the backend login picks (never ``-PLUS``)."""


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` string (base64 parts).

    Setting this with ALTER ROLE keeps the plaintext password off the server (and its logs).
    ``salt`` defaults to 16 random bytes, as PostgreSQL uses; ``iterations`` is PBKDF2's count
    (PostgreSQL's default 4096). The password is SASLprep-normalised, as the server does.

    Raises ``scramp.ScramException`` when ``salt`` is shorter than 12 bytes, ``iterations`` is
    below 4096 or above 10,000,000, or the password holds characters SASLprep prohibits.
    """
    salt = salt if salt is not None else os.urandom(16)
    salt_out, stored_key, server_key, count = ScramMechanism(MECHANISM).make_auth_info(
        password, iteration_count=iterations, salt=salt)
    parts = [base64.b64encode(part).decode("ascii") for part in (salt_out, stored_key, server_key)]
    return f"{MECHANISM}${int(count)}:{parts[0]}${parts[1]}:{parts[2]}"
