"""`policy check` as a newcomer met it (#11): the help, the session-file rule, near-miss hints with
--resource-id. Files only: no server, no network."""

import json
from pathlib import Path

import pytest

from rdsiam_emulator import cli

ACCT = "123456789012"
RID = "db-ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _policy(tmp_path: Path, resource: str) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource}]}))
    return path


def test_help_says_policy_file_is_repeatable_and_what_instance_does(capsys):
    with pytest.raises(SystemExit):
        cli.main(["policy", "check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "reading IAM; repeatable: every file is one attached policy" in text
    assert "with --resource-id, no lookup" in text


@pytest.mark.parametrize(("flags", "named"), [
    (["--session-policy-file"], "--session-policy-file"),
    (["--boundary-file"], "--boundary-file"),
    (["--session-policy-file", "--boundary-file"], "--session-policy-file and --boundary-file"),
])
def test_session_or_boundary_file_without_policy_file_names_the_rule(tmp_path, capsys, flags,
                                                                      named):
    doc = _policy(tmp_path, "*")
    args = [arg for flag in flags for arg in (flag, str(doc))]
    code = cli.main(["policy", "check", "--principal", f"arn:aws:iam::{ACCT}:role/app",
                     "--db-user", "app", "--resource-id", RID, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"policy check: {named} needs --policy-file: session policies and "
                          "boundaries only narrow what identity policies allow")


def test_policy_naming_the_instance_identifier_gets_the_near_miss_with_resource_id(tmp_path,
                                                                                   capsys):
    doc = _policy(tmp_path, f"arn:aws:rds-db:us-east-1:{ACCT}:dbuser:mydb/app")
    base = ["policy", "check", "--principal", f"arn:aws:iam::{ACCT}:user/alice", "--db-user", "app",
            "--resource-id", RID, "--policy-file", str(doc), "--json"]
    assert cli.main([*base, "--instance", "mydb"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [m["kind"] for m in data["near_misses"]] == ["instance_identifier"]
    assert cli.main(base) == 1  # the identifier unknown: nothing to compare the policy with
    assert json.loads(capsys.readouterr().out)["near_misses"] == []
