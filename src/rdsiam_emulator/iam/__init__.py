"""IAM for the emulator: credentials from moto's IAM/STS state and our own policy evaluator.

moto's evaluator ignores resources and most conditions, so decisions about ``rds-db:connect`` are
made here (``evaluator``); moto is only the store of users, roles, keys, sessions and policy
documents. See docs/iam.md. ``MotoCredentials`` and ``MotoPolicySource`` live in the moto glue
(``rdsiam_emulator.aws``); they are still importable from here, loaded on first use so that this
package never imports the glue (which imports this package).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rdsiam_emulator.iam.authorizer import IamAuthorizer, check_principal
from rdsiam_emulator.iam.evaluator import Decision, PolicyRef, evaluate
from rdsiam_emulator.iam.policy_model import PolicyDocument, PolicyParseError, parse_policy
from rdsiam_emulator.iam.principals import MotoCredential, Principal, principal_from_arn

if TYPE_CHECKING:
    from rdsiam_emulator.aws.iam_state import MotoCredentials, MotoPolicySource

_FROM_AWS = frozenset({"MotoCredentials", "MotoPolicySource"})


def __getattr__(name: str) -> Any:
    """Load ``MotoCredentials`` / ``MotoPolicySource`` from the glue; else AttributeError."""
    if name in _FROM_AWS:
        from rdsiam_emulator.aws import iam_state

        return getattr(iam_state, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Decision",
    "IamAuthorizer",
    "MotoCredential",
    "MotoCredentials",
    "MotoPolicySource",
    "PolicyDocument",
    "PolicyParseError",
    "PolicyRef",
    "Principal",
    "check_principal",
    "evaluate",
    "parse_policy",
    "principal_from_arn",
]
