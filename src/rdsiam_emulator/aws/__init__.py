"""The glue to moto: everything that reads or patches moto's in-process IAM, STS and RDS state.

``iam_state`` (``MotoCredentials``, ``MotoPolicySource``: key id → credential + principal,
principal → policies), ``patches`` (unique ``DbiResourceId``, STS session records, user permissions
boundaries), ``rds`` (registering an emulated instance in moto's RDS) and ``clock`` (botocore's
signing time and moto's STS/IAM timestamps following a ``Clock``). The domain packages (``auth``,
``iam``) never import this package at module level.
"""

from __future__ import annotations

from rdsiam_emulator.aws.iam_state import MotoCredentials, MotoPolicySource
from rdsiam_emulator.aws.patches import new_dbi_resource_id

__all__ = ["MotoCredentials", "MotoPolicySource", "new_dbi_resource_id"]
