import asyncio
import threading

import pytest

from rdsiam_emulator.endpoint.loop_thread import LoopThread, run_blocking


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


def test_run_blocking_from_plain_code_and_from_inside_a_running_loop():
    async def answer(value: int) -> tuple[int, bool]:
        await asyncio.sleep(0)
        return value, threading.current_thread() is threading.main_thread()

    assert run_blocking(lambda: answer(1)) == (1, True)  # no loop here: this thread

    async def from_a_loop() -> tuple[int, bool]:
        return run_blocking(lambda: answer(2))  # asyncio.run would refuse: a helper thread

    assert asyncio.run(from_a_loop()) == (2, False)

    async def boom() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        run_blocking(boom)
