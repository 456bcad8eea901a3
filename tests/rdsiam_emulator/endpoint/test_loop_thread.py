import asyncio
import threading

import pytest

from rdsiam_emulator.endpoint.loop_thread import LoopThread


def test_runs_coroutines_on_another_thread_and_returns_results():
    lt = LoopThread()
    try:
        async def where():
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert lt.run(where()) == "rdsiam-endpoints"
    finally:
        lt.stop()
    assert not lt.running


def test_exceptions_propagate():
    lt = LoopThread()
    try:
        async def boom():
            raise ValueError("nope")

        with pytest.raises(ValueError, match="nope"):
            lt.run(boom())
    finally:
        lt.stop()


def test_stop_cancels_background_tasks_and_is_idempotent():
    lt = LoopThread()
    cancelled = threading.Event()

    async def forever():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def spawn():
        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)

    lt.run(spawn())
    lt.stop()
    lt.stop()
    assert cancelled.is_set()
