"""docs/server.md against the code: its example config is valid, every environment override is
documented, and the documented ``/_rdsiam/instances`` entry has exactly the fields served."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from rdsiam_emulator.server import config, env

DOC = (Path(__file__).resolve().parents[3] / "docs" / "server.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, re.S)


def test_example_config_is_valid_and_uses_every_table() -> None:
    runnable, compose = _blocks("toml")[:2]
    # the first example runs anywhere: no external backend in it (issue #14)
    assert [i.identifier for i in config.parse(tomllib.loads(runnable)).instances] == [
        "orders", "shop"]
    assert "external" not in runnable
    parsed = config.parse(tomllib.loads(runnable + compose))
    assert [i.identifier for i in parsed.instances] == ["orders", "shop", "billing"]
    assert parsed.instances[2].backend == "external" and parsed.instances[0].aliases == (
        "orders-db",)
    seed = parsed.iam
    assert seed.policies and seed.groups and seed.roles
    assert seed.users[0].access_keys[0].access_key_id == "AKIAEXAMPLEAPP000001"
    assert json.loads(seed.roles[0].inline_policies[0].document)["Statement"][0]["Effect"] == (
        "Allow")


def test_every_environment_override_is_documented() -> None:
    for var, (key, _kind) in env.OVERRIDES.items():
        assert f"| `{key}` | `{var}` |" in DOC, var
    assert env.CONFIG_VAR in DOC


def documented_instance_fields() -> set[str]:
    [example] = [b for b in _blocks("json") if '"instances": [' in b]
    return set(json.loads(example)["instances"][0])
