"""The pytest plugin entry point (``pytest11``): options, settings, fixtures, report sections.

Thin glue: everything the fixtures do is library code in ``rdsiam_emulator``.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from pytest_rdsiam.fixtures import (
    _rds_iam_scope,
    rds_iam_backends,
    rds_iam_db,
    rds_iam_db_factory,
    rds_iam_instance,
    rds_iam_instances,
)
from pytest_rdsiam.options import add_options, resolve
from pytest_rdsiam.plugin_state import (
    NOT_ACTIVE_REASON,
    SETTINGS_KEY,
    require_active,
    settings_of,
)
from pytest_rdsiam.report import add_section

__all__ = [
    "NOT_ACTIVE_REASON",
    "_rds_iam_scope",
    "rds_iam_backends",
    "rds_iam_db",
    "rds_iam_db_factory",
    "rds_iam_instance",
    "rds_iam_instances",
    "require_active",
    "settings_of",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SETTINGS_KEY] = resolve(config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    add_section(item, report)
    return report
