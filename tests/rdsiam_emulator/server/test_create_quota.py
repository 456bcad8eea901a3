"""``CreateDBInstance`` limits (issue #14): RDS's instance quota (``server.max_instances``,
configured + API-created) and at most ``MAX_CREATING`` API creates starting at once.

The hooks are driven with a real ``Runtime`` whose slots stand for instances; the WSGI app behind
them is a stand-in that records whether it was reached (a refused create must not reach moto, so
no record and no server is made). No database server is started here: the real create path is
covered by test_serve.py."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from rdsiam_emulator.server.config import InstanceSpec, parse
from rdsiam_emulator.server.rds_api import MAX_CREATING, RdsHooks
from rdsiam_emulator.server.runtime import Runtime, Slot

AUTH = ("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261130/eu-west-1/rds/aws4_request, "
        "SignedHeaders=host, Signature=00")


def _runtime(tmp_path: Path, limit: int, configured: int) -> Runtime:
    instances = "".join(f'[[instances]]\nidentifier = "db{i}"\nengine = "postgres"\n'
                        f'listen = "127.0.0.{i + 2}:5432"\n' for i in range(configured))
    import tomllib

    config = parse(tomllib.loads(f"[server]\nmax_instances = {limit}\n{instances}"))
    return Runtime(config, tmp_path, io.StringIO())


def _create(hooks: RdsHooks, ident: str) -> tuple[str, bytes, bool]:
    body = (f"Action=CreateDBInstance&DBInstanceIdentifier={ident}&Engine=postgres"
            "&DBInstanceClass=db.t4g.micro").encode()
    reached: list[bool] = []
    status: list[str] = []

    def moto(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        reached.append(True)
        start_response("500 Internal Server Error", [])  # stops the hooks here
        return [b""]

    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)),
               "HTTP_AUTHORIZATION": AUTH, "wsgi.input": io.BytesIO(body)}
    out = b"".join(hooks.call(moto, environ, lambda s, h, e=None: status.append(s)))
    return status[0], out, bool(reached)


def test_quota_counts_configured_and_api_instances(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, limit=2, configured=1)
    hooks = RdsHooks(runtime)
    status, _, reached = _create(hooks, "first")
    assert reached and status.startswith("500")  # under the quota: moto is asked
    runtime._slots["first"] = Slot(
        spec=InstanceSpec(identifier="first", engine="postgres", listen_host="127.0.0.9",
                          listen_port=5432), region="eu-west-1", from_api=True,
        state="available")
    status, body, reached = _create(hooks, "second")
    assert not reached and status.startswith("400")
    assert b"<Code>InstanceQuotaExceeded</Code>" in body
    assert b"quota is 2 (server.max_instances" in body and b"has 2 DB instances" in body
    # a failed instance of the same name is replaced, so it does not count against its retry
    runtime._slots["first"].state = "failed"
    assert _create(hooks, "first")[2]


def test_creates_in_flight_are_bounded(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, limit=40, configured=0)
    hooks = RdsHooks(runtime)
    for i in range(MAX_CREATING):
        runtime._slots[f"c{i}"] = Slot(
            spec=InstanceSpec(identifier=f"c{i}", engine="postgres", listen_host="127.0.0.9",
                              listen_port=5432 + i), region="eu-west-1", from_api=True)
    status, body, reached = _create(hooks, "third")
    assert not reached and status.startswith("400") and b"<Code>Throttling</Code>" in body
    assert f"{MAX_CREATING} instances are being created".encode() in body
    runtime._slots["c0"].state = "available"
    assert _create(hooks, "third")[2]


def test_more_configured_instances_than_the_quota_is_a_config_error() -> None:
    from rdsiam_emulator.server.config import ConfigError

    with pytest.raises(ConfigError, match=r"instances: 2 instances are more than "
                       r"server.max_instances \(1"):
        parse({"server": {"max_instances": 1}, "instances": [
            {"identifier": f"d{i}", "engine": "postgres", "listen": f"127.0.0.{i + 2}:5432"}
            for i in range(2)]})
