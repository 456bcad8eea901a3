"""Patch a moto service module when it is imported, not before.

Importing ``moto.rds`` costs ~2 s of CPU (most of the pytest plugin's first-test time, measured in
``bench/bench_plugin.py``), and a test that never calls the RDS API must not pay it. moto itself
imports a service's module on the first request to that service, so hooking the import is enough
for the emulator's patches and registrations to be in place before moto answers anything.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from wrapt import register_post_import_hook
from wrapt.importer import ImportHookFinder  # type: ignore[import-untyped]  # no stubs for it


def when_imported(module: str, hook: Callable[[], None]) -> None:
    """Run ``hook()`` now if ``module`` (e.g. ``"moto.rds"``) is imported, else in the importing
    thread right after its import completes (once; ``hook`` must be idempotent, and is called again
    by a later ``when_imported`` after the module was dropped from ``sys.modules`` and re-imported).
    Exceptions from a deferred ``hook`` propagate out of that import statement.

    When wrapt's import finder is no longer on ``sys.meta_path`` (something restored the list
    after wrapt added it, as pytester's in-process runs do), a deferred hook would never run:
    ``hook()`` runs now instead, importing the module."""
    if module in sys.modules:
        # another thread may be importing it still (it is in sys.modules from the start): wait
        # for that import (and its hooks) to finish before the hook reads the module
        importlib.import_module(module)
        hook()
        return
    register_post_import_hook(lambda _module: hook(), module)
    if not any(isinstance(finder, ImportHookFinder) for finder in sys.meta_path):
        hook()
