"""``policy check`` and the IAM-API policy source, against a real (in-process) moto server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import requests
from moto.server import ThreadedMotoServer

from rdsiam_emulator import cli
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.verifier import verify_token
from rdsiam_emulator.aws import MotoCredentials
from rdsiam_emulator.aws import patches as moto_patches
from rdsiam_emulator.aws.iam_state import MotoPolicySource
from rdsiam_emulator.clock import SystemClock
from rdsiam_emulator.iam import IamAuthorizer
from rdsiam_emulator.iam.api_source import IamApiPolicySource
from rdsiam_emulator.iam.authorizer import check_principal
from rdsiam_emulator.iam.explain_policy import format_check
from rdsiam_emulator.iam.principals import principal_from_arn

ACCT = "123456789012"
REGION = "us-east-1"
_BOTO = botocore.session.get_session()


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_patches.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        requests.post(f"{url}/moto-api/reset", timeout=10)
        yield url
    finally:
        requests.post(f"{url}/moto-api/reset", timeout=10)
        server.stop()


def client(url: str, service: str, creds: dict[str, str] | None = None) -> Any:
    creds = creds or {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
    return _BOTO.create_client(
        service, region_name=REGION, endpoint_url=url, aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds.get("SessionToken"),
    )


def policy(resource: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Db", "Effect": "Allow", "Action": "rds-db:connect", "Resource": resource}]})


def setup_state(url: str) -> tuple[str, dict[str, str]]:
    rds, iam = client(url, "rds"), client(url, "iam")
    rid = rds.create_db_instance(
        DBInstanceIdentifier="mydb", Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="master", MasterUserPassword="secret-password-1",
    )["DBInstance"]["DbiResourceId"]
    iam.create_user(UserName="alice", Tags=[{"Key": "team", "Value": "db"}])
    iam.create_group(GroupName="devs")
    iam.add_user_to_group(GroupName="devs", UserName="alice")
    arn = iam.create_policy(PolicyName="db-by-name", PolicyDocument=policy(
        f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:mydb/app"))["Policy"]["Arn"]
    iam.attach_group_policy(GroupName="devs", PolicyArn=arn)
    key: dict[str, str] = iam.create_access_key(UserName="alice")["AccessKey"]
    return rid, key


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["policy", "check", *args])
    return code, capsys.readouterr().out


def run_err(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Exit code and stderr without the ``policy check: `` prefix."""
    code = cli.main(["policy", "check", *args])
    return code, capsys.readouterr().err.removeprefix("policy check: ")


