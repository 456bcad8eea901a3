"""Looking up the secret behind an access key id.

``verify_token`` needs, for the key id in a token: the secret (to recompute the signature), whether
the key is active, when temporary credentials expire, and which session token belongs to them.
``StaticCredentials`` is the simple in-memory implementation; the moto-backed one lives in ``iam``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ResolvedCredential:
    """What IAM/STS knows about one access key id."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    """Set for temporary (STS) credentials: the token must carry exactly this session token."""
    active: bool = True
    expires_at: datetime | None = None
    """When temporary credentials stop working (aware, UTC); RDS checks this at connect time."""
    principal_arn: str | None = None
    account_id: str | None = None
    source: str = "static"
    """Where the key came from, for explanations (``iam-user``, ``sts:AssumeRole``, ...)."""

    @property
    def is_temporary(self) -> bool:
        """True for STS credentials (those that carry a session token)."""
        return self.session_token is not None


class CredentialLookup(Protocol):
    """Anything that can resolve an access key id; returns None for an unknown key."""

    def lookup(self, access_key_id: str) -> ResolvedCredential | None:
        """What is known about ``access_key_id``, or None if the key does not exist. Must not raise
        for an unknown key; may raise when the source itself fails (the verifier reports that as
        an internal error).
        """


CredentialSpec = tuple[str, str | None] | ResolvedCredential


class StaticCredentials:
    """A fixed table: ``{"AKID": ("secret", None), "ASIA…": ("secret", "session-token")}``.

    Values may also be full ``ResolvedCredential`` objects to express inactive keys, expiry or a
    principal ARN.
    """

    def __init__(self, entries: Mapping[str, CredentialSpec]) -> None:
        table: dict[str, ResolvedCredential] = {}
        for key_id, spec in entries.items():
            if isinstance(spec, ResolvedCredential):
                table[key_id] = spec
            else:
                secret, session_token = spec
                table[key_id] = ResolvedCredential(
                    access_key_id=key_id, secret_access_key=secret, session_token=session_token
                )
        self._table = table

    def lookup(self, access_key_id: str) -> ResolvedCredential | None:
        """The table's entry for ``access_key_id``, or None."""
        return self._table.get(access_key_id)

    def __len__(self) -> int:
        return len(self._table)
