"""Stop every started server when the process ends: normal exit, Ctrl-C, or SIGTERM.

Why a registry: servers run in their own session (so a terminal Ctrl-C does not kill them mid-
test), which means nobody else will stop them. ``atexit`` covers normal exit and KeyboardInterrupt;
a SIGTERM handler (installed only if nobody else installed one) stops them and then dies as
terminated.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Protocol

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    """Anything with an idempotent ``stop()`` (a ``BackendHandle``)."""
    def stop(self) -> None:
        """Stop the resource (``stop_all`` calls it at exit and logs its errors)."""


_lock = threading.Lock()
_live: weakref.WeakValueDictionary[int, Stoppable] = weakref.WeakValueDictionary()
_strong: dict[int, Stoppable] = {}
_installed = False


def register(item: Stoppable) -> None:
    """Remember ``item`` until :func:`unregister`; it is stopped at process exit if still live."""
    with _lock:
        _strong[id(item)] = item
        _install_hooks()


def unregister(item: Stoppable) -> None:
    """Forget ``item`` (it was stopped); unknown items are ignored."""
    with _lock:
        _strong.pop(id(item), None)
        _live.pop(id(item), None)


def stop_all() -> None:
    """Stop everything still registered (newest first); errors are logged, never raised."""
    with _lock:
        items = list(_strong.values())
    for item in reversed(items):
        try:
            item.stop()
        except Exception:  # cleanup must go on for the others
            log.exception("stopping %r failed", item)


def live_count() -> int:
    """How many items are registered and not yet unregistered."""
    with _lock:
        return len(_strong)


def _install_hooks() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def on_exit(callback: Callable[[], None]) -> None:
    """Run ``callback`` at exit (used for resources that are not handles, e.g. a temp dir)."""
    atexit.register(callback)
