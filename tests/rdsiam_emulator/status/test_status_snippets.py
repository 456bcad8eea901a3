"""Connection snippets (rdsiam_emulator.snippets): each is run as written against a real emulated
instance - psql and mysql CLIs, Python (boto3 + psycopg / PyMySQL) and Node (rds-signer + pg /
mysql2) as subprocesses with real IAM tokens over verified TLS - and quoting is checked with each
language's own parser. Go/Java snippets: see test_status_snippets_go.py."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rdsiam_emulator.aws import patches as moto_patches
from rdsiam_emulator.backends import BackendSpec, start_local
from rdsiam_emulator.instances import EmulatedInstance, Emulator, InstanceConfig
from rdsiam_emulator.snippets import (
    Snippet,
    SnippetTarget,
    hosts_line,
    snippets_for,
    target_for,
)

TESTS = Path(__file__).resolve().parents[2]
NODE_MODULES = TESTS / "node" / "node_modules"
VENV_BIN = Path(sys.executable).parent
TIMEOUT = 60


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    moto_patches.install()
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, aws: None) -> Iterator[Emulator]:
    emu = Emulator(tmp_path_factory.mktemp("emulator"))
    yield emu
    emu.close()


@pytest.fixture(scope="module")
def pg_instance(emulator: Emulator) -> Iterator[EmulatedInstance]:
    handle = start_local(BackendSpec(engine="postgres", provider="local", dbname="app"))
    # RDS naming: the name does not resolve outside this process, so the snippets that can
    # connect to an address (libpq hostaddr, node pg servername) must carry it
    instance = emulator.start_instance(InstanceConfig(instance_id="orders"), handle)
    handle.admin_execute("CREATE ROLE app_user LOGIN")
    handle.admin_execute("GRANT rds_iam TO app_user")
    yield instance
    instance.close()
    handle.stop()


@pytest.fixture(scope="module")
def my_instance(emulator: Emulator) -> Iterator[EmulatedInstance]:
    import pymysql

    handle = start_local(BackendSpec(engine="mysql", provider="local", dbname="app"))
    # loopback naming (host "localhost"): resolvable by every client, as after /etc/hosts
    instance = emulator.start_instance(
        InstanceConfig(instance_id="shop", engine="mysql", naming="loopback"), handle)
    master = pymysql.connect(host=instance.host, port=instance.port, user=handle.master_user,
                             password=handle.master_password,
                             ssl={"ca": str(instance.ca_bundle)})
    with master.cursor() as cur:
        cur.execute("CREATE USER 'app_user'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
        cur.execute("GRANT SELECT ON app.* TO 'app_user'@'%'")
    master.close()
    yield instance
    instance.close()
    handle.stop()


def _credentials(instance: EmulatedInstance, db_user: str) -> dict[str, str]:
    iam = boto3.client("iam", region_name=instance.region)
    name = f"snippets-{instance.instance_id}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                       "Resource": instance.db_user_arn(db_user)}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@pytest.fixture(scope="module")
def pg_env(pg_instance: EmulatedInstance,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _env(_credentials(pg_instance, "app_user"), tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def my_env(my_instance: EmulatedInstance,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _env(_credentials(my_instance, "app_user"), tmp_path_factory.mktemp("home"))


def _env(creds: dict[str, str], home: Path) -> dict[str, str]:
    # a clean environment: only what an app on a developer machine would have
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(home),
            "AWS_CONFIG_FILE": str(home / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
            "AWS_EC2_METADATA_DISABLED": "true", "LANG": "C.UTF-8", **creds}


def _snippet(instance: EmulatedInstance, key: str) -> Snippet:
    [found] = [s for s in snippets_for(target_for(instance, "app_user")) if s.key == key]
    return found


def _run(snippet: Snippet, workdir: Path, env: dict[str, str], argv: list[str],
         stdin: str | None = None) -> str:
    path = workdir / snippet.filename
    path.write_text(snippet.code)
    proc = subprocess.run([*argv, str(path)], input=stdin, capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, cwd=workdir, check=False)
    assert proc.returncode == 0, f"{snippet.title} failed:\n{snippet.code}\n{proc.stderr}"
    return proc.stdout


def _login_events(instance: EmulatedInstance, cursor: int) -> list[tuple[str, str, str]]:
    return [(e.outcome, e.method, e.db_user) for e in instance.events_since(cursor)]


@pytest.mark.slow
def test_postgres_snippets_connect_by_rds_name(pg_instance: EmulatedInstance,
                                               pg_env: dict[str, str], tmp_path: Path) -> None:
    target = target_for(pg_instance, "app_user")
    assert target.address == "127.0.0.1" and target.host == pg_instance.host
    assert target.dbname == "app"
    assert hosts_line(target) == f"127.0.0.1 {pg_instance.host}"
    if shutil.which("psql") is None:
        pytest.fail("psql is not installed: run scripts/bootstrap")
    start = pg_instance.events.mark()
    out = _run(_snippet(pg_instance, "psql"), tmp_path, pg_env, ["bash"],
               stdin="select 'who=' || current_user;\n")
    assert "who=app_user" in out
    out = _run(_snippet(pg_instance, "python"), tmp_path, pg_env, [sys.executable])
    assert out.strip() == "app_user"
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)
    out = _run(_snippet(pg_instance, "node"), tmp_path, pg_env, ["node"])
    assert out.strip() == "app_user"
    # three IAM logins, each verified by the emulator
    assert _login_events(pg_instance, start) == [("allow", "iam", "app_user")] * 3


@pytest.mark.slow
def test_mysql_snippets_connect(my_instance: EmulatedInstance, my_env: dict[str, str],
                                tmp_path: Path) -> None:
    target = target_for(my_instance, "app_user")
    assert target.host == "localhost" and target.address is None and hosts_line(target) is None
    if shutil.which("mysql") is None:
        pytest.fail("the mysql client is not installed: run scripts/bootstrap")
    start = my_instance.events.mark()
    out = _run(_snippet(my_instance, "mysql"), tmp_path, my_env, ["bash"],
               stdin="SELECT CONCAT('who=', CURRENT_USER());\n")
    assert "who=app_user@%" in out
    out = _run(_snippet(my_instance, "python"), tmp_path, my_env, [sys.executable])
    assert out.strip() == "app_user@%"
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)
    out = _run(_snippet(my_instance, "node"), tmp_path, my_env, ["node"])
    assert out.strip() == "app_user@%"
    assert _login_events(my_instance, start) == [("allow", "iam", "app_user")] * 3


@pytest.mark.slow
def test_a_snippet_without_permission_is_refused_not_faked(pg_instance: EmulatedInstance,
                                                           tmp_path: Path) -> None:
    # a user with no policy: the same snippet fails, and the emulator says why
    iam = boto3.client("iam", region_name=pg_instance.region)
    iam.create_user(UserName="snippets-denied")
    key = iam.create_access_key(UserName="snippets-denied")["AccessKey"]
    env = _env({"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}, tmp_path)
    start = pg_instance.events.mark()
    snippet = _snippet(pg_instance, "python")
    path = tmp_path / snippet.filename
    path.write_text(snippet.code)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, check=False)
    assert proc.returncode != 0 and 'PAM authentication failed for user "app_user"' in proc.stderr
    [event] = pg_instance.events_since(start)
    assert (event.outcome, str(event.reason)) == ("deny", "not_authorized")


# ------------------------------------------------------------------ quoting, without a database

HOSTILE = "o'b\"r $(touch pwned) `x` \\n\n\tü"


def _hostile(engine: Any, **extra: Any) -> SnippetTarget:
    return SnippetTarget(engine=engine, host="db.example.com", port=5432, region="eu-west-1",
                         db_user=HOSTILE, ca_path="/tmp/ca dir/it's.pem", dbname=HOSTILE,
                         **extra)


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_python_snippets_keep_every_value_a_literal(engine: str) -> None:
    [snippet] = [s for s in snippets_for(_hostile(engine)) if s.key == "python"]
    tree = ast.parse(snippet.code)
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert {HOSTILE, "/tmp/ca dir/it's.pem"} <= constants


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_shell_snippets_pass_values_verbatim(engine: str, tmp_path: Path) -> None:
    """The CLI snippets run with ``aws``, ``psql``, ``mysql`` replaced by scripts that print
    their arguments: every value arrives as one intact argument, nothing is executed."""
    [snippet] = [s for s in snippets_for(_hostile(engine, address="127.0.0.9"))
                 if s.key in ("psql", "mysql")]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("aws", "psql", "mysql"):
        script = bin_dir / tool
        script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                          f"print(json.dumps([{tool!r}, *sys.argv[1:]]))\n")
        script.chmod(0o755)
    proc = subprocess.run(["bash", "-c", snippet.code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=TIMEOUT, check=False,
                          env={"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "pwned").exists()
    [call] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "--username" not in call  # the aws call ran inside $(...), its output is the token
    if engine == "mysql":
        assert f"--user={HOSTILE}" in call and HOSTILE in call
        assert "--ssl-ca=/tmp/ca dir/it's.pem" in call
        assert "--password=" + json.dumps(["aws", "rds", "generate-db-auth-token",
                                           "--hostname", "db.example.com", "--port", "5432",
                                           "--region", "eu-west-1", "--username", HOSTILE]) in call
    else:
        [conninfo] = call[1:]
        parsed = _parse_conninfo(conninfo)
        assert parsed == {"host": "db.example.com", "hostaddr": "127.0.0.9", "port": "5432",
                          "user": HOSTILE, "dbname": HOSTILE, "sslmode": "verify-full",
                          "sslrootcert": "/tmp/ca dir/it's.pem"}


def _parse_conninfo(text: str) -> dict[str, str]:
    """libpq's own parser (psycopg's conninfo_to_dict) reads the keyword/value string."""
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(text).items()}


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_node_snippets_parse(engine: str, tmp_path: Path) -> None:
    [snippet] = [s for s in snippets_for(_hostile(engine)) if s.key == "node"]
    path = tmp_path / snippet.filename
    path.write_text(snippet.code)
    proc = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    # the literals evaluate to the values (JSON string literals are JavaScript string literals)
    assert json.dumps(HOSTILE) in snippet.code


def test_java_literal_has_no_unicode_escapes() -> None:
    from rdsiam_emulator.snippets import _java

    assert _java('a"b\\c\nd') == '"a\\"b\\\\c\\12d"'
    assert "\\u" not in _java(HOSTILE)


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="engine must be"):
        snippets_for(SnippetTarget(engine="oracle",  # type: ignore[arg-type]
                                   host="h", port=1, region="r", db_user="u", ca_path="c"))
    with pytest.raises(ValueError, match="port must be"):
        snippets_for(SnippetTarget(engine="mysql", host="h", port=0, region="r", db_user="u",
                                   ca_path="c"))


def test_ca_url_is_named_when_served() -> None:
    target = SnippetTarget(engine="postgres", host="h.example", port=5432, region="r",
                           db_user="u", ca_path="/ca.pem",
                           ca_url="http://127.0.0.1:4566/_rdsiam/ca.pem")
    for snippet in snippets_for(target):
        assert "http://127.0.0.1:4566/_rdsiam/ca.pem" in snippet.code, snippet.key


# ------------------------------------------------------------------ the status page's document


@pytest.mark.slow
def test_status_document_describes_instances_principals_and_snippets(
        pg_instance: EmulatedInstance, my_instance: EmulatedInstance) -> None:
    from datetime import UTC, datetime

    from rdsiam_emulator.server.status_page import status_document, status_json

    iam = boto3.client("iam", region_name=pg_instance.region)
    shop_any = f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{my_instance.resource_id}/*"
    iam.create_user(UserName="status-reader")
    iam.put_user_policy(UserName="status-reader", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "rds-db:connect", "Resource": shop_any}]}))
    iam.create_user(UserName="status-orders")
    iam.put_user_policy(UserName="status-orders", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "rds-db:connect",
            "Resource": pg_instance.db_user_arn("app_user")}]}))
    iam.create_user(UserName="status-none")
    # an IAM login attempted as "ghost" (refused: no such permission) puts ghost in the list
    pg_instance.backend.admin_execute("CREATE ROLE ghost LOGIN")
    pg_instance.backend.admin_execute("GRANT rds_iam TO ghost")
    key = iam.create_access_key(UserName="status-none")["AccessKey"]
    token = boto3.client("rds", region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"]).generate_db_auth_token(
        DBHostname=pg_instance.host, Port=pg_instance.port, DBUsername="ghost")
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        psycopg.connect(host=pg_instance.host, port=pg_instance.port, user="ghost",
                        password=token, dbname="app", sslmode="verify-full",
                        sslrootcert=str(pg_instance.ca_bundle))
    doc = status_document([pg_instance, my_instance], now=datetime.now(UTC),
                          db_users={"orders": ["reporting"]},
                          ca_url="http://127.0.0.1:4566/_rdsiam/ca.pem")
    orders, shop = doc["instances"]
    assert (orders["id"], orders["engine"], orders["host"], orders["port"]) == (
        "orders", "postgres", pg_instance.host, pg_instance.port)
    assert orders["resource_id"] == pg_instance.resource_id and orders["iam_enabled"] is True
    assert orders["hosts_line"] == f"127.0.0.1 {pg_instance.host}"
    # configured users first, then the users IAM logins were attempted as
    assert orders["db_users"][0] == "reporting" and "ghost" in orders["db_users"]
    assert [s["key"] for s in orders["snippets"]["reporting"]] == [
        "psql", "python", "node", "java", "go"]
    assert shop["engine"] == "mariadb" and shop["hosts_line"] is None
    assert shop["snippets"]["app_user"][0]["key"] == "mysql"
    assert all("http://127.0.0.1:4566/_rdsiam/ca.pem" in s["code"]
               for s in shop["snippets"]["app_user"])
    principals = {p["name"]: p for p in doc["principals"]}
    assert doc["principals_error"] is None
    assert principals["status-reader"]["grants"] == [{
        "instance_id": "shop", "db_user": "*", "excluded": [], "resource": shop_any}]
    assert principals["status-orders"]["grants"] == [{
        "instance_id": "orders", "db_user": "app_user", "excluded": [],
        "resource": pg_instance.db_user_arn("app_user")}]
    assert principals["status-none"]["grants"] == []
    assert json.loads(status_json([pg_instance], now=datetime.now(UTC)))["instances"][0][
        "id"] == "orders"


def test_status_document_reports_an_unreadable_iam_state() -> None:
    from datetime import UTC, datetime

    from rdsiam_emulator.server.status_page import status_document

    def broken() -> list[Any]:
        raise RuntimeError("moto went away")

    pending = [{"id": "reports", "state": "failed", "error": "BackendError: no initdb"}]
    doc = status_document([], now=datetime.now(UTC), principals=broken, pending=pending)
    assert doc["instances"] == [] and doc["pending"] == pending
    assert doc["principals"] == []
    assert doc["principals_error"] == (
        "IAM principals could not be evaluated: RuntimeError: moto went away")


def test_status_page_assets_are_packaged_and_nothing_else_is_served() -> None:
    from rdsiam_emulator.server.status_page import asset, page

    body, content_type = page()
    assert content_type.startswith("text/html") and b"/_rdsiam/static/status.js" in body
    assert asset("status.js") is not None and asset("status.css") is not None
    for name in ("../status_page.py", "status_page.py", "", "STATUS.JS"):
        assert asset(name) is None


# ------------------------------------------------------------------ Go: built and run


@pytest.mark.slow
def test_go_mysql_snippet_builds_and_connects(my_instance: EmulatedInstance,
                                              my_env: dict[str, str], tmp_path: Path) -> None:
    """The go-sql-driver snippet against Debian's Go packages (GOPATH mode, no module proxy).
    The pgx one cannot be built here: Debian packages no pgx (said in docs/server.md)."""
    from native_clients import GO_PACKAGES, GOPATH_SYSTEM, _missing

    go = shutil.which("go")
    if go is None:
        _missing("golang-go")
    for package, import_path in GO_PACKAGES.items():
        if not (GOPATH_SYSTEM / "src" / import_path).is_dir():
            _missing(package)
    source = tmp_path / "src" / "snippet"
    source.mkdir(parents=True)
    snippet = _snippet(my_instance, "go")
    (source / snippet.filename).write_text(snippet.code)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "GO111MODULE": "off", "GOPATH": f"{tmp_path}{os.pathsep}{GOPATH_SYSTEM}",
           "GOFLAGS": "", "GOCACHE": str(tmp_path / "cache"), "GOTMPDIR": str(tmp_path),
           "GOENV": "off", "GOPROXY": "off", "CGO_ENABLED": "0"}
    binary = tmp_path / "snippet-bin"
    proc = subprocess.run([go, "build", "-o", str(binary), "snippet"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, f"go build failed:\n{snippet.code}\n{proc.stderr}"
    start = my_instance.events.mark()
    proc = subprocess.run([str(binary)], env=my_env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "app_user@%"
    assert _login_events(my_instance, start) == [("allow", "iam", "app_user")]
