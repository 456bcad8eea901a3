"""An asyncio event loop in a background thread, for synchronous callers (pytest, the CLI).

Endpoints are asyncio servers; tests are synchronous code that blocks in drivers. Running the
endpoints' loop in its own thread lets a test block in ``psycopg.connect`` while the endpoint
serves.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rdsiam_emulator.endpoint.event_loops import new_event_loop

T = TypeVar("T")


class LoopThread:
    """Owns one event loop running in a daemon thread until ``stop()``."""

    def __init__(self, name: str = "rdsiam-endpoints", *, loop: str | None = None) -> None:
        """``loop``: ``auto`` (default: uvloop when installed), ``uvloop`` or ``asyncio``."""
        self._loop = new_event_loop(loop)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the thread runs (schedule on it only with thread-safe calls)."""
        return self._loop

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Run ``coro`` on the loop and wait for its result (re-raising its exception).

        ``timeout`` is in seconds (None: wait for ever); when it passes, ``TimeoutError`` is
        raised and the coroutine keeps running. ``RuntimeError`` when called from the loop's own
        thread (it would deadlock).
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run called from the loop's own thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def running(self) -> bool:
        """True while the loop's thread is alive (until ``stop()`` returns)."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what is left, stop the loop, join the thread, close the loop. Idempotent.

        ``timeout`` (seconds) bounds the cancelling and, separately, the join; a loop whose thread
        is still alive after it is left open rather than closed under it.
        """
        if not self._thread.is_alive():
            return

        async def _cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self.run(_cancel_rest(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make()`` to completion from synchronous code and return its result
    (re-raising its exception), on a new asyncio loop that is closed afterwards.

    For synchronous callers of async clients (the backend handles ask the engine's admin client).
    Called where a loop already runs in this thread (``asyncio.run`` refuses that), it runs on a
    short-lived helper thread instead. Timeouts are the coroutine's own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:  # outside the except: its errors are not chained to "no running event loop"
        return asyncio.run(make())
    with ThreadPoolExecutor(1, thread_name_prefix="rdsiam-blocking") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
