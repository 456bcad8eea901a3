"""Backend passwords for IAM users, derived from a per-instance secret.

The real servers behind an endpoint never trust anyone: after the emulator has verified an IAM
token, it logs in to the real server as that DB user with a password only the emulator can compute.
Clients never see it, so a password login cannot bypass IAM.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os


def new_instance_secret() -> bytes:
    """32 random bytes; one per emulated instance (or per backend, when reused between runs)."""
    return os.urandom(32)


def derived_password(instance_secret: bytes, db_user: str) -> str:
    """A stable 40-character password for ``db_user``, safe in SQL string literals.

    ``r``, 36 characters of URL-safe base64 of HMAC-SHA256(``instance_secret``, user) (216 bits),
    then ``Z9-``: the same inputs always give the same password; without the secret it cannot be
    computed. The fixed tail gives every password an upper-case letter, a digit and a special
    character, so MySQL's ``validate_password`` (MEDIUM, or STRONG without a dictionary) accepts
    it when the endpoint sets it as text.
    """
    mac = hmac.new(instance_secret, b"rdsiam-backend-password\0" + db_user.encode("utf-8"),
                   hashlib.sha256).digest()
    return "r" + base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")[:36] + "Z9-"
