"""Plugin-wide state kept on pytest's config and items (no globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_rdsiam.options import PluginSettings

if TYPE_CHECKING:  # the instances module pulls in the endpoints: not at plugin load
    from rdsiam_emulator.instances import EmulatedInstance
    from rdsiam_emulator.proxies import EmulatedProxy

SETTINGS_KEY = pytest.StashKey[PluginSettings]()
EVENT_SOURCES = pytest.StashKey[list[tuple["EmulatedInstance | EmulatedProxy", int]]]()
"""Per test item: which instances (and RDS Proxies) it used and the event cursor at the start."""

NOT_ACTIVE_REASON = (
    "the RDS IAM emulator is not active: run pytest with --rdsiam-emulator "
    "(or set rdsiam_emulator = true in your pytest ini)"
)


def settings_of(config: pytest.Config) -> PluginSettings:
    """The plugin's settings for this pytest run. Raises ``KeyError`` before the plugin configured
    them.
    """
    return config.stash[SETTINGS_KEY]


def require_active(config: pytest.Config) -> PluginSettings:
    """Skip the requesting test, with a reason that says how to activate, unless active."""
    settings = settings_of(config)
    if not settings.enabled:
        pytest.skip(NOT_ACTIVE_REASON)
    return settings
