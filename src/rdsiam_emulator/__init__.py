"""rdsiam-emulator: an offline emulator and test harness for RDS IAM database authentication."""

from rdsiam_emulator.auth.credentials import CredentialLookup, ResolvedCredential, StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.tokens import ParsedToken, TokenFormatError, parse_token, redact_token
from rdsiam_emulator.auth.verifier import (
    Authorizer,
    VerifierSettings,
    VerifyResult,
    verify_token,
)
from rdsiam_emulator.clock import Clock, ManualClock, OffsetClock, SystemClock
from rdsiam_emulator.reasons import REASONS, Reason, Rejection

__version__ = "0.1.0"

__all__ = [
    "REASONS",
    "Authorizer",
    "Clock",
    "CredentialLookup",
    "Endpoint",
    "ManualClock",
    "OffsetClock",
    "ParsedToken",
    "Reason",
    "Rejection",
    "ResolvedCredential",
    "StaticCredentials",
    "SystemClock",
    "TokenFormatError",
    "VerifierSettings",
    "VerifyResult",
    "__version__",
    "parse_token",
    "redact_token",
    "verify_token",
]