def test_cli_against_moto_server(moto_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rid, _ = setup_state(moto_url)
    base = ["--endpoint-url", moto_url, "--principal", f"arn:aws:iam::{ACCT}:user/alice",
            "--db-user", "app", "--instance", "mydb", "--region", REGION]
    code, out = run_cli(capsys, *base, "--json")
    data = json.loads(out)
    assert code == 1 and data["reason"] == "not_authorized"
    assert data["resource"].endswith(f"dbuser:{rid}/app")
    assert data["near_misses"][0]["kind"] == "instance_identifier"
    assert "managed policy 'db-by-name'" in data["policies"]["identity"][0]

    client(moto_url, "iam").put_user_policy(
        UserName="alice", PolicyName="fixed",
        PolicyDocument=policy(f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/${{aws:username}}"))
    code, out = run_cli(capsys, *base[:4], "--db-user", "alice", "--instance", "mydb",
                        "--region", REGION)
    assert code == 0 and "decision:   ALLOW" in out and "Sid 'Db' of inline policy 'fixed'" in out


def test_cli_role_with_boundary_via_api(moto_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rid, _ = setup_state(moto_url)
    iam = client(moto_url, "iam")
    boundary = iam.create_policy(PolicyName="fence", PolicyDocument=policy(
        "arn:aws:s3:::nothing"))["Policy"]["Arn"]
    iam.create_role(RoleName="app", AssumeRolePolicyDocument="{}", PermissionsBoundary=boundary)
    iam.put_role_policy(RoleName="app", PolicyName="db", PolicyDocument=policy("*"))
    code, out = run_cli(capsys, "--endpoint-url", moto_url, "--principal",
                        f"arn:aws:sts::{ACCT}:assumed-role/app/s1", "--db-user", "app",
                        "--resource-id", rid, "--region", REGION)
    assert code == 1 and "permissions boundary" in out


def test_cli_policy_files_and_usage_errors(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "p.json"
    doc.write_text(policy(f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:db-X/app"))
    session = tmp_path / "s.json"
    session.write_text(policy("arn:aws:rds-db:*:*:dbuser:*/other"))
    principal = ["--principal", f"arn:aws:iam::{ACCT}:role/app", "--db-user", "app"]
    code, out = run_cli(capsys, *principal, "--resource-id", "db-X", "--policy-file", str(doc))
    assert code == 0, out
    code, out = run_cli(capsys, *principal, "--resource-id", "db-X", "--policy-file", str(doc),
                        "--session-policy-file", str(session))
    assert code == 1 and "session policies do not" in out
    code, out = run_cli(capsys, *principal, "--resource-id", "db-X", "--policy-file", str(doc),
                        "--context", "team=db", "--json")
    assert code == 0
    code, err = run_err(capsys, *principal, "--resource-id", "db-X")
    assert code == 2 and err.startswith("no IAM policies: pass --endpoint-url")
    code, err = run_err(capsys, *principal, "--policy-file", str(doc))
    assert code == 2 and err.startswith("no database named: pass --resource-id")
    code, err = run_err(capsys, *principal, "--resource-id", "db-X", "--session-policy-file",
                        str(session), "--endpoint-url", "http://127.0.0.1:9")
    assert code == 2 and err.startswith("--session-policy-file needs --policy-file")
    assert run_cli(capsys, "--principal", "nope", "--db-user", "u", "--resource-id", "x",
                   "--policy-file", str(doc))[0] == 2
    assert run_cli(capsys, *principal, "--resource-id", "db-X", "--policy-file", str(doc),
                   "--context", "novalue")[0] == 2


def test_cli_policy_file_with_instance_needs_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The error names what is missing (the server), not the --instance the user passed."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    doc = tmp_path / "p.json"
    doc.write_text(policy("*"))
    code, err = run_err(capsys, "--principal", f"arn:aws:iam::{ACCT}:user/alice",
                        "--db-user", "app", "--instance", "mydb", "--policy-file", str(doc))
    assert code == 2
    assert "--instance 'mydb' needs --endpoint-url (or AWS_ENDPOINT_URL" in err
    assert "or --instance with --endpoint-url" not in err


def test_cli_policy_file_honours_instance_and_endpoint_url(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """--policy-file replaces the policies; --instance is still looked up on the server."""
    rid, _ = setup_state(moto_url)
    doc = tmp_path / "p.json"
    doc.write_text(policy(f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/app"))
    base = ["--principal", f"arn:aws:iam::{ACCT}:user/alice", "--db-user", "app",
            "--instance", "mydb", "--region", REGION, "--endpoint-url", moto_url]
    code, out = run_cli(capsys, *base, "--policy-file", str(doc), "--json")
    data = json.loads(out)
    assert code == 0, out
    assert data["resource"] == f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/app"
    assert data["policies"]["identity"] == [f"file {doc}"]
    # the server's own policies (db-by-name, which names the identifier) deny: not read here
    assert run_cli(capsys, *base)[0] == 1


def test_api_source_matches_in_process_source(moto_url: str) -> None:
    """Both sources read the same server state and decide alike."""
    rid, _ = setup_state(moto_url)
    principal = principal_from_arn(f"arn:aws:iam::{ACCT}:user/alice")
    resource = f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/app"
    now = SystemClock().now()
    api = IamApiPolicySource(client(moto_url, "iam"))
    from_api = check_principal(principal, resource, source=api, region=REGION, now=now)
    local = check_principal(principal, resource, source=MotoPolicySource(), region=REGION, now=now)
    assert from_api.decision.outcome == local.decision.outcome == "not_authorized"
    assert from_api.policies.tags == local.policies.tags == (("team", "db"),)
    assert [r.label for r in from_api.policies.identity] == [
        r.label for r in local.policies.identity]


def test_standalone_style_token_against_server_state(moto_url: str) -> None:
    """Apps talk to the moto server; the emulator reads the same process's backends."""
    rid, key = setup_state(moto_url)
    client(moto_url, "iam").put_user_policy(
        UserName="alice", PolicyName="ok",
        PolicyDocument=policy(f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/app"))
    endpoint = Endpoint("mydb.example.rds.amazonaws.com", 5432, REGION, account_id=ACCT,
                        resource_id=rid, instance_id="mydb")
    token = client(moto_url, "rds", key).generate_db_auth_token(
        DBHostname=endpoint.host, Port=endpoint.port, DBUsername="app")
    result = verify_token(token, endpoint=endpoint, db_user="app", credentials=MotoCredentials(),
                          now=SystemClock().now(), authorizer=IamAuthorizer())
    assert result.ok, result.detail


def test_principal_for_access_key_via_api(moto_url: str) -> None:
    from rdsiam_emulator.iam.api_source import principal_for_access_key

    _, key = setup_state(moto_url)
    iam, sts = client(moto_url, "iam"), client(moto_url, "sts")
    found = principal_for_access_key(iam, sts, key["AccessKeyId"])
    assert found is not None and found.arn == f"arn:aws:iam::{ACCT}:user/alice"
    assert principal_for_access_key(iam, sts, "AKIANOSUCHKEY0000000") is None
    client(moto_url, "iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    temp = client(moto_url, "sts", key).assume_role(
        RoleArn=f"arn:aws:iam::{ACCT}:role/r", RoleSessionName="s1")["Credentials"]
    assert principal_for_access_key(iam, sts, temp["AccessKeyId"]) is None


def _explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["token", "explain", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _authorization(data: dict[str, Any]) -> dict[str, Any]:
    (line,) = [c for c in data["checks"] if c["name"] == "rds-db:connect authorization"]
    return line


def test_token_explain_runs_the_policy_check_against_a_moto_server(
    moto_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rid, key = setup_state(moto_url)
    db = client(moto_url, "rds").describe_db_instances()["DBInstances"][0]
    host, port = db["Endpoint"]["Address"], db["Endpoint"]["Port"]
    token = client(moto_url, "rds", key).generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername="app")
    args = [token, "--endpoint", f"{host}:{port}", "--region", REGION, "--db-user", "app",
            "--secret-access-key", key["SecretAccessKey"], "--iam-endpoint-url", moto_url]
    code, data = _explain(capsys, *args)
    line = _authorization(data)
    assert code == 1 and line["status"] == "fail" and line["reason"] == "not_authorized"
    assert "DbiResourceId" in line["hint"] and rid in line["hint"]
    access = next(c for c in data["checks"] if c["name"] == "access key")
    assert access["status"] == "pass" and "user/alice" in access["detail"]

    client(moto_url, "iam").put_user_policy(
        UserName="alice", PolicyName="ok",
        PolicyDocument=policy(f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/app"))
    code, data = _explain(capsys, *args)
    assert code == 0 and _authorization(data)["status"] == "pass"
    assert _authorization(data)["detail"] == "allowed"  # no organization: nothing skipped
    code, data = _explain(capsys, *args, "--resource-id", "db-SOMETHINGELSE")
    assert code == 1 and _authorization(data)["status"] == "fail"


def test_token_explain_without_moto_server_skips_the_policy_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    token = ("db.example.com:5432/?Action=connect&DBUser=app&X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAEXAMPLE%2F20260601%2Fus-east-1%2Frds-db%2Faws4_request"
             "&X-Amz-Date=20260601T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
             "&X-Amz-Signature=" + "0" * 64)
    _, data = _explain(capsys, token, "--at", "2026-06-01T12:01:00Z")
    assert _authorization(data)["status"] == "skip"


def test_cli_aurora_cluster_resource_id(moto_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rds, iam = client(moto_url, "rds"), client(moto_url, "iam")
    cluster = rds.create_db_cluster(
        DBClusterIdentifier="aurora", Engine="aurora-postgresql", MasterUsername="master",
        MasterUserPassword="secret-password-1",
    )["DBCluster"]
    rid = cluster["DbClusterResourceId"]
    assert rid.startswith("cluster-")
    iam.create_user(UserName="carol")
    iam.put_user_policy(UserName="carol", PolicyName="p", PolicyDocument=policy(
        f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:cluster-*/app"))
    code, out = run_cli(capsys, "--endpoint-url", moto_url, "--principal",
                        f"arn:aws:iam::{ACCT}:user/carol", "--db-user", "app",
                        "--instance", "aurora", "--region", REGION)
    assert code == 0 and f"dbuser:{rid}/app" in out
    code, _ = run_cli(capsys, "--endpoint-url", moto_url, "--principal",
                      f"arn:aws:iam::{ACCT}:user/carol", "--db-user", "app",
                      "--instance", "missing", "--region", REGION)
    assert code == 2


def test_cli_user_with_boundary_via_api(moto_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A user's boundary is read through GetUser (PermissionsBoundary) and caps the identity
    policies (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html)."""
    rid, _ = setup_state(moto_url)
    iam = client(moto_url, "iam")
    fence = iam.create_policy(PolicyName="fence", PolicyDocument=policy(
        "arn:aws:s3:::nothing"))["Policy"]["Arn"]
    iam.create_user(UserName="bob", PermissionsBoundary=fence)
    iam.put_user_policy(UserName="bob", PolicyName="db", PolicyDocument=policy("*"))
    args = ("--endpoint-url", moto_url, "--principal", f"arn:aws:iam::{ACCT}:user/bob",
            "--db-user", "app", "--resource-id", rid, "--region", REGION)
    code, out = run_cli(capsys, *args)
    assert code == 1 and "user's permissions boundary" in out and "fence" in out
    iam.delete_user_permissions_boundary(UserName="bob")
    code, out = run_cli(capsys, *args)
    assert code == 0, out


def _deny_doc(action: str = "rds-db:connect", **condition: Any) -> str:
    stmt: dict[str, Any] = {"Sid": "Fence", "Effect": "Deny", "Action": action, "Resource": "*"}
    if condition:
        stmt["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [stmt]})


def test_cli_scp_and_boundary_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Offline checks with --scp-file (one option per level root → OU → account; a Deny anywhere
    wins, every level must allow) and --boundary-file (intersects); sources: the IAM policy
    evaluation logic page and the Organizations SCP evaluation page."""
    files = {
        "p.json": policy(f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:db-X/app"),
        "full.json": policy("*").replace("rds-db:connect", "*"),
        "s3only.json": policy("*").replace("rds-db:connect", "s3:*"),
        "deny.json": _deny_doc(),
        "fence.json": policy("arn:aws:s3:::nothing"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    f = {name: str(tmp_path / name) for name in files}
    base = ["--principal", f"arn:aws:iam::{ACCT}:user/alice", "--db-user", "app",
            "--resource-id", "db-X", "--region", REGION, "--policy-file", f["p.json"]]
    code, out = run_cli(capsys, *base, "--scp-file", f["full.json"], "--scp-file",
                        f"{f['full.json']},{f['s3only.json']}", "--org-path",
                        "o-a1b2c3d4e5/r-a1b2/")
    assert code == 0 and "skipped:" not in out, out
    code, out = run_cli(capsys, *base, "--scp-file", f["full.json"], "--scp-file",
                        f"{f['full.json']},{f['deny.json']}")
    assert code == 1 and "DENY (explicit_deny)" in out, out
    assert f"Sid 'Fence' of SCP '{f['deny.json']}' (file) attached to level 2 of 2" in out
    code, out = run_cli(capsys, *base, "--scp-file", f["full.json"], "--scp-file",
                        f["s3only.json"], "--json")
    data = json.loads(out)
    assert code == 1 and data["missing_scp_target"].startswith("level 2 of 2")
    assert data["policies"]["scp"] is not None and len(data["policies"]["scp"]) == 2
    code, out = run_cli(capsys, *base, "--boundary-file", f["fence.json"])
    assert code == 1 and "permissions boundary does not" in out
    assert "skipped:    service control policies: none given (--scp-file)" in out
    code, out = run_cli(capsys, *base, "--boundary-file", f["full.json"], "--scp-file",
                        f["full.json"])
    assert code == 0, out
    code, err = run_err(capsys, *base, "--scp-file", str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json" in err


def test_cli_global_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--global-keys none: the older guide's reading, every global key absent; the hint says a
    condition failed for an absent key."""
    window = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "rds-db:connect", "Resource": "*",
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2001-01-01T00:00:00Z"}}}]}
    doc = tmp_path / "w.json"
    doc.write_text(json.dumps(window))
    base = ["--principal", f"arn:aws:iam::{ACCT}:user/alice", "--db-user", "app",
            "--resource-id", "db-X", "--policy-file", str(doc)]
    code, out = run_cli(capsys, *base)
    assert code == 0 and "global keys 'documented'" in out, out
    code, out = run_cli(capsys, *base, "--global-keys", "none")
    assert code == 1 and "global keys 'none'" in out
    assert "[absent_key]" in out and "aws:CurrentTime is absent" in out
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses an unknown reading
        cli.main(["policy", "check", *base, "--global-keys", "some"])
    assert exit_info.value.code == 2 and "invalid choice: 'some'" in capsys.readouterr().err


def test_api_source_without_organizations_reports_scps_as_skipped(moto_url: str) -> None:
    """Without an Organizations client (or when it fails) the SCPs are not read: the decision
    says so instead of a silent allow."""
    rid, _ = setup_state(moto_url)
    iam = client(moto_url, "iam")
    iam.put_user_policy(UserName="alice", PolicyName="all", PolicyDocument=policy("*"))
    principal = principal_from_arn(f"arn:aws:iam::{ACCT}:user/alice")
    resource = f"arn:aws:rds-db:{REGION}:{ACCT}:dbuser:{rid}/app"
    now = SystemClock().now()
    plain = check_principal(principal, resource, source=IamApiPolicySource(iam), region=REGION,
                            now=now)
    assert plain.decision.allowed and plain.policies.skipped == (IamApiPolicySource.SCP_SKIPPED,)
    assert any(line.startswith("skipped:    service control policies")
               for line in format_check(plain))

    def broken(_account: str) -> Any:
        raise RuntimeError("no organizations endpoint")

    failing = check_principal(principal, resource, region=REGION, now=now, source=(
        IamApiPolicySource(iam, organizations_for_account=broken)))
    assert failing.policies.skipped == (
        "service control policies: the Organizations API failed (no organizations endpoint)",)


def test_cli_reads_scps_through_the_organizations_api(
    moto_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """policy check --endpoint-url reads the member account's path and SCPs through the
    Organizations API (SCP rules: orgs_manage_policies_scps.html)."""
    org = client(moto_url, "organizations")
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    root = org.list_roots()["Roots"][0]["Id"]
    org.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    ou = org.create_organizational_unit(ParentId=root, Name="Prod")["OrganizationalUnit"]["Id"]
    member = org.create_account(AccountName="app", Email="app@example.com")[
        "CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=member, SourceParentId=root, DestinationParentId=ou)
    iam = client(moto_url, "iam")
    iam.meta.events.register("before-sign.*.*", _member_header(member))
    iam.create_user(UserName="bob")
    iam.put_user_policy(UserName="bob", PolicyName="all", PolicyDocument=policy("*"))
    args = ["--endpoint-url", moto_url, "--principal", f"arn:aws:iam::{member}:user/bob",
            "--db-user", "app", "--resource-id", "db-X", "--region", REGION, "--json"]
    code, out = run_cli(capsys, *args)
    data = json.loads(out)
    assert code == 0 and data["skipped"] == [], out
    assert data["organization"]["id"] == org_id
    assert data["organization"]["path"] == f"{org_id}/{root}/{ou}/"
    assert len(data["policies"]["scp"]) == 3
    deny = org.create_policy(Name="no-db", Description="x", Type="SERVICE_CONTROL_POLICY",
                             Content=_deny_doc())["Policy"]["PolicySummary"]["Id"]
    org.attach_policy(PolicyId=deny, TargetId=ou)
    code, out = run_cli(capsys, *args)
    data = json.loads(out)
    assert code == 1 and data["outcome"] == "explicit_deny"
    assert f"SCP 'no-db' ({deny}) attached to OU 'Prod' ({ou})" in data["detail"]


def _member_header(account: str) -> Any:
    def add(request: Any, **_kwargs: Any) -> None:
        request.headers["x-moto-account-id"] = account

    return add


def test_cli_api_source_with_scp_file_is_not_skipped(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """--scp-file supplies the SCPs the API cannot: evaluated, and no longer reported skipped."""
    rid, _ = setup_state(moto_url)
    client(moto_url, "iam").put_user_policy(UserName="alice", PolicyName="all",
                                           PolicyDocument=policy("*"))
    deny = tmp_path / "deny.json"
    deny.write_text(_deny_doc())
    code, out = run_cli(capsys, "--endpoint-url", moto_url, "--principal",
                        f"arn:aws:iam::{ACCT}:user/alice", "--db-user", "app", "--resource-id",
                        rid, "--region", REGION, "--scp-file", str(deny))
    assert code == 1 and "explicit_deny" in out and "skipped:" not in out, out


def test_token_explain_allow_names_what_was_not_evaluated(moto_url: str) -> None:
    """An allow must not hide a skipped part: with a policy source that cannot read SCPs, the
    authorization line of token explain says 'not evaluated: service control policies …'."""
    from rdsiam_emulator.auth.explain import explain_token
    from rdsiam_emulator.commands.explain_hook import ApiKeyLookup

    rid, key = setup_state(moto_url)
    iam = client(moto_url, "iam")
    iam.put_user_policy(UserName="alice", PolicyName="all", PolicyDocument=policy("*"))
    db = client(moto_url, "rds").describe_db_instances()["DBInstances"][0]
    host, port = db["Endpoint"]["Address"], db["Endpoint"]["Port"]
    token = client(moto_url, "rds", key).generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername="app")
    endpoint = Endpoint(host, port, REGION, account_id=ACCT, resource_id=rid, instance_id="mydb")
    explanation = explain_token(
        token, now=SystemClock().now(), endpoint=endpoint, db_user="app",
        credentials=ApiKeyLookup(iam, client(moto_url, "sts"), key["SecretAccessKey"], None),
        authorizer=IamAuthorizer(IamApiPolicySource(iam)),
    )
    [line] = [c for c in explanation.checks if c.name == "rds-db:connect authorization"]
    assert line.status == "pass"
    assert line.detail == f"allowed; not evaluated: {IamApiPolicySource.SCP_SKIPPED}"


def test_allow_event_names_what_was_not_evaluated(moto_url: str) -> None:
    """The auth event of an allowed login carries the skipped parts of the decision (here: SCPs,
    with an IAM-API policy source built without an Organizations client)."""
    from rdsiam_emulator.auth.authenticator import Authenticator, ClientInfo
    from rdsiam_emulator.commands.explain_hook import ApiKeyLookup
    from rdsiam_emulator.events import EventLog

    rid, key = setup_state(moto_url)
    iam = client(moto_url, "iam")
    iam.put_user_policy(UserName="alice", PolicyName="all", PolicyDocument=policy("*"))
    db = client(moto_url, "rds").describe_db_instances()["DBInstances"][0]
    host, port = db["Endpoint"]["Address"], db["Endpoint"]["Port"]
    events = EventLog()
    auth = Authenticator(
        instance_id="mydb", engine="postgres",
        endpoint=Endpoint(host, port, REGION, account_id=ACCT, resource_id=rid,
                          instance_id="mydb"),
        credentials=ApiKeyLookup(iam, client(moto_url, "sts"), key["SecretAccessKey"], None),
        events=events, authorizer=IamAuthorizer(IamApiPolicySource(iam)))
    token = client(moto_url, "rds", key).generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername="app")
    decision = auth.authenticate_iam(db_user="app", token=token,
                                     client=ClientInfo("127.0.0.1", tls=True))
    assert decision.ok
    assert events.all()[-1].detail == (
        f"token accepted; not evaluated: {IamApiPolicySource.SCP_SKIPPED}")
    # the field, its JSON and the pytest report section carry the parts one by one
    event = events.all()[-1]
    assert event.not_evaluated == (IamApiPolicySource.SCP_SKIPPED,)
    assert json.loads(event.to_json())["not_evaluated"] == [IamApiPolicySource.SCP_SKIPPED]
    assert event.summary().endswith(
        f"ALLOW iam app@mydb as {event.principal_arn} (not evaluated: "
        f"{IamApiPolicySource.SCP_SKIPPED})")
    from pytest_rdsiam.plugin_state import EVENT_SOURCES
    from pytest_rdsiam.report import events_section

    class Item:  # stand-in for a pytest item; the instance only needs events_since
        stash = pytest.Stash()

    class Instance:
        events_since = staticmethod(events.since)

    Item.stash[EVENT_SOURCES] = [(Instance(), 0)]  # type: ignore[list-item]
    section = events_section(Item())  # type: ignore[arg-type]
    assert section is not None
    assert f"    not evaluated: {IamApiPolicySource.SCP_SKIPPED}" in section.splitlines()


def test_cli_scp_file_keeps_org_membership_from_the_server(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Trial #18 (t_srv.py): --scp-file must not stop the org being read, else an identity Deny
    conditioned on aws:PrincipalOrgID silently stops applying."""
    org = client(moto_url, "organizations")
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    member = org.create_account(AccountName="app", Email="app@example.com")[
        "CreateAccountStatus"]["AccountId"]
    iam = client(moto_url, "iam")
    iam.meta.events.register("before-sign.*.*", _member_header(member))
    iam.create_user(UserName="bob")
    iam.put_user_policy(UserName="bob", PolicyName="all", PolicyDocument=policy("*"))
    iam.put_user_policy(UserName="bob", PolicyName="org-deny", PolicyDocument=_deny_doc(
        StringLike={"aws:PrincipalOrgID": "o-*"}))
    full = tmp_path / "full.json"
    full.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    code, out = run_cli(capsys, "--endpoint-url", moto_url, "--principal",
                        f"arn:aws:iam::{member}:user/bob", "--db-user", "app", "--resource-id",
                        "db-X", "--region", REGION, "--scp-file", str(full), "--json")
    data = json.loads(out)
    assert code == 1 and data["outcome"] == "explicit_deny", out
    assert data["organization"]["id"] == org_id


def test_cli_offline_org_keys_are_reported_unknown_or_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Trial #18 (repro_scpfile_drops_org.sh): offline, the org keys are unknown → skipped, not a
    silent allow; --org-path supplies them."""
    ident = tmp_path / "ident.json"
    ident.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"},
        {"Effect": "Deny", "Action": "rds-db:connect", "Resource": "*",
         "Condition": {"StringLike": {"aws:PrincipalOrgID": "o-*"}}}]}))
    full = tmp_path / "full.json"
    full.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    base = ["--principal", f"arn:aws:iam::{ACCT}:user/alice", "--db-user", "app",
            "--resource-id", "db-ABC", "--policy-file", str(ident), "--json"]
    for extra in (["--scp-file", str(full)], []):
        code, out = run_cli(capsys, *base, *extra)
        data = json.loads(out)
        assert code == 0 and data["organization"] is None, out
        assert any(s.startswith("organization membership (aws:PrincipalOrgID")
                   for s in data["skipped"]), out
    code, out = run_cli(capsys, *base, "--scp-file", str(full), "--org-path",
                        "o-abcdefghij/r-ab12/ou-ab12-cdefgh12/")
    data = json.loads(out)
    assert code == 1 and data["outcome"] == "explicit_deny", out
    assert data["organization"]["id"] == "o-abcdefghij"
    assert not any(s.startswith("organization membership") for s in data["skipped"]), out
    code, err = run_err(capsys, *base, "--org-path", "bogus")
    assert code == 2 and "--org-path expects" in err


@pytest.fixture
def unpatched_moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server in its own process, without rdsiam-emulator's patches (trial #18, t_srv2)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/moto-api/", timeout=2).close()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_server_without_patches_reports_user_boundary_unknown(
    unpatched_moto_url: str, moto_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """A moto server without our patches dropped CreateUser(PermissionsBoundary=…): the boundary
    is reported not evaluated; a patched server (moto_url) is not flagged."""
    for url, flagged in ((unpatched_moto_url, True), (moto_url, False)):
        iam = client(url, "iam")
        fence = iam.create_policy(PolicyName="s3only", PolicyDocument=policy("*").replace(
            "rds-db:connect", "s3:*"))["Policy"]["Arn"]
        iam.create_user(UserName="bob", PermissionsBoundary=fence)
        iam.put_user_policy(UserName="bob", PolicyName="p", PolicyDocument=policy("*"))
        code, out = run_cli(capsys, "--endpoint-url", url, "--principal",
                            f"arn:aws:iam::{ACCT}:user/bob", "--db-user", "app",
                            "--resource-id", "db-X", "--region", REGION, "--json")
        data = json.loads(out)
        unknown = [s for s in data["skipped"] if s.startswith("user permissions boundary")]
        assert bool(unknown) is flagged, (url, out)
        assert code == (0 if flagged else 1), out
    # a patched server answers the probe with InvalidParameterValue: a user without a boundary
    # is not flagged, and the probe wrote nothing
    iam = client(moto_url, "iam")
    iam.create_user(UserName="carol")
    iam.put_user_policy(UserName="carol", PolicyName="p", PolicyDocument=policy("*"))
    code, out = run_cli(capsys, "--endpoint-url", moto_url, "--principal",
                        f"arn:aws:iam::{ACCT}:user/carol", "--db-user", "app",
                        "--resource-id", "db-X", "--region", REGION, "--json")
    assert code == 0 and not any(s.startswith("user permissions boundary")
                                 for s in json.loads(out)["skipped"]), out
    assert "PermissionsBoundary" not in iam.get_user(UserName="carol")["User"]


def test_cli_assumed_role_session_policies_are_not_evaluated(
    moto_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """Trial #18: an existing session's policies are not visible through the IAM API, so an
    assumed-role ARN reports them as not evaluated; a role ARN (a session without any) does not."""
    iam = client(moto_url, "iam")
    iam.create_role(RoleName="app", AssumeRolePolicyDocument="{}")
    iam.put_role_policy(RoleName="app", PolicyName="db", PolicyDocument=policy("*"))
    for arn, flagged in ((f"arn:aws:sts::{ACCT}:assumed-role/app/s1", True),
                         (f"arn:aws:iam::{ACCT}:role/app", False)):
        code, out = run_cli(capsys, "--endpoint-url", moto_url, "--principal", arn,
                            "--db-user", "app", "--resource-id", "db-X", "--region", REGION,
                            "--json")
        data = json.loads(out)
        assert code == 0, out
        assert any(s.startswith("session policies of") for s in data["skipped"]) is flagged, out


def test_cli_refuses_context_it_would_drop_and_a_second_boundary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """--context with a key a login's context cannot have (the six RDS does not supply; any aws:
    key under --global-keys none) is refused, not silently dropped; a principal has at most one
    permissions boundary, so a second --boundary-file is refused (exit 2)."""
    doc = tmp_path / "p.json"
    doc.write_text(policy("*"))
    base = ["--principal", f"arn:aws:iam::{ACCT}:user/alice", "--db-user", "app",
            "--resource-id", "db-X", "--policy-file", str(doc)]
    code, err = run_err(capsys, *base, "--context", "aws:SourceIp=10.0.0.1")
    assert code == 2 and err.startswith("--context aws:SourceIp: RDS does not supply this key")
    code, err = run_err(capsys, *base, "--global-keys", "none", "--context",
                        "aws:PrincipalTag/team=db")
    assert code == 2 and "under --global-keys none the request context has no aws: keys" in err
    code, out = run_cli(capsys, *base, "--global-keys", "none", "--context", "rds-db:x=1")
    assert code == 0, out
    code, out = run_cli(capsys, *base, "--context", "aws:PrincipalTag/team=db")
    assert code == 0, out
    code, err = run_err(capsys, *base, "--boundary-file", str(doc), "--boundary-file", str(doc))
    assert code == 2 and err.startswith("--boundary-file given 2 times: a principal has at most "
                                        "one permissions boundary")


def _org_with_member(url: str) -> tuple[Any, str, str, str]:
    """An organization with SCPs enabled, OU 'Prod' and a member account in it."""
    org = client(url, "organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    org.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    ou = org.create_organizational_unit(ParentId=root, Name="Prod")["OrganizationalUnit"]["Id"]
    member = org.create_account(AccountName="app", Email="app@example.com")[
        "CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=member, SourceParentId=root, DestinationParentId=ou)
    return org, root, ou, member


def test_cli_policy_file_with_server_reads_scps_and_boundary(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """--policy-file replaces only the identity policies: with --endpoint-url the principal's
    SCPs (Organizations API) and its user boundary (IAM) are still read and evaluated, and a
    --boundary-file replaces the server's boundary (newcomer trial, issue #18)."""
    org, _root, ou, member = _org_with_member(moto_url)
    iam = client(moto_url, "iam")
    iam.meta.events.register("before-sign.*.*", _member_header(member))
    fence = iam.create_policy(PolicyName="fence", PolicyDocument=policy(
        "arn:aws:s3:::nothing"))["Policy"]["Arn"]
    iam.create_user(UserName="bob", PermissionsBoundary=fence)
    allow_all = tmp_path / "all.json"
    allow_all.write_text(policy("*"))
    base = ["--endpoint-url", moto_url, "--principal", f"arn:aws:iam::{member}:user/bob",
            "--db-user", "app", "--resource-id", "db-X", "--region", REGION,
            "--policy-file", str(allow_all), "--json"]
    code, out = run_cli(capsys, *base)
    data = json.loads(out)
    assert code == 1 and data["outcome"] == "not_authorized", out
    assert "permissions boundary does not" in data["detail"]
    assert data["policies"]["boundary"] == [f"managed policy 'fence' ({fence})"]
    assert data["skipped"] == [] and len(data["policies"]["scp"]) == 3
    assert data["parts"]["scp"] == {"state": "evaluated", "why": None}
    code, out = run_cli(capsys, *base, "--boundary-file", str(allow_all))
    assert code == 0 and json.loads(out)["policies"]["boundary"] == [f"file {allow_all}"], out
    deny = org.create_policy(Name="no-db", Description="x", Type="SERVICE_CONTROL_POLICY",
                             Content=_deny_doc())["Policy"]["PolicySummary"]["Id"]
    org.attach_policy(PolicyId=deny, TargetId=ou)
    code, out = run_cli(capsys, *base, "--boundary-file", str(allow_all))
    data = json.loads(out)
    assert code == 1 and data["outcome"] == "explicit_deny"
    assert f"SCP 'no-db' ({deny}) attached to OU 'Prod' ({ou})" in data["detail"]


def test_cli_parts_have_one_state_in_text_and_json(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Each part (session, boundary, scp, organization) has one state — evaluated, none,
    not governed or not evaluated with why — and the text line and JSON agree with skipped."""
    allow_all = tmp_path / "all.json"
    allow_all.write_text(policy("*"))
    offline = ["--principal", f"arn:aws:iam::{ACCT}:user/alice", "--db-user", "app",
               "--resource-id", "db-X", "--policy-file", str(allow_all)]
    code, out = run_cli(capsys, *offline)
    assert code == 0
    lines = out.splitlines()
    assert "decision:   ALLOW (not everything was evaluated: see skipped)" in lines
    assert ("  scp:      (not evaluated: service control policies: none given (--scp-file); an "
            "SCP may still deny on AWS)") in lines
    assert any(line.startswith("context:    global keys 'documented'; organization (not "
                               "evaluated: organization membership") for line in lines), out
    assert "(none: the account is not governed by SCPs)" not in out
    data = json.loads(run_cli(capsys, *offline, "--json")[1])
    assert data["parts"]["scp"]["state"] == "not_evaluated"
    assert data["parts"]["scp"]["why"] == data["skipped"][0]
    assert data["parts"]["organization"]["state"] == "not_evaluated"
    assert data["parts"]["boundary"] == {"state": "none", "why": None}
    assert data["parts"]["session"] == {"state": "none", "why": None}
    # a server whose account is in no organization: SCPs are known not to govern it
    rid, _ = setup_state(moto_url)
    code, out = run_cli(capsys, "--endpoint-url", moto_url, "--principal",
                        f"arn:aws:iam::{ACCT}:user/alice", "--db-user", "app", "--resource-id",
                        rid, "--region", REGION, "--policy-file", str(allow_all))
    assert code == 0 and "skipped:" not in out and "not everything" not in out, out
    assert "  scp:      (not governed: the account is in no organization)" in out.splitlines()


def test_token_explain_pass_says_what_was_not_evaluated(moto_url: str) -> None:
    """A PASS whose IAM decision skipped a part says so in the result (text) and in JSON
    ``not_evaluated``, per check and overall; the verdict and exit status stay PASS/0."""
    from rdsiam_emulator.auth.explain import PASS, explain_token, render_text
    from rdsiam_emulator.commands.explain_hook import ApiKeyLookup

    rid, key = setup_state(moto_url)
    iam = client(moto_url, "iam")
    iam.put_user_policy(UserName="alice", PolicyName="all", PolicyDocument=policy("*"))
    db = client(moto_url, "rds").describe_db_instances()["DBInstances"][0]
    host, port = db["Endpoint"]["Address"], db["Endpoint"]["Port"]
    token = client(moto_url, "rds", key).generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername="app")
    explanation = explain_token(
        token, now=SystemClock().now(), db_user="app",
        endpoint=Endpoint(host, port, REGION, account_id=ACCT, resource_id=rid),
        credentials=ApiKeyLookup(iam, client(moto_url, "sts"), key["SecretAccessKey"], None),
        authorizer=IamAuthorizer(IamApiPolicySource(iam)),
    )
    assert explanation.verdict == PASS
    assert explanation.not_evaluated == [IamApiPolicySource.SCP_SKIPPED]
    data = explanation.to_dict()
    assert data["not_evaluated"] == [IamApiPolicySource.SCP_SKIPPED]
    assert _authorization(data)["not_evaluated"] == [IamApiPolicySource.SCP_SKIPPED]
    text = render_text(explanation).splitlines()
    assert any(line.startswith("result: PASS (") and line.endswith(
        "; parts of the IAM decision not evaluated)") for line in text), text
    assert (f"  skipped: {IamApiPolicySource.SCP_SKIPPED} (not evaluated: AWS may decide "
            "otherwise)") in text


def test_token_explain_takes_global_keys_and_scp_files(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """token explain evaluates policies, so it has policy check's --global-keys and --scp-file:
    a date-window Allow fails under 'none'; an SCP file's Deny wins; an unreadable file is a
    usage error (exit 2)."""
    _rid, key = setup_state(moto_url)
    client(moto_url, "iam").put_user_policy(
        UserName="alice", PolicyName="window", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "rds-db:connect", "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2001-01-01T00:00:00Z"}}}]}))
    db = client(moto_url, "rds").describe_db_instances()["DBInstances"][0]
    host, port = db["Endpoint"]["Address"], db["Endpoint"]["Port"]
    token = client(moto_url, "rds", key).generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername="app")
    args = [token, "--endpoint", f"{host}:{port}", "--region", REGION, "--db-user", "app",
            "--secret-access-key", key["SecretAccessKey"], "--iam-endpoint-url", moto_url]
    code, data = _explain(capsys, *args)
    assert code == 0 and _authorization(data)["status"] == "pass", data
    code, data = _explain(capsys, *args, "--global-keys", "none")
    line = _authorization(data)
    assert code == 1 and line["reason"] == "not_authorized"
    assert "aws:CurrentTime is absent" in line["hint"]
    deny = tmp_path / "deny.json"
    deny.write_text(_deny_doc())
    code, data = _explain(capsys, *args, "--scp-file", str(deny))
    line = _authorization(data)
    assert code == 1 and line["reason"] == "explicit_deny"
    assert f"SCP '{deny}' (file) attached to level 1 of 1" in line["detail"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["token", "explain", *args, "--scp-file", str(tmp_path / "missing.json")])
    assert exit_info.value.code == 2 and "missing.json" in capsys.readouterr().err
