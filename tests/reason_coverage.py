"""Reason-code coverage: a whole-suite run fails when a declared ``Reason`` is never produced.

Active only when ``RDSIAM_REASON_COVERAGE=1`` (scripts/test sets it for the whole suite), so
``pytest tests/one_file.py`` is unaffected. It records each reason that *our code* chooses, at the
places every refusal passes through:

* ``reasons.Rejection`` built by library code (every verifier check, the IAM authorizer, the
  guards that turn an exception into ``internal_error``);
* ``tokens.TokenFormatError`` built by library code (every format refusal);
* ``verifier.verify_token`` results outside the authorization stage (the SDK fast path builds its
  ``internal_error`` result without a ``Rejection``);
* ``events.EventLog.record`` of a denial whose reason was chosen by library code: the frames of
  ``Authenticator.reject``/``_decide`` are skipped, so a test that calls ``reject(reason=…)``
  itself proves nothing.

Reasons that test code makes up (a fake authorizer's ``Rejection``, a hand-built ``AuthEvent``)
do not count.

The same run also fails when a refusal recorded by our code (an ``AuthEvent`` with outcome
``deny`` reaching ``EventLog.record`` from library code) has no reason or no hint: every refusal
must say why and what to do. Those events are listed (the code that chose them, engine, reason,
detail). Under xdist each worker sends its set to the controller through ``workeroutput``.
New members of ``Reason`` are picked up without changes here.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from rdsiam_emulator import events
from rdsiam_emulator.auth import tokens, verifier
from rdsiam_emulator.reasons import REASONS, Reason, Rejection

ENV = "RDSIAM_REASON_COVERAGE"
_OUTPUT_KEY = "rdsiam_reasons_produced"
_UNEXPLAINED_KEY = "rdsiam_refusals_unexplained"
_SHOWN = 20
_LIBRARY = ("rdsiam_emulator", "pytest_rdsiam")
_PASS_THROUGH = frozenset(("reject", "_decide", "record", "record_password_login"))
"""Functions that hand on a reason chosen by their caller (Authenticator, EventLog)."""
_PASS_THROUGH_MODULES = frozenset(("rdsiam_emulator.auth.authenticator", "rdsiam_emulator.events"))

_produced: set[Reason] = set()
_unexplained: set[str] = set()
"""One line per distinct refusal without a reason or a hint: where, engine, reason, detail."""
_lock = threading.Lock()
_state: dict[str, Any] = {"installed": False, "message": None}


def enabled() -> bool:
    return os.environ.get(ENV, "") == "1"


def _is_library(frame: FrameType | None) -> bool:
    name = "" if frame is None else str(frame.f_globals.get("__name__", ""))
    return name.split(".")[0] in _LIBRARY


def _chooser(frame: FrameType | None) -> FrameType | None:
    """The first frame that is not merely passing a reason on."""
    while (frame is not None and frame.f_code.co_name in _PASS_THROUGH
           and frame.f_globals.get("__name__") in _PASS_THROUGH_MODULES):
        frame = frame.f_back
    return frame


def _note(reason: object) -> None:
    if isinstance(reason, Reason):
        with _lock:
            _produced.add(reason)


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return "?"
    return f"{frame.f_globals.get('__name__')}.{frame.f_code.co_name}:{frame.f_lineno}"


def _check_explained(event: events.AuthEvent, chooser: FrameType | None) -> None:
    if event.outcome != events.DENY or (event.reason is not None and event.hint):
        return
    detail = events.clip(event.detail, 160)
    line = (f"{_where(chooser)} [{event.engine}] reason={event.reason or 'None'} "
            f"hint={'yes' if event.hint else 'None'}: {detail}")
    with _lock:
        _unexplained.add(line)


def _wrap_init(cls: type[Any]) -> None:
    original: Callable[..., None] = cls.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if _is_library(sys._getframe(1)):
            _note(self.reason)

    cls.__init__ = __init__


def _rebind(module_attr: tuple[Any, str], replacement: Callable[..., Any]) -> None:
    """Replace a function on its module and wherever it was already imported by name."""
    module, name = module_attr
    original = getattr(module, name)
    setattr(module, name, replacement)
    for mod in list(sys.modules.values()):
        namespace = getattr(mod, "__dict__", None)
        if isinstance(namespace, dict):
            for key, value in list(namespace.items()):
                if value is original:
                    namespace[key] = replacement


def install() -> None:
    """Start recording (idempotent)."""
    if _state["installed"]:
        return
    _state["installed"] = True
    _wrap_init(Rejection)
    _wrap_init(tokens.TokenFormatError)

    original_verify = verifier.verify_token

    @functools.wraps(original_verify)
    def verify_token(*args: Any, **kwargs: Any) -> verifier.VerifyResult:
        result = original_verify(*args, **kwargs)
        if result.reason is not None and REASONS[result.reason].stage != "authorization":
            _note(result.reason)
        return result

    _rebind((verifier, "verify_token"), verify_token)

    original_record = events.EventLog.record

    @functools.wraps(original_record)
    def record(self: events.EventLog, event: events.AuthEvent) -> Any:
        chooser = _chooser(sys._getframe(1))
        if _is_library(chooser):
            if event.reason is not None:
                _note(event.reason)
            _check_explained(event, chooser)
        return original_record(self, event)

    events.EventLog.record = record  # type: ignore[method-assign]


def produced() -> set[Reason]:
    with _lock:
        return set(_produced)


def unexplained() -> set[str]:
    with _lock:
        return set(_unexplained)


def pytest_configure(config: pytest.Config) -> None:
    if enabled():
        install()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist controller: merge what a worker recorded."""
    output = getattr(node, "workeroutput", {})
    for value in output.get(_OUTPUT_KEY, ()):
        _note(Reason(value))
    with _lock:
        _unexplained.update(output.get(_UNEXPLAINED_KEY, ()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not enabled():
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller decides
        workeroutput[_OUTPUT_KEY] = sorted(r.value for r in produced())
        workeroutput[_UNEXPLAINED_KEY] = sorted(unexplained())
        return
    missing = [r.value for r in Reason if r not in produced()]
    lines: list[str] = []
    if missing:
        lines.append(
            f"reason coverage: {len(missing)} of {len(Reason)} declared reasons were never "
            f"produced by the code under test: {', '.join(missing)} (each Reason needs a tested "
            "path that emits it, see docs/reason-codes.md)")
    else:
        lines.append(f"reason coverage: all {len(Reason)} declared reasons produced")
    bare = sorted(unexplained())
    if bare:
        lines.append(f"refusals without a reason or a hint: {len(bare)} distinct (every refusal "
                     "needs exactly one reason and a hint, see docs/reason-codes.md)")
        lines.extend(f"  {line}" for line in bare[:_SHOWN])
        if len(bare) > _SHOWN:
            lines.append(f"  ... and {len(bare) - _SHOWN} more")
    else:
        lines.append("refusals without a reason or a hint: none")
    if (missing or bare) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _state["message"] = "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    message = _state["message"]
    if message is not None:
        terminalreporter.write_sep("-", "reason coverage")
        for line in message.splitlines():
            terminalreporter.write_line(line)
