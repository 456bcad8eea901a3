"""``[server] throttling``: RDS's IAM connection throttling is opt-in in the standalone server."""

import pytest

from rdsiam_emulator.server import config


def test_throttling_is_off_unless_asked() -> None:
    assert config.parse({}).server.throttling is False
    assert config.parse({"server": {"throttling": True}}).server.throttling is True


def test_throttling_must_be_a_boolean() -> None:
    with pytest.raises(config.ConfigError, match=r"server\.throttling: must be true or false"):
        config.parse({"server": {"throttling": "yes"}})
