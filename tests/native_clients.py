"""Go and Java client programs (tests/go, tests/java) built once per test session and run as
subprocesses against an endpoint; importable from any test (tests/ is on sys.path through
tests/conftest.py). Test files import the fixtures ``go_client`` and ``java_client``.

Everything comes from Debian packages that ``scripts/bootstrap`` installs: the Go toolchain in
GOPATH mode over /usr/share/gocode (no module proxy), the JDK, pgjdbc and MariaDB Connector/J.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rdsiam_emulator.auth import sigv4

TESTS = Path(__file__).resolve().parent
GOPATH_SYSTEM = Path("/usr/share/gocode")
GO_PACKAGES = {
    "golang-github-aws-aws-sdk-go-dev": "github.com/aws/aws-sdk-go/service/rds/rdsutils",
    "golang-github-aws-aws-sdk-go-v2-dev": "github.com/aws/aws-sdk-go-v2/feature/rds/auth",
    "golang-github-go-sql-driver-mysql-dev": "github.com/go-sql-driver/mysql",
    "golang-github-lib-pq-dev": "github.com/lib/pq",
}
JARS = {
    "libpostgresql-jdbc-java": Path("/usr/share/java/postgresql.jar"),
    "libmariadb-java": Path("/usr/share/java/mariadb-java-client.jar"),
}
TIMEOUT = 60  # seconds for one client run; a build gets 240
OTHER_NAME = "other.c0abcdefghij.us-east-1.rds.amazonaws.com"
"""A host name on no endpoint certificate: clients that verify the name must refuse it."""


def _missing(what: str) -> None:
    pytest.skip(reason=f"{what} is not installed: run scripts/bootstrap as root")


@dataclass(frozen=True)
class GoClient:
    """The built tests/go program ``rdsiamclient`` (its main.go lists the environment it reads)."""

    binary: Path

    def run(self, **env: str) -> dict[str, Any]:
        """Run it with ``env`` added to a minimal environment; returns its JSON answer."""
        proc = subprocess.run([str(self.binary)], capture_output=True, text=True, timeout=TIMEOUT,
                              env={"PATH": os.environ.get("PATH", ""), **env})
        assert proc.returncode == 0, f"rdsiamclient failed: {proc.stderr}"
        return dict(json.loads(proc.stdout))

    def run_failing(self, **env: str) -> str:
        """Run it expecting an error that is not the server's (e.g. TLS); returns its stderr."""
        proc = subprocess.run([str(self.binary)], capture_output=True, text=True, timeout=TIMEOUT,
                              env={"PATH": os.environ.get("PATH", ""), **env})
        assert proc.returncode == 2 and not proc.stdout, (proc.stdout, proc.stderr)
        return proc.stderr


@dataclass(frozen=True)
class JavaClient:
    """The compiled tests/java ``RdsIamClient`` with both JDBC drivers on the class path."""

    classes: Path
    java: str

    def run(self, *, engine: str, host: str, address: str, port: int, user: str, ca: str,
            password: str) -> dict[str, Any]:
        """Connect as ``user`` with ``password``; ``host`` resolves to ``address`` for this JVM
        only (a hosts file, as the certificate names only the RDS-style host)."""
        hosts = self.classes / f"hosts-{host}"
        hosts.write_text(f"{address} {host}\n")
        classpath = os.pathsep.join([str(self.classes), *(str(j) for j in JARS.values())])
        proc = subprocess.run(
            [self.java, f"-Djdk.net.hosts.file={hosts}", "-cp", classpath,
             "RdsIamClient", engine, host, str(port), user, ca],
            capture_output=True, text=True, timeout=TIMEOUT,
            env={"PATH": os.environ.get("PATH", ""), "PASSWORD": password})
        assert proc.returncode == 0, f"RdsIamClient failed: {proc.stderr}"
        return dict(json.loads(proc.stdout))


@pytest.fixture(scope="session")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> GoClient:
    go = shutil.which("go")
    if go is None:
        _missing("golang-go")
    for package, import_path in GO_PACKAGES.items():
        if not (GOPATH_SYSTEM / "src" / import_path).is_dir():
            _missing(package)
    work = tmp_path_factory.mktemp("go")
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(work),
        "GO111MODULE": "off", "GOPATH": f"{TESTS / 'go'}{os.pathsep}{GOPATH_SYSTEM}",
        "GOFLAGS": "", "GOCACHE": str(work / "cache"), "GOTMPDIR": str(work),
        "GOENV": "off", "GOPROXY": "off", "CGO_ENABLED": "0",
    }
    binary = work / "rdsiamclient"
    proc = subprocess.run([go, "build", "-o", str(binary), "rdsiamclient"], env=env,
                          capture_output=True, text=True, timeout=240, cwd=work)
    assert proc.returncode == 0, f"go build failed: {proc.stderr}"
    return GoClient(binary)


@pytest.fixture(scope="session")
def java_client(tmp_path_factory: pytest.TempPathFactory) -> JavaClient:
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None:
        _missing("default-jdk-headless")
    for package, jar in JARS.items():
        if not jar.is_file():
            _missing(package)
    classes = tmp_path_factory.mktemp("java")
    classpath = os.pathsep.join(str(j) for j in JARS.values())
    proc = subprocess.run([javac, "-d", str(classes), "-cp", classpath,
                           str(TESTS / "java" / "RdsIamClient.java")],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"javac failed: {proc.stderr}"
    return JavaClient(classes, java)


def tampered(token: str) -> str:
    """``token`` with the last hex digit of its signature changed."""
    return token[:-1] + ("0" if token[-1] != "0" else "1")


def expired_token(*, host: str, port: int, user: str, region: str, akid: str,
                  secret: str, age: timedelta = timedelta(minutes=20)) -> str:
    """A correctly signed token (botocore's form) whose X-Amz-Date is ``age`` ago, valid for 15
    minutes, so expired by now. Signed here rather than by a generator with a frozen clock: a
    frozen clock would also freeze the endpoint running in this process."""
    at = datetime.now(UTC) - age
    amz_date = at.strftime("%Y%m%dT%H%M%SZ")
    host_text = f"{host}:{port}"
    params = [("Action", "connect"), ("DBUser", user), ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
              ("X-Amz-Credential", f"{akid}/{amz_date[:8]}/{region}/rds-db/aws4_request"),
              ("X-Amz-Date", amz_date), ("X-Amz-Expires", "900"),
              ("X-Amz-SignedHeaders", "host")]
    signature = sigv4.presign(host_text=host_text, params=params, secret=secret,
                              amz_date=amz_date, scope_date=amz_date[:8], region=region)
    query = "&".join(f"{k}={sigv4.uri_encode(v)}" for k, v in params)
    return f"{host_text}/?{query}&X-Amz-Signature={signature}"
