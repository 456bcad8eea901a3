"""The IAM part of ``token explain`` (loaded by ``commands/token.py`` through its hook).

``token explain`` runs in its own process, so it cannot read the in-memory moto state of the
emulator; it can ask a moto server (the standalone emulator's, ``--iam-endpoint-url`` or
``AWS_ENDPOINT_URL``) through the IAM/STS/RDS APIs:
* the access key → the IAM user (``GetAccessKeyLastUsed``, ``GetAccessKeyInfo``), its status;
* the user's policies (``IamApiPolicySource``) and the instance's DbiResourceId and account
  (``describe_db_instances``, matched by ``--instance`` or by the endpoint address).
The API never returns secrets, so the signature still needs ``--secret-access-key``;
temporary (ASIA…) keys cannot be resolved through the API (no STS session lookup): their policy
check needs the library route, ``explain_token(..., credentials=MotoCredentials(),
authorizer=IamAuthorizer())``, in the process that holds the moto state.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rdsiam_emulator.auth.credentials import ResolvedCredential
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.explain import ExplainInputs
from rdsiam_emulator.auth.tokens import ParsedToken
from rdsiam_emulator.commands.policy import WithScp, scp_levels
from rdsiam_emulator.iam.api_source import IamApiPolicySource, principal_for_access_key
from rdsiam_emulator.iam.authorizer import IamAuthorizer
from rdsiam_emulator.iam.principals import MotoCredential, PolicySource
from rdsiam_emulator.iam.request_context import GLOBAL_KEYS_MODES
from rdsiam_emulator.reasons import Rejection


def _readable_files(spec: str) -> str:
    """argparse type for ``--scp-file``: every comma-separated file must be readable (exit 2)."""
    for path in (p for p in spec.split(",") if p):
        try:
            Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return spec


def add_explain_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``token explain``'s options for reading IAM/RDS state from a moto server:
    ``--iam-endpoint-url``, ``--instance``, ``--resource-id`` and ``--account``.
    """
    group = parser.add_argument_group("IAM policy check (against a moto server)")
    group.add_argument("--iam-endpoint-url", metavar="URL",
                       help="moto server to read IAM/RDS state from (default: AWS_ENDPOINT_URL)")
    group.add_argument("--instance", help="DB instance identifier (for its DbiResourceId)")
    group.add_argument("--resource-id", help="the dbuser ARN's resource id (db-…, cluster-…)")
    group.add_argument("--account", help="the database's account id")
    group.add_argument("--global-keys", choices=GLOBAL_KEYS_MODES, default="documented",
                       help="request context of the policy check: 'documented' (default) or "
                            "'none' (no global condition keys), as in policy check")
    group.add_argument("--scp-file", action="append", default=None, metavar="FILE[,FILE…]",
                       type=_readable_files,
                       help="service control policies of one level root → OUs → account "
                            "(repeat per level, root first), evaluated instead of reading them "
                            "through the Organizations API, as in policy check")


class ApiKeyLookup:
    """A ``CredentialLookup`` that takes the secret from the command line and the principal from
    the IAM API: enough for the signature and policy checks of a long-term key."""

    def __init__(self, iam: Any, sts: Any, secret: str, session_token: str | None) -> None:
        self._iam, self._sts = iam, sts
        self._secret, self._session_token = secret, session_token

    def lookup(self, access_key_id: str) -> ResolvedCredential | None:
        """The key with the command line's secret and session token, plus its principal from the IAM
        API.

        A key the API does not know still resolves (source ``command line``, no principal), so the
        signature can be checked; ``active`` follows ``ListAccessKeys`` when the user can be listed.
        """
        principal = principal_for_access_key(self._iam, self._sts, access_key_id)
        if principal is None:
            return ResolvedCredential(access_key_id, self._secret, self._session_token,
                                      source="command line")
        active = True
        try:
            keys = self._iam.list_access_keys(UserName=principal.user_name)["AccessKeyMetadata"]
            active = any(k["AccessKeyId"] == access_key_id and k["Status"] == "Active"
                         for k in keys)
        except Exception:  # status unknown: the key exists, assume the API's default
            active = True
        return MotoCredential(
            access_key_id, self._secret, self._session_token, active=active,
            principal_arn=principal.arn, account_id=principal.account_id, source="iam-api",
            principal=principal,
        )


