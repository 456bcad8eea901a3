"""The Podman engine and the emulator's images for the container-image tests (tests/docker,
tests/rdsiam_emulator/test_testcontainers.py): session fixtures, one API service per xdist worker.

scripts/podman-engine starts Podman's Docker-compatible API (and builds the Debian base and the
stand-ins); scripts/emulator-image builds the emulator image and the Node example image, both
cached by the hash of their build context (seconds when nothing changed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "scripts" / "podman-engine"
IMAGES = ROOT / "scripts" / "emulator-image"


def _exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


@pytest.fixture(scope="session")
def image_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment a Docker-API client needs (DOCKER_HOST, ...) plus RDSIAM_EMULATOR_IMAGE and
    RDSIAM_EXAMPLE_NODE_IMAGE; a failing build fails the tests."""
    if shutil.which("podman") is None and os.geteuid() != 0:
        pytest.skip(reason="no podman and not root: scripts/podman-engine cannot install it here")
    api_dir = tmp_path_factory.mktemp("podman-api")
    up = subprocess.run([str(ENGINE), "up", str(api_dir)], capture_output=True, text=True,
                        timeout=1800, check=False)
    if up.returncode != 0:
        pytest.fail(f"scripts/podman-engine up failed:\n{up.stderr[-4000:]}")
    env = _exports(up.stdout)
    try:
        built = subprocess.run([str(IMAGES), "build"], capture_output=True, text=True,
                               timeout=1800, check=False, env={**os.environ, **env})
        if built.returncode != 0:
            pytest.fail(f"scripts/emulator-image build failed:\n{built.stderr[-4000:]}")
        env.update(_exports(built.stdout))
        yield env
    finally:
        subprocess.run([str(ENGINE), "stop", str(api_dir)], capture_output=True, timeout=60,
                       check=True)
