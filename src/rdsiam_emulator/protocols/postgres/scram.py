"""SCRAM-SHA-256 around ``scramp``: the verifier PostgreSQL stores for a role, and the client of
the backend login with its SaltedPassword cached.

The exchange itself (client side, RFC 5802 / RFC 7677) is ``scramp.ScramClient``, driven by
:class:`rdsiam_emulator.protocols.postgres.backend.BackendLogin`. This module formats the stored
form that ``ALTER ROLE ... PASSWORD`` accepts (PostgreSQL's ``scram_build_secret``) and keeps a
small LRU of SaltedPassword (the PBKDF2 result, ``Hi()`` in RFC 5802): an IAM user's derived
backend password and the role's salt and iteration count do not change between logins, and PBKDF2
is most of the CPU of a login (4096 iterations by default).

scramp's public API takes only the password, so ``CachingScramClient`` scopes a memoised ``Hi``
to its own ``get_client_final`` call (a context variable read by a wrapper around ``scramp``'s
module-level ``hi``); every other use of scramp in the process computes as before, and the
exchange, its checks and the proof are still scramp's.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import scramp.core
from scramp import ScramClient, ScramMechanism

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


DEFAULT_CACHE_SIZE = 256
"""Entries in the process-wide SaltedPassword cache (one per IAM role and password in use)."""


class SaltedPasswordCache:
    """A bounded, thread-safe LRU of PBKDF2 results keyed by a SHA-256 of (hash name, password,
    salt, iteration count): the password is never a key, and the repr shows only counts.

    ``maxsize``: entries kept (least recently used dropped first). ``computed`` counts PBKDF2
    runs, ``hits`` answers from the cache (tests and benchmarks look).
    """

    def __init__(self, maxsize: int = DEFAULT_CACHE_SIZE) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0
        self.hits = 0

    def __repr__(self) -> str:
        return (f"<SaltedPasswordCache {len(self._entries)}/{self.maxsize} entries, "
                f"{self.hits} hits, {self.computed} computed>")

    def __len__(self) -> int:
        return len(self._entries)

    def salted_password(self, hf: Any, password: bytes, salt: bytes, iterations: int,
                        compute: Callable[[Any, bytes, bytes, int], bytes]) -> bytes:
        """``compute(hf, password, salt, iterations)`` (scramp's ``Hi``), or its cached result.

        ``hf`` is the mechanism's hash constructor (``hashlib.sha256``); its name is in the key.
        """
        key = _cache_key(hf, password, salt, iterations)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
        value: bytes = compute(hf, password, salt, iterations)  # outside the lock: slow
        with self._lock:
            self.computed += 1
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every entry (the counters stay)."""
        with self._lock:
            self._entries.clear()


def _cache_key(hf: Any, password: bytes, salt: bytes, iterations: int) -> bytes:
    digest = hashlib.sha256()
    for part in (str(hf().name).encode("ascii"), password, salt, str(int(iterations)).encode()):
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no ambiguous splits
        digest.update(part)
    return digest.digest()


SALTED_PASSWORDS = SaltedPasswordCache()
"""The process-wide cache ``BackendLogin`` uses unless given another."""

_active: contextvars.ContextVar[SaltedPasswordCache | None] = contextvars.ContextVar(
    "rdsiam_scram_cache", default=None)
_scramp_hi: Callable[[Any, bytes, bytes, int], bytes] | None = getattr(scramp.core, "hi", None)


def _hi(hf: Any, password: bytes, salt: bytes, iterations: int) -> bytes:
    """scramp's ``Hi``, memoised only inside ``CachingScramClient.get_client_final``."""
    assert _scramp_hi is not None
    cache = _active.get()
    if cache is None:
        return _scramp_hi(hf, password, salt, iterations)
    return cache.salted_password(hf, password, salt, iterations, _scramp_hi)


if _scramp_hi is not None and getattr(_scramp_hi, "__module__", "") == "scramp.utils":
    scramp.core.hi = _hi  # scoped by _active: see the module docstring


class CachingScramClient(ScramClient):  # type: ignore[misc]  # scramp has no type hints
    """``scramp.ScramClient`` whose client-final message takes SaltedPassword from ``cache``.

    Same arguments as ``ScramClient`` plus ``cache`` (None: compute every time). Should scramp
    stop computing ``Hi`` through its module-level ``hi``, the cache is simply not consulted
    (the login stays correct; the PBKDF2-count test in the suite fails).
    """

    def __init__(self, *args: Any, cache: SaltedPasswordCache | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache = cache

    def get_client_final(self) -> str:
        """The client-final message (scramp's), with ``Hi`` answered from the cache."""
        token = _active.set(self._cache)
        try:
            return str(super().get_client_final())
        finally:
            _active.reset(token)
