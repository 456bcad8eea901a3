"""No secret, password or whole token in any output (docs/security.md).

Each test runs a suite-style session with secrets it knows (secret access keys, session tokens,
whole IAM tokens and their signatures, derived backend passwords, master passwords), captures every
channel it can reach (stdout/stderr, logging at DEBUG, auth events and their JSON lines, HTTP
bodies, the status page, exception texts, pytest's report sections) and greps for them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pymysql
import pytest
import requests
from leaks import find_leaks, token_secrets

from rdsiam_emulator import resolver

SERVER_TESTS = Path(__file__).resolve().parents[1] / "rdsiam_emulator" / "server"
sys.path.insert(0, str(SERVER_TESTS))
from serve_proc import free_loopback, free_port  # noqa: E402

# ---------------------------------------------------------------------------- the pytest plugin

PLUGIN_SESSION = r'''
import json
import logging
import os

import boto3
import psycopg
import pytest

from rdsiam_emulator.secrets import derived_password

PLANTED = {}


def _save():
    with open(os.environ["PLANTED_FILE"], "w") as fh:
        json.dump(PLANTED, fh)


def test_logins(rds_iam_db):
    logging.getLogger("rdsiam_emulator").debug("debug logging reaches this run")
    rds_iam_db.create_iam_db_user("app_user")
    session = rds_iam_db.iam_session("app_user")
    creds = session.get_credentials().get_frozen_credentials()
    token = rds_iam_db.generate_token("app_user", session)
    PLANTED.update({
        "secret access key": creds.secret_key,
        "whole token": token,
        "token signature": token.rsplit("X-Amz-Signature=", 1)[1],
        "master password": rds_iam_db.master_password,
        "derived password": derived_password(rds_iam_db.instance.server._secret, "app_user"),
    })
    _save()
    psycopg.connect(**rds_iam_db.connect_kwargs("app_user", token)).close()


def test_refused_login_fills_the_report_section(rds_iam_db):
    rds_iam_db.create_iam_db_user("app_user")
    session = rds_iam_db.iam_session("app_user")
    token = rds_iam_db.generate_token("app_user", session)
    PLANTED.update({"refused token": token,
                    "refused signature": token.rsplit("X-Amz-Signature=", 1)[1],
                    "refused key's secret": session.get_credentials().secret_key})
    _save()
    rds_iam_db.clock.advance(minutes=16)
    try:
        psycopg.connect(**rds_iam_db.connect_kwargs("app_user", token))
    except psycopg.OperationalError as exc:
        print("client error:", exc)
        logging.getLogger("app").error("login failed: %s", exc)
        raise  # the failure report shows the exception and the plugin's section
'''


def test_plugin_session_writes_no_secret_anywhere(pytester: pytest.Pytester,
                                                  tmp_path: Path) -> None:
    planted_file = tmp_path / "planted.json"
    events_file = tmp_path / "events.jsonl"
    pytester.makepyfile(test_session=PLUGIN_SESSION)
    # botocore's DEBUG records print what it signs (canonical request, signature): the client
    # library's output, which the app turns on or not; everything else stays at DEBUG
    pytester.makeconftest("import logging\n\nfor name in ('botocore', 'boto3', 'urllib3'):\n"
                          "    logging.getLogger(name).setLevel(logging.INFO)\n")
    os.environ["PLANTED_FILE"] = str(planted_file)
    try:
        result = pytester.runpytest_subprocess(
            "--rdsiam-emulator", "--rdsiam-backend", "local", "-p", "no:xdist",
            "-p", "no:cacheprovider", f"--rdsiam-events-file={events_file}", "-rA", "-vv",
            "--log-level=DEBUG", "-o", "log_cli=true", "--log-cli-level=DEBUG")
    finally:
        del os.environ["PLANTED_FILE"]
    out, err = "\n".join(result.outlines), "\n".join(result.errlines)
    result.assert_outcomes(passed=1, failed=1)
    assert "debug logging reaches this run" in out  # DEBUG records are captured
    assert "expired" in out  # the report section of the refused login is in the output
    planted = json.loads(planted_file.read_text())
    assert len(planted) == 8
    events = events_file.read_text()
    assert '"outcome": "deny"' in events or '"outcome":"deny"' in events
    assert find_leaks(planted, {"stdout": out, "stderr": err, "events file": events}) == []


# ---------------------------------------------------------------------------------- the CLI


def test_cli_token_explain_and_policy_check_write_no_secret(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    from rdsiam_emulator.cli import main
    from tokenkit import AT, TEMP, build_token

    caplog.set_level(logging.DEBUG)
    good = build_token(principal=TEMP)
    forged = build_token(principal=TEMP, secret="some-other-secret-0123456789")
    planted = {"secret access key": TEMP.secret, **token_secrets(good),
               **{f"forged {k}": v for k, v in token_secrets(forged).items()}}
    channels: dict[str, str] = {}
    common = ["--at", AT.isoformat(), "--access-key-id", TEMP.access_key_id,
              "--secret-access-key", TEMP.secret, "--session-token", str(TEMP.session_token)]
    for name, argv in {
        "explain pass": ["token", "explain", good, *common],
        "explain fail": ["token", "explain", forged, *common],
        "explain json": ["token", "explain", forged, *common, "--json"],
        "explain wrong user": ["token", "explain", good, *common, "--db-user", "someone"],
    }.items():
        code = main(argv)
        captured = capsys.readouterr()
        channels[f"{name} stdout"], channels[f"{name} stderr"] = captured.out, captured.err
        assert code in (0, 1), (name, captured)
    assert "signature_mismatch" in channels["explain fail stdout"]
    channels["logging"] = caplog.text
    assert find_leaks(planted, channels) == []


# ------------------------------------------------------------------------------------ serve

ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"}]})
SERVE_WRAPPER = (  # `serve` with the root logger at DEBUG on stderr
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
    "from rdsiam_emulator.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n")
KEY, SECRET = "AKIALEAKCHECK0000001", "planted-secret-access-key-0001"
MASTER_PASSWORD = "planted-master-password-0001"


def _wait_health(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited"
        try:
            if requests.get(f"{url}/_rdsiam/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not become healthy")


def test_serve_writes_no_secret_anywhere(tmp_path: Path) -> None:
    port = free_port()
    pg_addr, my_addr = free_loopback(5432), free_loopback(3306)
    config = tmp_path / "rdsiam.toml"
    config.write_text(f"""
