"""Bad configs: exit 2, one line on stderr naming the key (or variable) and what is wrong, and
nothing started. Checked in-process through the CLI for the table (the checks run before anything
starts), and as real subprocesses where a port is taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from serve_proc import free_loopback, free_port

from rdsiam_emulator import cli
from rdsiam_emulator.server.config import DEFAULT_PORT, ConfigError, load

GOOD_INSTANCE = '[[instances]]\nidentifier = "orders"\nengine = "postgres"\n'
POLICY = '{"Version": "2012-10-17", "Statement": []}'

CASES = [
    ("[serverr]\nport = 1\n", "serverr: unknown key"),
    ('[server]\nport = "4566"\n', "server.port: must be an integer, got str"),
    ("[server]\nport = 70000\n", "server.port: must be between 1 and 65535, got 70000"),
    ('[server]\nregion = "mars-1"\n', "server.region: "),
    ('[server]\naccount_id = "12"\n', "server.account_id: must be 12 digits"),
    ('[[instances]]\nidentifier = "a"\nengine = "oracle"\n', "instances[0].engine: must be "),
    ('[[instances]]\nengine = "postgres"\n', "instances[0].identifier: is required"),
    ('[[instances]]\nidentifier = "9lives"\n', "instances[0].identifier: '9lives' is not an RDS"),
    (GOOD_INSTANCE * 2, "instances[1].identifier: 'orders' is already used by instances[0]"),
    (GOOD_INSTANCE + 'listen = "localhost:5432"\n',
     "instances[0].listen: 'localhost' is not an IP address"),
    (GOOD_INSTANCE + 'listen = "127.0.0.2"\n', "instances[0].listen: must be \"address:port\""),
    (GOOD_INSTANCE + 'backend = "external"\n', "instances[0].url: is required with backend"),
    (GOOD_INSTANCE + 'backend = "external"\nurl = "mysql://root@db:3306/"\n',
     "instances[0].url: admin URL scheme 'mysql' does not match engine 'postgres'"),
    (GOOD_INSTANCE + 'iam_db_users = ["app user"]\n',
     "instances[0].iam_db_users[0]: 'app user' is not a plain database user name"),
    (GOOD_INSTANCE + "iam_enabled = 1\n", "instances[0].iam_enabled: must be true or false"),
    (GOOD_INSTANCE + "colour = 1\n", "instances[0].colour: unknown key"),
    ('[[iam.users]]\nname = "app"\npolicies = ["nope"]\n',
     "iam.users[0].policies[0]: 'nope' is neither a policy in [[iam.policies]] nor an ARN"),
    ('[[iam.users]]\nname = "app"\ngroups = ["devs"]\n',
     "iam.users[0].groups[0]: 'devs' is not a group in [[iam.groups]]"),
    ("[[iam.policies]]\nname = \"p\"\ndocument = '{not json'\n",
     "iam.policies[0].document: is not valid JSON"),
    (f"[[iam.roles]]\nname = \"r\"\ninline_policies = {{ p = '{POLICY}' }}\n"
     "trust_policy = '[]'\n", "iam.roles[0].trust_policy: must be a policy document"),
    ('[[iam.users]]\nname = "app"\naccess_keys = [{ access_key_id = "short", '
     'secret_access_key = "long-enough" }]\n',
     "iam.users[0].access_keys[0].access_key_id: must be 16-128 upper-case"),
    ("[server\nport = 1\n", "--config: "),
    ('[server]\nstate_dir = "/etc/passwd"\n',
     "server.state_dir: /etc/passwd exists and is not a directory"),
    ('[server]\nstate_dir = "/proc/nope"\n', "server.state_dir: cannot create /proc/nope: "),
    # an existing directory it may not write (PermissionError when the CA is written)
    ('[server]\nstate_dir = "/proc/1"\n', "server.state_dir: /proc/1 is not writable"),
    ('[server]\ncreate_listen_host = "foo"\n',
     'server.create_listen_host: must be an IP address or "loopback", got \'foo\''),
    # engine = "mysql" runs the installed server (MariaDB here): a version it is not is an error
    ('[[instances]]\nidentifier = "shop"\nengine = "mysql"\nversion = "5.1"\n',
     "instances[0].version: '5.1' is not what runs: this machine's mysql server is "),
    # break-it #14: RDS stores identifiers in lower case, so ORDERS and orders are one instance
    ('[[instances]]\nidentifier = "ORDERS"\n',
     "instances[0].identifier: 'ORDERS': RDS stores DB instance identifiers in lower case"),
    # break-it #14: deep nesting is one message, not a RecursionError traceback
    ("x = " + "[" * 5000 + "]" * 5000 + "\n", "--config: "),
    # break-it #14: a config file is bounded (/dev/zero would be read forever)
    ("# " + "x" * (1024 * 1024) + "\n", "--config: "),
]


@pytest.mark.parametrize(("toml", "message"), CASES, ids=[m.split(":")[0] for _, m in CASES])
def test_bad_config_exits_2_naming_the_key(toml: str, message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert cli.main(["serve", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"rdsiam-emulator serve: bad config: {message}"), err


def test_full_width_digits_in_an_override_are_refused(tmp_path: Path) -> None:
    """Break-it #14: ``int("１４５６６")`` is 14566; an environment override takes ASCII only."""
    with pytest.raises(ConfigError, match="RDSIAM_PORT: must be an integer"):
        load(None, {"RDSIAM_PORT": "\uff11\uff14\uff15\uff16\uff16"})


