"""The ``[iam]`` seed: managed policies, groups, users (with fixed access keys) and roles, created
in moto through the server's own IAM API, as an app's setup script would.

Fixed access keys are the one thing the IAM API cannot do (it always generates keys): those are
set on moto's key objects directly, so a compose stack can keep its keys in an ``.env`` file.
"""

from __future__ import annotations

import json
from typing import Any

from rdsiam_emulator.server.config import Config, ConfigError, IamPrincipal


def apply_seed(config: Config, api_url: str) -> None:
    """Create everything in ``config.iam`` through the IAM API at ``api_url``.

    Raises ``ConfigError`` naming the entry if IAM refuses it (e.g. a malformed policy).
    """
    from botocore.exceptions import ClientError

    where = ["iam"]  # the entry being created, for the message
    try:
        _apply(config, api_url, where)
    except ClientError as exc:
        raise ConfigError(where[0], str(exc)) from None


def _apply(config: Config, api_url: str, where: list[str]) -> None:
    seed = config.iam
    if not (seed.policies or seed.groups or seed.users or seed.roles):
        return
    import boto3

    iam = boto3.client("iam", region_name=config.server.region, endpoint_url=api_url,
                       aws_access_key_id="seed", aws_secret_access_key="seed")
    account = config.server.account_id
    arns: dict[str, str] = {}
    for i, pol in enumerate(seed.policies):
        where[0] = f"iam.policies[{i}]"
        arns[pol.name] = str(iam.create_policy(PolicyName=pol.name, PolicyDocument=pol.document)
                             ["Policy"]["Arn"])

    def arn(ref: str) -> str:
        return arns.get(ref, ref)

    for i, group in enumerate(seed.groups):
        where[0] = f"iam.groups[{i}]"
        iam.create_group(GroupName=group.name)
        for ref in group.policies:
            iam.attach_group_policy(GroupName=group.name, PolicyArn=arn(ref))
        for pol in group.inline_policies:
            iam.put_group_policy(GroupName=group.name, PolicyName=pol.name,
                                 PolicyDocument=pol.document)
    for i, user in enumerate(seed.users):
        where[0] = f"iam.users[{i}]"
        iam.create_user(UserName=user.name)
        _attach(iam, "user", user, arn)
        for group_name in user.groups:
            iam.add_user_to_group(GroupName=group_name, UserName=user.name)
        for key in user.access_keys:
            made = iam.create_access_key(UserName=user.name)["AccessKey"]
            _fix_key(account, made["AccessKeyId"], key.access_key_id, key.secret_access_key)
    for i, role in enumerate(seed.roles):
        where[0] = f"iam.roles[{i}]"
        trust = role.trust_policy or json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "sts:AssumeRole"}]})
        iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=trust)
        _attach(iam, "role", role, arn)


def _attach(iam: Any, kind: str, who: IamPrincipal, arn: Any) -> None:
    name = {"UserName": who.name} if kind == "user" else {"RoleName": who.name}
    attach = iam.attach_user_policy if kind == "user" else iam.attach_role_policy
    put = iam.put_user_policy if kind == "user" else iam.put_role_policy
    for ref in who.policies:
        attach(PolicyArn=arn(ref), **name)
    for pol in who.inline_policies:
        put(PolicyName=pol.name, PolicyDocument=pol.document, **name)


def _fix_key(account: str, generated: str, access_key_id: str, secret: str) -> None:
    """Give the key moto generated the configured id and secret."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["aws"]
    key = backend.access_keys.pop(generated)
    key.access_key_id = access_key_id
    key.secret_access_key = secret
    backend.access_keys[access_key_id] = key
