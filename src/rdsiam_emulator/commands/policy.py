"""``rdsiam-emulator policy check``: may this principal ``rds-db:connect`` as this DB user?

Two ways to get the IAM state, because a CLI process cannot see another process's in-memory moto:
* ``--endpoint-url`` (or ``AWS_ENDPOINT_URL``): a moto server (the standalone emulator's); policies
  are read through its IAM API and the instance's DbiResourceId through ``describe_db_instances``;
* ``--policy-file`` (repeatable, with ``--session-policy-file``/``--boundary-file``): evaluate those
  documents instead of the principal's IAM policies. ``--scp-file`` adds service control policies
  (one option per level root → OUs → account) with either source; ``--global-keys none`` selects
  the stricter reading of the request context. The database is ``--resource-id``, or
  ``--instance`` looked up through ``--endpoint-url`` when one is given. With both sources the
  files replace the identity (and session) policies only: the boundary (unless
  ``--boundary-file``), tags, organization and SCPs still come from the server.
Exit status: 0 allowed, 1 denied, 2 usage or lookup error (also ``--context`` keys a login's
context cannot have, and a second ``--boundary-file``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from rdsiam_emulator.clock import SystemClock
from rdsiam_emulator.iam.api_source import IamApiPolicySource, StaticPolicySource
from rdsiam_emulator.iam.authorizer import check_principal
from rdsiam_emulator.iam.evaluator import HintInputs, Layer, PolicyRef, ScpLevel
from rdsiam_emulator.iam.explain_policy import check_to_json, format_check
from rdsiam_emulator.iam.organizations import scp_ref
from rdsiam_emulator.iam.principals import (
    OrgMembership,
    PolicySource,
    Principal,
    PrincipalArnError,
    PrincipalPolicies,
    principal_from_arn,
    skipped_part,
)
from rdsiam_emulator.iam.request_context import GLOBAL_KEYS_MODES, UNSUPPORTED_KEYS, GlobalKeys


def register(sub: Any) -> None:
    """Add ``policy check`` to the ``rdsiam-emulator`` subparsers ``sub``."""
    parser = sub.add_parser("policy", help="evaluate IAM policies for rds-db:connect",
                            description="Evaluate IAM policies for rds-db:connect.")
    inner = parser.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    check = inner.add_parser(
        "check", help="decide whether a principal may connect as a DB user, and explain why",
        description="Decide whether a principal may rds-db:connect as a DB user, evaluating its "
        "identity, session and boundary policies as IAM does, and explain why.",
    )
    check.add_argument("--principal", required=True,
                       help="arn:aws:iam::ACCT:user/NAME, …:role/NAME or "
                            "arn:aws:sts::ACCT:assumed-role/ROLE/SESSION")
    check.add_argument("--db-user", required=True, help="the database user name to log in as")
    check.add_argument("--instance",
                       help="DB instance (or Aurora cluster) identifier: alone, looked up for its "
                            "resource id through --endpoint-url; with --resource-id, no lookup, "
                            "it only lets the explanation spot a policy that names the identifier "
                            "instead of the resource id")
    check.add_argument("--resource-id", help="DbiResourceId (db-…), cluster-… or prx-…")
    check.add_argument("--region", default=None, help="default: AWS_DEFAULT_REGION or us-east-1")
    check.add_argument("--account", help="the database's account (default: the principal's)")
    check.add_argument("--endpoint-url", default=None,
                       help="moto server URL (default: AWS_ENDPOINT_URL)")
    check.add_argument("--policy-file", action="append", default=[], type=Path,
                       help="identity policy document (JSON file) to evaluate instead of "
                            "reading IAM; repeatable: every file is one attached policy")
    check.add_argument("--session-policy-file", action="append", default=None, type=Path,
                       help="session policy document (as passed to AssumeRole); repeatable")
    check.add_argument("--boundary-file", action="append", default=None, type=Path,
                       help="permissions boundary document (at most one: a principal has at "
                            "most one boundary); with --endpoint-url it replaces the boundary "
                            "read from IAM")
    check.add_argument("--scp-file", action="append", default=None, metavar="FILE[,FILE…]",
                       help="service control policies of one level of the path root → OUs → "
                            "account (comma-separated files attached at the same level); "
                            "repeat once per level, root first")
    check.add_argument("--org-path", metavar="o-…/r-…/[ou-…/…]",
                       help="offline: the principal's account is in this organization, at this "
                            "path down to its parent (sets aws:PrincipalOrgID and "
                            "aws:PrincipalOrgPaths); without it, and without --endpoint-url, the "
                            "org keys are unknown and reported as not evaluated")
    check.add_argument("--global-keys", choices=GLOBAL_KEYS_MODES, default="documented",
                       help="request context: 'documented' (default: every global key except "
                            "the six RDS does not supply) or 'none' (the older RDS guide's "
                            "reading: no global condition keys)")
    check.add_argument("--context", action="append", default=[], metavar="KEY=VALUE",
                       help="extra request-context value, e.g. aws:PrincipalTag/team=db; a key "
                            "the context cannot have (the six RDS does not supply, or any aws: "
                            "key under --global-keys none) is refused (exit 2)")
    check.add_argument("--json", action="store_true", help="print the decision as JSON")
    check.set_defaults(func=run_check)
    parser.set_defaults(func=lambda _args: (parser.print_help(sys.stderr), 2)[1])


def _fail(message: str) -> int:
    print(f"policy check: {message}", file=sys.stderr)
    return 2


def _files(paths: list[Path] | None, layer: Layer) -> tuple[PolicyRef, ...] | None:
    if paths is None:
        return None
    return tuple(PolicyRef(f"file {p}", p.read_text(encoding="utf-8"), layer) for p in paths)


def run_check(args: argparse.Namespace) -> int:
    """Evaluate whether ``--principal`` may ``rds-db:connect`` as ``--db-user`` and print why (text,
    or JSON with ``--json``). Returns 0 allowed, 1 not allowed, 2 usage error (message on
    stderr).
    """
    try:
        principal = principal_from_arn(args.principal)
    except PrincipalArnError as exc:
        return _fail(str(exc))
    region = args.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    account = args.account or principal.account_id
    resource_id = args.resource_id
    endpoint_url = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    # --policy-file replaces the IAM policies only; a moto server may still name the instance
    needs_lookup = resource_id is None and args.instance is not None
    if resource_id is None and args.instance is None:
        return _fail("no database named: pass --resource-id ID, or --instance ID (looked up "
                     "through --endpoint-url / AWS_ENDPOINT_URL)")
    if needs_lookup and not endpoint_url:
        return _fail(f"--instance {args.instance!r} needs --endpoint-url (or AWS_ENDPOINT_URL, "
                     "a moto server) to look up its resource id; or pass --resource-id")
    # before "no IAM policies": a session/boundary file without identity files is its own rule
    if not args.policy_file and (args.session_policy_file or args.boundary_file):
        given = " and ".join(name for name, value in (
            ("--session-policy-file", args.session_policy_file),
            ("--boundary-file", args.boundary_file)) if value)
        return _fail(f"{given} needs --policy-file: session policies and boundaries only narrow "
                     "what identity policies allow, so they are evaluated together with the "
                     "identity policies given as files; with --endpoint-url the identity policies "
                     "and the boundary come from IAM, and a principal ARN carries no session "
                     "policy")
    if not args.policy_file and not endpoint_url:
        return _fail("no IAM policies: pass --endpoint-url (or AWS_ENDPOINT_URL, a moto server) "
                     "or --policy-file")
    if args.boundary_file and len(args.boundary_file) > 1:
        return _fail(f"--boundary-file given {len(args.boundary_file)} times: a principal has at "
                     "most one permissions boundary (one managed policy); pass one file")
    extra: dict[str, str] = {}
    for item in args.context:
        key, sep, value = item.partition("=")
        if not sep:
            return _fail(f"--context expects KEY=VALUE, got {item!r}")
        refused = context_key_refusal(key, args.global_keys)
        if refused:
            return _fail(f"--context {key}: {refused}")
        extra[key] = value
    org: OrgMembership | None = None
    if args.org_path:
        parts = args.org_path.strip("/").split("/")
        if len(parts) < 2 or not parts[0].startswith("o-") or not parts[1].startswith("r-"):
            return _fail(f"--org-path expects o-…/r-…/[ou-…/…], got {args.org_path!r}")
        org = OrgMembership(parts[0], "/".join(parts) + "/")
    source: PolicySource
    if args.policy_file:
        try:
            source = StaticPolicySource(
                _files(args.policy_file, "identity") or (),
                _files(args.session_policy_file, "session"),
                _files(args.boundary_file, "boundary"),
            )
        except OSError as exc:
            return _fail(str(exc))
    if endpoint_url:
        iam, rds = _clients(endpoint_url, region, principal.account_id, account)
        server = IamApiPolicySource(
            # membership is read even when --scp-file supplies the SCPs: the org keys
            # (aws:PrincipalOrgID/…Paths) do not depend on where the SCPs come from
            iam, report_scp_skipped=not args.scp_file,
            organizations_for_account=_organizations(endpoint_url, region),
        )
        # files replace the identity (and session/boundary) policies only: the server still
        # knows the principal's boundary, tags, organization and SCPs
        source = server if not args.policy_file else FilesOverServer(
            source, server, boundary_given=bool(args.boundary_file),
            session_given=bool(args.session_policy_file))
        if needs_lookup:
            try:
                resource_id = _resource_id(rds, args.instance)
            except Exception as exc:
                return _fail(f"cannot describe instance or cluster {args.instance!r} at "
                             f"{endpoint_url}: {exc}")
    org_skipped: tuple[str, ...] = ()
    if isinstance(source, StaticPolicySource) and org is None:
        org_skipped = (ORG_UNKNOWN,)
    if args.scp_file:
        try:
            source = WithScp(source, scp_levels(args.scp_file), org_skipped, org)
        except OSError as exc:
            return _fail(str(exc))
    elif isinstance(source, StaticPolicySource):
        source = WithScp(source, None, (
            "service control policies: none given (--scp-file); an SCP may still deny on AWS",
            *org_skipped), org)
    assert resource_id is not None
    resource = f"arn:aws:rds-db:{region}:{account}:dbuser:{resource_id}/{args.db_user}"
    check = check_principal(
        principal, resource, source=source, region=region, now=SystemClock().now(),
        hints=HintInputs(args.instance, resource_id, args.db_user, region, account),
        extra_context=extra, global_keys=args.global_keys,
    )
    if args.json:
        print(json.dumps(check_to_json(check), indent=2))
    else:
        print("\n".join(format_check(check)))
    return 0 if check.decision.allowed else 1


def scp_levels(specs: list[str]) -> tuple[ScpLevel, ...]:
    """``--scp-file a.json,b.json --scp-file c.json`` → two levels, named by position."""
    levels: list[ScpLevel] = []
    for index, spec in enumerate(specs):
        target = f"level {index + 1} of {len(specs)} (--scp-file {spec})"
        refs = tuple(
            scp_ref(path, "file", target, Path(path).read_text(encoding="utf-8"))
            for path in spec.split(",") if path
        )
        levels.append(ScpLevel(target, refs))
    return tuple(levels)


ORG_UNKNOWN = ("organization membership (aws:PrincipalOrgID, aws:PrincipalOrgPaths): unknown "
               "offline, so conditions on them are evaluated as if the keys were absent; pass "
               "--org-path or --endpoint-url")


def context_key_refusal(key: str, global_keys: GlobalKeys) -> str | None:
    """Why ``--context KEY=…`` cannot be honoured (it would be dropped), or None."""
    if key.lower() in UNSUPPORTED_KEYS:
        return ("RDS does not supply this key to rds-db:connect, so a login's request context "
                "never has it (conditions on it behave as on an absent key)")
    if global_keys == "none" and key.lower().startswith("aws:"):
        return ("under --global-keys none the request context has no aws: keys; drop it or use "
                "--global-keys documented")
    return None


class FilesOverServer:
    """``--policy-file`` with ``--endpoint-url``: identity (and session) policies from the files;
    the boundary (unless ``--boundary-file``), tags, organization and SCPs from the server."""

    def __init__(self, files: PolicySource, server: PolicySource, *, boundary_given: bool,
                 session_given: bool) -> None:
        self._files, self._server = files, server
        self._boundary_given, self._session_given = boundary_given, session_given

    def policies_for(self, principal: Principal) -> PrincipalPolicies:
        """The files' identity/session policies merged with the server's other parts."""
        files = self._files.policies_for(principal)
        found = self._server.policies_for(principal)
        skipped = tuple(
            part for part in found.skipped
            if not (self._boundary_given and skipped_part(part) == "boundary")
            and not (self._session_given and skipped_part(part) == "session"))
        return replace(
            found, identity=files.identity, session=files.session,
            boundary=files.boundary if self._boundary_given else found.boundary,
            boundary_unread=None if self._boundary_given else found.boundary_unread,
            skipped=skipped)


class WithScp:
    """A ``PolicySource`` whose SCP levels are given (``--scp-file``), not looked up, or whose
    SCPs are reported as skipped; ``org`` (``--org-path``) sets the membership when the inner
    source has none."""

    def __init__(self, inner: PolicySource, scp: tuple[ScpLevel, ...] | None,
                 skipped: tuple[str, ...] = (), org: OrgMembership | None = None) -> None:
        self._inner, self._scp, self._skipped, self._org = inner, scp, skipped, org

    def policies_for(self, principal: Principal) -> PrincipalPolicies:
        """The inner source's policies with the given SCP levels, skipped parts and membership
        applied.
        """
        found = self._inner.policies_for(principal)
        return replace(found, scp=self._scp, skipped=found.skipped + self._skipped,
                       org=found.org or self._org)


def _resource_id(rds: Any, identifier: str) -> str:
    """An instance's DbiResourceId, else an Aurora cluster's DbClusterResourceId (``cluster-…``)."""
    try:
        found = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
        return str(found[0]["DbiResourceId"])
    except Exception as instance_error:
        try:
            clusters = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"]
        except Exception:
            raise instance_error from None
        return str(clusters[0]["DbClusterResourceId"])


def _clients(
    endpoint_url: str, region: str, principal_account: str, db_account: str
) -> tuple[Any, Any]:
    """IAM and RDS clients for a moto server; ``x-moto-account-id`` picks each account's state."""
    import boto3

    session = boto3.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
        region_name=region,
    )
    clients = []
    for service, account in (("iam", principal_account), ("rds", db_account)):
        client = session.client(service, endpoint_url=endpoint_url)
        client.meta.events.register("before-sign.*.*", _account_header(account))
        clients.append(client)
    return clients[0], clients[1]


def _organizations(endpoint_url: str, region: str) -> Any:
    """Organizations clients acting as a given account (``x-moto-account-id``)."""
    import boto3

    session = boto3.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN"), region_name=region,
    )

    def for_account(account: str) -> Any:
        client = session.client("organizations", endpoint_url=endpoint_url)
        client.meta.events.register("before-sign.*.*", _account_header(account))
        return client

    return for_account


def _account_header(account: str) -> Any:
    def add(request: Any, **_kwargs: Any) -> None:
        request.headers["x-moto-account-id"] = account

    return add