def test_environment_overrides_and_their_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[server]\nport = 5000\nregion = "eu-west-1"\n')
    config = load(path, {"RDSIAM_PORT": "6000", "RDSIAM_REGION": "ap-south-1",
                         "RDSIAM_HOST": "0.0.0.0", "RDSIAM_DNS_LABEL": "c0fixed0abcd",
                         "RDSIAM_ACCOUNT_ID": "111122223333", "RDSIAM_STATE_DIR": "/var/x",
                         "RDSIAM_CREATE_LISTEN_HOST": "0.0.0.0"})
    server = config.server
    assert (server.port, server.region, server.host, server.dns_label, server.account_id,
            str(server.state_dir), server.create_listen_host) == (
        6000, "ap-south-1", "0.0.0.0", "c0fixed0abcd", "111122223333", "/var/x", "0.0.0.0")
    assert load(None, {}).server.port == DEFAULT_PORT == 4566
    monkeypatch.setenv("RDSIAM_CONFIG", str(path))
    monkeypatch.setenv("RDSIAM_PORT", "45x")
    assert cli.main(["serve"]) == 2
    assert capsys.readouterr().err == (
        "rdsiam-emulator serve: bad config: RDSIAM_PORT: must be an integer, got '45x'\n")
    # every error of a value that came from a variable names the variable, not the file key
    for var, value, problem in (
            ("RDSIAM_PORT", "0", "must be between 1 and 65535, got 0"),
            ("RDSIAM_PORT", "-5", "must be between 1 and 65535, got -5"),
            ("RDSIAM_REGION", "xx-1", ""),
            ("RDSIAM_ACCOUNT_ID", "12", "must be 12 digits"),
            ("RDSIAM_HOST", "localhost", "'localhost' is not an IP address"),
            ("RDSIAM_DNS_LABEL", "Upper", "must be lower-case letters and digits"),
            ("RDSIAM_CREATE_LISTEN_HOST", "foo",
             'must be an IP address or "loopback", got \'foo\''),
            ("RDSIAM_STATE_DIR", "/proc/nope", "cannot create /proc/nope: ")):
        monkeypatch.setenv("RDSIAM_PORT", "6000")
        monkeypatch.setenv(var, value)
        assert cli.main(["serve"]) == 2, var
        err = capsys.readouterr().err
        assert err.startswith(f"rdsiam-emulator serve: bad config: {var}: {problem}"), err
        assert err.count("\n") == 1 and "server." not in err, err
        monkeypatch.delenv(var)


def test_help_needs_no_docs_folder(capsys: pytest.CaptureFixture[str]) -> None:
    """A pip-installed user has no docs/ folder: the help itself lists the variables."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "See docs/server.md." not in out
    for var in ("RDSIAM_CONFIG", "RDSIAM_PORT", "RDSIAM_STATE_DIR", "RDSIAM_CREATE_LISTEN_HOST"):
        assert var in out
    assert "/_rdsiam/health" in out and "docs/server.md of the rdsiam-emulator source" in out


def _serve(config: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    path = tmp / "c.toml"
    path.write_text(config)
    return subprocess.run([sys.executable, "-m", "rdsiam_emulator.cli", "serve", "--config",
                           str(path)], capture_output=True, text=True, timeout=120)


def test_taken_ports_exit_2_before_anything_starts(tmp_path: Path) -> None:
    address = free_loopback(5432)
    with socket.socket() as holder:
        holder.bind((address, 5432))
        holder.listen()
        done = _serve(f"[server]\nport = {free_port()}\n{GOOD_INSTANCE}"
                      f'listen = "{address}:5432"\n', tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"rdsiam-emulator serve: bad config: instances[0].listen: "
                                  f"cannot listen on {address}:5432: "), done.stderr
    assert done.stdout == ""  # not even the HTTP port was opened
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _serve(f"[server]\nport = {port}\n{GOOD_INSTANCE}", tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"rdsiam-emulator serve: bad config: server.port: cannot "
                                  f"listen on 127.0.0.1:{port}: "), done.stderr
    assert "ready in" not in done.stdout and "orders" not in done.stdout


def test_seed_refused_by_iam_exits_2_naming_the_entry(tmp_path: Path) -> None:
    # valid for the config checks; IAM itself refuses the second user of the same name
    done = _serve(f"[server]\nport = {free_port()}\n\n[[iam.users]]\nname = \"ok\"\n\n"
                  "[[iam.users]]\nname = \"ok\"\n", tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("rdsiam-emulator serve: bad config: iam.users[1]: "), done.stderr
    assert "EntityAlreadyExists" in done.stderr and done.stderr.count("\n") == 1


def test_backend_that_cannot_start_exits_4_with_one_message(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    done = _serve(f"[server]\nport = {free_port()}\n\n{GOOD_INSTANCE}backend = \"external\"\n"
                  f'url = "postgresql://postgres:pw@127.0.0.1:{closed}/postgres"\n', tmp_path)
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("rdsiam-emulator serve: could not start: instance 'orders': "
                                  "BackendError: "), done.stderr
    assert "Connection refused" in done.stderr and "Traceback" not in done.stderr
    assert "ready in" not in done.stdout
    # one line: libpq's multi-line message collapsed, no internal object repr
    assert done.stderr.count("\n") == 1 and "Handle" not in done.stderr, done.stderr
    assert f"127.0.0.1:{closed}" in done.stderr