[server]
port = {port}
region = "eu-west-1"

[[instances]]
identifier = "orders"
engine = "postgres"
listen = "{pg_addr}:5432"
iam_db_users = ["app_user"]
master_password = "{MASTER_PASSWORD}"

[[instances]]
identifier = "shop"
engine = "mysql"
listen = "{my_addr}:3306"
iam_db_users = ["app_user"]
master_password = "{MASTER_PASSWORD}"

[[iam.roles]]
name = "app"
inline_policies = {{ connect = '{ROLE_POLICY}' }}

[[iam.users]]
name = "deployer"
inline_policies = {{ connect = '{ROLE_POLICY}' }}
access_keys = [{{ access_key_id = "{KEY}", secret_access_key = "{SECRET}" }}]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RDSIAM_", "MOTO_"))}
    stdout_path, stderr_path = tmp_path / "stdout", tmp_path / "stderr"
    url = f"http://127.0.0.1:{port}"
    planted: dict[str, str] = {"secret access key": SECRET, "master password": MASTER_PASSWORD}
    bodies: dict[str, str] = {}
    errors: list[str] = []
    with stdout_path.open("w") as out, stderr_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", SERVE_WRAPPER, "serve", "--config",
                                 str(config)], stdout=out, stderr=err, env=env, text=True)
        try:
            _wait_health(url, proc)
            ca = tmp_path / "ca.pem"
            ca.write_bytes(requests.get(f"{url}/_rdsiam/ca.pem", timeout=10).content)
            sts = boto3.client("sts", region_name="eu-west-1", endpoint_url=url,
                               aws_access_key_id=KEY, aws_secret_access_key=SECRET)
            creds = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/app",
                                    RoleSessionName="leak-check")["Credentials"]
            planted["session secret"] = creds["SecretAccessKey"]
            planted["session token"] = creds["SessionToken"]
            rds = boto3.client("rds", region_name="eu-west-1", endpoint_url=url,
                               aws_access_key_id=creds["AccessKeyId"],
                               aws_secret_access_key=creds["SecretAccessKey"],
                               aws_session_token=creds["SessionToken"])
            instances = {i["id"]: i for i in
                         requests.get(f"{url}/_rdsiam/instances", timeout=10).json()["instances"]}
            for ident, engine_port in (("orders", 5432), ("shop", 3306)):
                inst = instances[ident]
                good = rds.generate_db_auth_token(DBHostname=inst["host"], Port=engine_port,
                                                  DBUsername="app_user")
                bad = good.replace("X-Amz-Signature=", "X-Amz-Signature=0")[:-1]
                planted.update({f"{ident} {k}": v for k, v in token_secrets(good).items()})
                planted.update({f"{ident} bad {k}": v for k, v in token_secrets(bad).items()})
                for password in (good, bad, MASTER_PASSWORD + "x"):
                    user = "app_user" if password != MASTER_PASSWORD + "x" else "master"
                    try:
                        _login(ident, inst, ca, user, password)
                    except (psycopg.Error, pymysql.MySQLError) as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
            assert len(errors) == 4, errors  # the altered tokens and wrong master passwords
            for path in ("/_rdsiam/events", "/_rdsiam/instances", "/_rdsiam/",
                         "/_rdsiam/status.json", "/_rdsiam/health"):
                response = requests.get(f"{url}{path}", timeout=10)
                assert response.status_code == 200, path
                bodies[f"GET {path}"] = response.text
            assert '"deny"' in bodies["GET /_rdsiam/events"]
        finally:
            proc.terminate()
            code = proc.wait(timeout=60)
    assert code == 0
    channels = {"serve stdout": stdout_path.read_text(), "serve stderr": stderr_path.read_text(),
                "client errors": "\n".join(errors), **bodies}
    assert "DEBUG:" in channels["serve stderr"]  # debug logging was on
    assert find_leaks(planted, channels) == []


def _login(ident: str, inst: dict[str, Any], ca: Path, user: str, password: str) -> None:
    if ident == "orders":
        psycopg.connect(host=inst["host"], hostaddr=inst["address"], port=inst["port"],
                        user=user, password=password, dbname="postgres", sslmode="verify-full",
                        sslrootcert=str(ca), connect_timeout=20).close()
        return
    resolver.register(inst["host"], inst["address"])
    try:
        pymysql.connect(host=inst["host"], port=inst["port"], user=user, password=password,
                        ssl={"ca": str(ca)}, connect_timeout=20).close()
    finally:
        resolver.unregister(inst["host"])
