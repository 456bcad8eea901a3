"""Runs one target of ``checks.py`` under atheris, with only the project's code instrumented."""

from __future__ import annotations

import sys
from collections.abc import Callable


def fuzz(target: str) -> None:
    """``python fuzz/fuzz_<target>.py [libFuzzer flags, e.g. -atheris_runs=N corpus_dir]``."""
    import atheris

    with atheris.instrument_imports(include=["rdsiam_emulator", "checks"]):
        import checks
    check: Callable[[bytes], None] = checks.TARGETS[target]
    if target == "token":
        checks.genuine_tokens()  # botocore once, before the clock starts
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
