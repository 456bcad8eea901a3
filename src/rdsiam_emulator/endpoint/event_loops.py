"""Which event loop the endpoints run on: uvloop when it is installed, else asyncio's own.

Why uvloop: after authentication the endpoints forward every packet through Python, and uvloop's
transports (Cython over libuv) cut the endpoint's CPU per relayed packet compared with asyncio's
selector loop (see bench/ and docs/architecture.md). TLS is not the loop's on either loop: the
relay runs it over memory BIOs (``relay.RelayConnection.start_tls``; issue #16).
The endpoint code is written against the common asyncio API and is tested
on both; ``RDSIAM_EVENT_LOOP=asyncio`` forces the standard loop (for example to debug with
asyncio's debug mode, or on a platform without uvloop wheels).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable
from typing import Literal

from rdsiam_emulator.clock import monotonic

LoopName = Literal["uvloop", "asyncio"]
LOOP_ENV = "RDSIAM_EVENT_LOOP"


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        module = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def resolve_loop_name(requested: str | None = None) -> LoopName:
    """``requested`` (argument > $RDSIAM_EVENT_LOOP > ``auto``): ``auto`` picks uvloop when it
    can be imported. Asking for uvloop explicitly when it is missing is an error, not a silent
    fallback: ``RuntimeError``; an unknown name is a ``ValueError``."""
    choice = (requested or os.environ.get(LOOP_ENV) or "auto").strip().lower()
    if choice == "asyncio":
        return "asyncio"
    if choice not in ("auto", "uvloop"):
        raise ValueError(f"{LOOP_ENV} must be auto, uvloop or asyncio, not {choice!r}")
    if _uvloop_factory() is not None:
        return "uvloop"
    if choice == "uvloop":
        raise RuntimeError("uvloop was requested but is not installed (pip install uvloop)")
    return "asyncio"


def new_event_loop(requested: str | None = None) -> asyncio.AbstractEventLoop:
    """A new loop of the resolved kind (see ``resolve_loop_name``)."""
    if resolve_loop_name(requested) == "uvloop":
        factory = _uvloop_factory()
        assert factory is not None
        return factory()
    loop = asyncio.new_event_loop()
    # asyncio's loop.time() reads time.monotonic, which freezegun replaces in an app that freezes
    # its clock: every handshake and backend timeout would stop with it (uvloop's is libuv's)
    loop.time = monotonic  # type: ignore[method-assign]
    return loop


def loop_name(loop: asyncio.AbstractEventLoop) -> LoopName:
    """What a running loop is, for logs and benchmark reports."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
