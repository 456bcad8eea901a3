"""RDS's IAM connection throttling: >200 new connections/s with different tokens, or >20/s each
signed by a different IAM identity. Reusing a token is never throttled.

Windows use a monotonic source (elapsed real time), not the test clock: a test that freezes or jumps
the wall clock must not make every connection land in the same second.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    """Per-second limits of new IAM connections, as RDS documents them (values are counts per
    one-second window):
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.html
    """
    distinct_tokens_per_second: int = 200
    distinct_identities_per_second: int = 20


class Throttle:
    """Sliding one-second windows over distinct tokens and distinct signing identities.

    ``monotonic`` returns seconds (``time.monotonic`` by default); ``window`` is the window's
    length in seconds. Thread-safe. Limits as documented at
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.html
    """

    def __init__(
        self,
        limits: ThrottleLimits | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        window: float = 1.0,
    ) -> None:
        self.limits = limits or ThrottleLimits()
        self._monotonic = monotonic
        self._window = window
        self._tokens: deque[tuple[float, str]] = deque()
        self._token_set: dict[str, int] = {}
        self._identities: deque[tuple[float, str]] = deque()
        self._identity_set: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, token_key: str, identity: str) -> str | None:
        """Record one connection attempt; returns None, or why it is throttled.

        ``token_key`` identifies the token (a repeated key is never throttled), ``identity`` the
        signing principal. A throttled attempt is not recorded.
        """
        with self._lock:
            now = self._monotonic()
            self._expire(now)
            new_token = token_key not in self._token_set
            if not new_token:
                return None
            new_identity = identity not in self._identity_set
            if len(self._token_set) >= self.limits.distinct_tokens_per_second:
                return (f"more than {self.limits.distinct_tokens_per_second} new connections per "
                        "second with different tokens")
            if new_identity and (
                len(self._identity_set) >= self.limits.distinct_identities_per_second
            ):
                return (f"more than {self.limits.distinct_identities_per_second} connections per "
                        "second signed by different IAM identities")
            _push(self._tokens, self._token_set, now, token_key)
            _push(self._identities, self._identity_set, now, identity)
            return None

    def reset(self) -> None:
        """Forget every recorded attempt (the next second starts empty)."""
        with self._lock:
            self._tokens.clear()
            self._token_set.clear()
            self._identities.clear()
            self._identity_set.clear()

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        for window, counts in ((self._tokens, self._token_set),
                               (self._identities, self._identity_set)):
            while window and window[0][0] <= horizon:
                _, key = window.popleft()
                counts[key] -= 1
                if counts[key] == 0:
                    del counts[key]


def _push(window: deque[tuple[float, str]], counts: dict[str, int], now: float, key: str) -> None:
    window.append((now, key))
    counts[key] = counts.get(key, 0) + 1
