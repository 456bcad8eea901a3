"""The pytest plugin entry point (``pytest11``): options, settings, activation.

Thin glue: fixtures live in ``fixtures.py``; everything they do is library code.
"""

from __future__ import annotations

import pytest

from pytest_rdsiam.options import PluginSettings, add_options, resolve

SETTINGS_KEY = pytest.StashKey[PluginSettings]()

NOT_ACTIVE_REASON = (
    "the RDS IAM emulator is not active: run pytest with --rdsiam-emulator "
    "(or set rdsiam_emulator = true in your pytest ini)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SETTINGS_KEY] = resolve(config)


def settings_of(config: pytest.Config) -> PluginSettings:
    return config.stash[SETTINGS_KEY]


def require_active(config: pytest.Config) -> PluginSettings:
    """Skip the requesting test, with a reason that says how to activate, unless active."""
    settings = settings_of(config)
    if not settings.enabled:
        pytest.skip(NOT_ACTIVE_REASON)
    return settings
