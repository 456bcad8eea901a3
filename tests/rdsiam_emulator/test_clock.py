"""The clock: the system clock is the real time even while the application froze its own."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from freezegun import freeze_time

from rdsiam_emulator.clock import OffsetClock, SystemClock


def _real_now() -> datetime:
    return datetime.fromtimestamp(time.clock_gettime(time.CLOCK_REALTIME), UTC)


def test_system_clock_is_the_real_time() -> None:
    assert abs(SystemClock().now() - _real_now()) < timedelta(seconds=2)
    assert SystemClock().now().tzinfo is UTC


def test_freezegun_in_the_application_does_not_stop_the_emulators_clock() -> None:
    """freezegun patches datetime.now/time.time process-wide; RDS's clock is not the app's, so
    the emulator's must not follow it (a token replayed after expiry must stay expired)."""
    clock = OffsetClock()
    with freeze_time("2020-01-01 00:00:00"):
        assert datetime.now(UTC).year == 2020  # the app's view
        assert abs(SystemClock().now() - _real_now()) < timedelta(seconds=2)
        first = clock.now()
        time.sleep(0.05)
        assert clock.now() > first  # keeps running
        assert clock.advance(minutes=16) - _real_now() > timedelta(minutes=15)
