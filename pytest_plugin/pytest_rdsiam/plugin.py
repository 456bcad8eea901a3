"""The pytest plugin entry point (``pytest11``): options, settings, fixtures, report sections.

Thin glue: everything the fixtures do is library code in ``rdsiam_emulator``. Loading this module
must stay cheap and must not need moto, boto3 or the drivers: every pytest run on a machine with
the package installed loads it, activated or not. The real fixtures are registered in
``pytest_configure`` only when the emulator is activated; otherwise stand-ins that skip with a
how-to reason (``pytest_rdsiam.inactive``).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Generator

import pytest

from pytest_rdsiam.options import add_options, bare_activation_to_explicit, resolve
from pytest_rdsiam.plugin_state import (
    NOT_ACTIVE_REASON,
    SETTINGS_KEY,
    require_active,
    settings_of,
)
from pytest_rdsiam.report import add_section

__all__ = [
    "FIXTURES_PLUGIN_NAME",
    "NOT_ACTIVE_REASON",
    "require_active",
    "settings_of",
]

FIXTURES_PLUGIN_NAME = "rdsiam-fixtures"
"""The name under which the fixtures module (real or stand-in) is registered with pytest."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> None:
    """Keep ``pytest --rdsiam-emulator tests/`` working now that the flag takes an optional
    true/false value: a bare flag followed by anything else means ``--rdsiam-emulator=true``."""
    if bare_activation_to_explicit(args):
        # what pytest parsed before this hook took the path as the flag's value: parse again
        early_config.known_args_namespace = parser.parse_known_args(
            args, namespace=copy.copy(early_config.option))


def pytest_configure(config: pytest.Config) -> None:
    settings = resolve(config)
    if settings.enabled and settings.events_file:
        _check_events_file(settings.events_file)
    config.stash[SETTINGS_KEY] = settings
    module = "pytest_rdsiam.fixtures" if settings.enabled else "pytest_rdsiam.inactive"
    if not config.pluginmanager.has_plugin(FIXTURES_PLUGIN_NAME):
        config.pluginmanager.register(importlib.import_module(module), FIXTURES_PLUGIN_NAME)


def _check_events_file(path: str) -> None:
    """A file that cannot be written is a usage error now, not a failed login later."""
    from pathlib import Path

    from rdsiam_emulator.events import check_jsonl_path

    try:
        check_jsonl_path(Path(path))
    except OSError as exc:
        raise pytest.UsageError(
            f"--rdsiam-events-file/rdsiam_events_file: cannot write {path!r}: "
            f"{exc.strerror or exc}") from None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    add_section(item, report)
    return report
