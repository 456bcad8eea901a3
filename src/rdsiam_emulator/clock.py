"""The one injectable clock.

Nothing else in the package reads the wall clock: logic takes a ``Clock`` (or an explicit ``now``)
so tests can move time, e.g. to expire a 15-minute token without waiting 15 minutes.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

_clock_gettime_ns = getattr(time, "clock_gettime_ns", None)
_CLOCK_REALTIME: int = getattr(time, "CLOCK_REALTIME", 0)
_CLOCK_MONOTONIC: int = getattr(time, "CLOCK_MONOTONIC", 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    """Anything that can tell the current UTC time as an aware datetime."""

    def now(self) -> datetime:
        """The current time as a timezone-aware ``datetime`` in UTC."""


class SystemClock:
    """The real time. The only place in the package that reads the system clock.

    It reads ``CLOCK_REALTIME`` directly, which freezegun does not patch: an application that
    freezes its own time (in the same process, as under the pytest plugin) does not stop the
    emulator's clock, as it would not stop RDS's.
    """

    def now(self) -> datetime:
        """The system's current time, aware, in UTC."""
        if _clock_gettime_ns is None:  # (no clock_gettime on Windows)
            return datetime.now(UTC)
        ns = _clock_gettime_ns(_CLOCK_REALTIME)
        return _EPOCH + timedelta(seconds=ns // 1_000_000_000, microseconds=ns % 1_000_000_000
                                  // 1000)


def monotonic() -> float:
    """Seconds on ``CLOCK_MONOTONIC``, read directly for the same reason as ``SystemClock``:
    freezegun replaces ``time.monotonic`` (asyncio's ``loop.time()``) in an app that freezes its
    clock. Falls back to ``time.monotonic`` where there is no ``clock_gettime`` (Windows)."""
    if _clock_gettime_ns is None:
        return time.monotonic()
    return float(_clock_gettime_ns(_CLOCK_MONOTONIC)) / 1e9


class ManualClock:
    """A clock that only moves when told to; thread-safe: endpoints read it from other threads.

    ``start`` (default: the system time now) must be timezone-aware, else ``ValueError``.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start if start is not None else SystemClock().now()
        _require_aware(start)
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The clock's current time, aware, in UTC (fixed until ``set``/``advance``)."""
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (any timezone; stored as UTC). May move backwards.

        Raises ``ValueError`` if ``when`` is naive.
        """
        _require_aware(when)
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        """Move forward by ``seconds`` plus any ``timedelta`` keyword (minutes=, hours=...)."""
        delta = timedelta(seconds=seconds, **kwargs)
        with self._lock:
            self._now = self._now + delta
            return self._now


class OffsetClock:
    """Real time shifted by an adjustable offset: time keeps flowing, but tests can jump ahead."""

    def __init__(self, base: Clock | None = None) -> None:
        self._base: Clock = base if base is not None else SystemClock()
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        """How far this clock runs ahead of its base clock (negative: behind)."""
        with self._lock:
            return self._offset

    def now(self) -> datetime:
        """The base clock's time plus ``offset``, aware, in UTC."""
        with self._lock:
            offset = self._offset
        return self._base.now() + offset

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        """Add ``seconds`` plus any ``timedelta`` keyword (minutes=, hours=...) to the offset.

        Returns the new ``now()``. Negative values move the clock back.
        """
        delta = timedelta(seconds=seconds, **kwargs)
        with self._lock:
            self._offset += delta
        return self.now()

    def set(self, when: datetime) -> None:
        """Set the offset so that ``now()`` equals ``when`` at this instant, then keeps running.

        Raises ``ValueError`` if ``when`` is naive.
        """
        _require_aware(when)
        base_now = self._base.now()
        with self._lock:
            self._offset = when.astimezone(UTC) - base_now

    def reset(self) -> None:
        """Drop the offset: ``now()`` is the base clock's time again."""
        with self._lock:
            self._offset = timedelta(0)


def _require_aware(when: datetime) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("clock times must be timezone-aware datetimes")
