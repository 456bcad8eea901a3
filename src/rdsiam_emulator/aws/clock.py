"""Make botocore's request signing and moto's IAM/STS timestamps follow an emulator ``Clock``.

The pytest ``clock`` fixture advances time for the validator; tokens and temporary credentials
minted inside the test process must age with it, or "advance 16 minutes" would expire nothing that
boto3 signs afterwards. Only these module-level time hooks are replaced, for the duration of the
context: the event loop's monotonic time and the rest of the process are untouched. A test's own
freezegun does not move these clocks (``SystemClock`` reads ``CLOCK_REALTIME``, which freezegun does
not patch): inside the context botocore signs at the emulator's time, as the emulator is RDS.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import ModuleType
from typing import Any

from rdsiam_emulator.clock import Clock

_HOOKS: tuple[tuple[str, str, str], ...] = (
    # (module, attribute, kind): "botocore" hooks take remove_tzinfo; "moto" hooks return naive UTC
    ("botocore.auth", "get_current_datetime", "botocore"),
    ("botocore.signers", "get_current_datetime", "botocore"),
    ("botocore.utils", "get_current_datetime", "botocore"),
    ("moto.sts.models", "utcnow", "moto"),
    ("moto.iam.models", "utcnow", "moto"),
)

_lock = threading.RLock()


def _botocore_hook(clock: Clock) -> Callable[..., datetime]:
    def get_current_datetime(remove_tzinfo: bool = True) -> datetime:
        now = clock.now()
        return now.replace(tzinfo=None) if remove_tzinfo else now

    return get_current_datetime


def _moto_hook(clock: Clock) -> Callable[[], datetime]:
    def utcnow() -> datetime:
        return clock.now().replace(tzinfo=None)

    return utcnow


@contextmanager
def aws_clock(clock: Clock) -> Iterator[None]:
    """Within the context, botocore signs and moto issues STS/IAM times at ``clock.now()``."""
    saved: list[tuple[ModuleType, str, Any]] = []
    with _lock:
        for module_name, attr, kind in _HOOKS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            if not hasattr(module, attr):
                continue
            saved.append((module, attr, getattr(module, attr)))
            hook = _botocore_hook(clock) if kind == "botocore" else _moto_hook(clock)
            setattr(module, attr, hook)
    try:
        yield
    finally:
        with _lock:
            for module, attr, original in reversed(saved):
                setattr(module, attr, original)
