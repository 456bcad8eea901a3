"""Stand-ins for the plugin's fixtures while the emulator is not activated.

Registered instead of ``pytest_rdsiam.fixtures`` so that an installed but inactive plugin imports
neither moto, boto3 nor the endpoints (docs/install.md has the measured cost). Each stand-in skips
the test that asks for it with a reason saying how to activate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_rdsiam.plugin_state import NOT_ACTIVE_REASON

FIXTURE_SCOPES: dict[str, str] = {
    "rds_iam_backends": "session",
    "rds_iam_instances": "session",
    "rds_iam_instance": "session",
    "_rds_iam_scope": "function",
    "rds_iam_db": "function",
    "rds_iam_db_factory": "function",
    "rds_iam_proxy_factory": "function",
    "rds_iam_cluster_factory": "function",
    "rds_iam_cluster": "function",
}
"""Every fixture of ``pytest_rdsiam.fixtures`` and its scope (a test keeps the two in step)."""


def _stand_in(name: str, scope: str) -> Callable[..., Any]:
    def skip_not_active() -> None:
        pytest.skip(NOT_ACTIVE_REASON)

    skip_not_active.__name__ = f"inactive_{name.lstrip('_')}"
    return pytest.fixture(scope=scope, name=name)(skip_not_active)  # type: ignore[call-overload,no-any-return]


for _name, _scope in FIXTURE_SCOPES.items():
    globals()[f"inactive_{_name.lstrip('_')}"] = _stand_in(_name, _scope)
