"""The endpoints' event loop: uvloop when installed, asyncio on request or when it is missing."""

from __future__ import annotations

import asyncio

import pytest

from rdsiam_emulator.endpoint import event_loops
from rdsiam_emulator.endpoint.event_loops import (
    LOOP_ENV,
    loop_name,
    new_event_loop,
    resolve_loop_name,
)
from rdsiam_emulator.endpoint.loop_thread import LoopThread


@pytest.fixture(autouse=True)
def _no_env_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOOP_ENV, raising=False)


def test_auto_picks_uvloop_which_is_a_dependency() -> None:
    assert resolve_loop_name() == "uvloop"
    loop = new_event_loop()
    try:
        assert loop_name(loop) == "uvloop"
    finally:
        loop.close()


def test_the_environment_can_force_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_ENV, " AsyncIO ")
    loop = new_event_loop()
    try:
        assert loop_name(loop) == "asyncio"
        assert isinstance(loop, asyncio.BaseEventLoop)
    finally:
        loop.close()


def test_an_argument_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_ENV, "asyncio")
    assert resolve_loop_name("uvloop") == "uvloop"


def test_an_unknown_choice_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_ENV, "trio")
    with pytest.raises(ValueError, match="auto, uvloop or asyncio"):
        resolve_loop_name()


def test_without_uvloop_auto_falls_back_but_an_explicit_request_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # uvloop cannot be uninstalled inside the test run, so its import is made to fail
    monkeypatch.setattr(event_loops, "_uvloop_factory", lambda: None)
    assert resolve_loop_name() == "asyncio"
    assert resolve_loop_name("auto") == "asyncio"
    with pytest.raises(RuntimeError, match="uvloop was requested but is not installed"):
        resolve_loop_name("uvloop")


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_loop_thread_runs_the_requested_loop(kind: str) -> None:
    lt = LoopThread(loop=kind)
    try:
        async def running() -> str:
            return loop_name(asyncio.get_running_loop())

        assert lt.run(running()) == kind
    finally:
        lt.stop()
