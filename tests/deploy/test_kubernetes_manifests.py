"""deploy/kubernetes validated offline: the manifests against the Kubernetes API schemas
(kubernetes-validate, strict), and against what the image and `serve` actually do: the ConfigMap's
TOML passes the server's own config parser, probes hit /_rdsiam/health on the configured port, the
ports match the instances' listen ports, the user is the image's non-root USER. No cluster exists
here: nothing is applied."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from rdsiam_emulator.server import config as server_config

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
K8S_VERSIONS = ("1.29.0", "1.37.0")  # an old supported release and the validator's newest


def load(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
    assert len(docs) == 1, name
    return docs[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ["configmap.yaml", "deployment.yaml", "service.yaml"])
def test_manifest_is_valid_kubernetes(name: str, version: str) -> None:
    kubernetes_validate.validate(load(name), version, strict=True)


def test_the_validator_rejects_a_broken_deployment() -> None:
    # the check above can fail: a misspelt field and a string port are refused
    doc = load("deployment.yaml")
    broken = copy.deepcopy(doc)
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)
    broken = copy.deepcopy(doc)
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_manifests_agree_with_the_config_and_the_image() -> None:
    configmap, deployment, service = (load(n) for n in
                                      ("configmap.yaml", "deployment.yaml", "service.yaml"))
    conf = server_config.parse(tomllib.loads(configmap["data"]["emulator.toml"]))
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    assert env["RDSIAM_CONFIG"] == f"{mount['mountPath']}/emulator.toml"
    assert [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v] == [
        configmap["metadata"]["name"]]

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["api"] == conf.server.port and conf.server.host == "0.0.0.0"
    assert sorted(i.listen_port for i in conf.instances) == sorted(
        v for k, v in ports.items() if k != "api")
    assert all(i.listen_host == "0.0.0.0" for i in conf.instances)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/_rdsiam/health" and ports[get["port"]] == conf.server.port

    # the Service exposes every container port by name, and selects the pod
    assert {p["targetPort"]: p["port"] for p in service["spec"]["ports"]} == ports
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    # its names are declared aliases, so tokens signed for them are accepted (host binding)
    name = service["metadata"]["name"]
    for inst in conf.instances:
        assert name in inst.aliases and f"{name}.rdsiam.svc.cluster.local" in inst.aliases

    # non-root, as the image's USER
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "docker" / "Dockerfile").read_text(), re.M)
    assert user is not None
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user[1]), int(user[2]))
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # a read-only root needs writable mounts where the emulator writes: its home and /tmp
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert {"/var/lib/rdsiam", "/tmp"} <= writable
    assert str(conf.server.state_dir).startswith("/var/lib/rdsiam/")