class _BoundAuthorizer:
    """Completes the endpoint with the account and resource id the CLI looked up."""

    def __init__(self, inner: IamAuthorizer, account_id: str | None, resource_id: str,
                 instance_id: str | None) -> None:
        self._inner = inner
        self._account_id, self._resource_id = account_id, resource_id
        self._instance_id = instance_id

    def _bind(self, credential: ResolvedCredential, endpoint: Endpoint) -> Endpoint:
        return Endpoint(
            endpoint.host, endpoint.port, endpoint.region, endpoint.aliases,
            account_id=self._account_id or endpoint.account_id or credential.account_id,
            resource_id=self._resource_id,
            instance_id=self._instance_id or endpoint.instance_id,
        )

    def authorize(self, *, credential: ResolvedCredential, token: ParsedToken,
                  endpoint: Endpoint, db_user: str, now: datetime) -> Rejection | None:
        return self._inner.authorize(credential=credential, token=token,
                                     endpoint=self._bind(credential, endpoint),
                                     db_user=db_user, now=now)

    def skipped_parts(self, *, credential: ResolvedCredential, endpoint: Endpoint, db_user: str,
                      now: datetime) -> tuple[str, ...]:
        return self._inner.skipped_parts(credential=credential,
                                         endpoint=self._bind(credential, endpoint),
                                         db_user=db_user, now=now)


def _client(url: str, service: str, region: str, account: str | None) -> Any:
    import boto3

    session = boto3.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name=region,
    )
    client = session.client(service, endpoint_url=url)
    if account is not None:
        def add(request: Any, **_kwargs: Any) -> None:
            request.headers["x-moto-account-id"] = account

        client.meta.events.register("before-sign.*.*", add)
    return client


def _find_instance(rds: Any, endpoint: Endpoint | None, instance: str | None) -> dict[str, Any]:
    if instance is not None:
        found: dict[str, Any] = rds.describe_db_instances(DBInstanceIdentifier=instance)[
            "DBInstances"][0]
        return found
    assert endpoint is not None
    for page in rds.get_paginator("describe_db_instances").paginate():
        for db in page["DBInstances"]:
            address = db.get("Endpoint", {})
            if (str(address.get("Address", "")).lower() == endpoint.host.lower()
                    and address.get("Port") == endpoint.port):
                return dict(db)
    raise LookupError(f"no instance at {endpoint.address} in the moto server (pass --instance)")


def explain_inputs(args: argparse.Namespace, endpoint: Endpoint | None) -> ExplainInputs | None:
    """The credential lookup and authorizer ``token explain`` uses against a moto server, or None
    when neither ``--iam-endpoint-url`` nor ``AWS_ENDPOINT_URL`` is set.

    When the instance cannot be found, one line goes to stderr and the policy check is skipped
    (credentials only). Clients are created lazily; network errors surface later, in the checks.
    """
    url = args.iam_endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None
    region = args.region or (endpoint.region if endpoint is not None else "") or "us-east-1"
    iam = _client(url, "iam", region, None)
    sts = _client(url, "sts", region, None)
    credentials = None
    if args.secret_access_key is not None:
        credentials = ApiKeyLookup(iam, sts, args.secret_access_key, args.session_token)
    if endpoint is None:
        return ExplainInputs(credentials=credentials)
    resource_id, account, instance_id = args.resource_id, args.account, args.instance
    if resource_id is None:
        try:
            db = _find_instance(_client(url, "rds", region, account), endpoint, args.instance)
        except Exception as exc:
            sys.stderr.write(f"token explain: policy check skipped: {exc}\n")
            return ExplainInputs(credentials=credentials)
        resource_id = db["DbiResourceId"]
        instance_id = instance_id or db.get("DBInstanceIdentifier")
        account = account or str(db.get("DBInstanceArn", "")).split(":")[4] or None
    source: PolicySource = IamApiPolicySource(
        iam, client_for_account=lambda acct: _client(url, "iam", region, acct),
        organizations_for_account=lambda acct: _client(url, "organizations", region, acct),
        report_scp_skipped=not args.scp_file,
    )
    if args.scp_file:
        source = WithScp(source, scp_levels(args.scp_file))
    authorizer = _BoundAuthorizer(IamAuthorizer(source, global_keys=args.global_keys), account,
                                  resource_id, instance_id)
    return ExplainInputs(credentials=credentials, authorizer=authorizer)
