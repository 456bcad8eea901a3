"""IAM for the emulator: credentials from moto's IAM/STS state and our own policy evaluator.

moto's evaluator ignores resources and most conditions, so decisions about ``rds-db:connect`` are
made here (``evaluator``); moto is only the store of users, roles, keys, sessions and policy
documents. See docs/iam.md.
"""

from __future__ import annotations

from rdsiam_emulator.iam.authorizer import IamAuthorizer, check_principal
from rdsiam_emulator.iam.evaluator import Decision, PolicyRef, evaluate
from rdsiam_emulator.iam.moto_state import MotoCredentials, MotoPolicySource
from rdsiam_emulator.iam.policy_model import PolicyDocument, PolicyParseError, parse_policy
from rdsiam_emulator.iam.principals import MotoCredential, Principal, principal_from_arn

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
