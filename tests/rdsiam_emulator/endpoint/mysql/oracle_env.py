"""Fixtures for the Oracle MySQL tests: the stand-in container (docker/standin-mysql, Debian
unstable's MySQL) through testcontainers on Podman's Docker API, and a recording TCP forwarder
between the endpoint and that server so the tests see the backend login on the wire."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rdsiam_emulator.protocols.mysql.packets import Packet, PacketDecoder

ROOT = Path(__file__).resolve().parents[4]
ENGINE = ROOT / "scripts" / "podman-engine"
NO_PODMAN = "no podman and not root: scripts/podman-engine cannot install it here"


@pytest.fixture(scope="session")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Podman's Docker API for this session (scripts/podman-engine builds the stand-in images
    first, cached) and the variables a Docker-API client needs, set in os.environ meanwhile."""
    from testcontainers.core.config import testcontainers_config

    if shutil.which("podman") is None and os.geteuid() != 0:
        pytest.skip(reason=NO_PODMAN)
    api_dir = tmp_path_factory.mktemp("podman-api")
    up = subprocess.run([str(ENGINE), "up", str(api_dir)], capture_output=True, text=True,
                        timeout=1800, check=False)
    if up.returncode != 0:
        pytest.fail(f"scripts/podman-engine up failed:\n{up.stderr[-4000:]}")
    env = {}
    for line in up.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            # read once per process by testcontainers (Ryuk's image does not exist here)
            mp.setattr(testcontainers_config, "ryuk_disabled", True)
            yield env
    finally:
        subprocess.run([str(ENGINE), "stop", str(api_dir)], capture_output=True, timeout=60,
                       check=True)


@dataclass
class Leg:
    """One connection through the tap: what each side sent."""

    to_server: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)

    def login_user(self) -> str | None:
        """The user named in the HandshakeResponse41 (the client's first packet)."""
        packets = PacketDecoder(1 << 24).feed(bytes(self.to_server))
        if not packets or len(packets[0].payload) < 33:
            return None
        payload = packets[0].payload
        end = payload.index(b"\0", 32)
        return payload[32:end].decode()

    def server_login_packets(self) -> list[Packet]:
        """The server's packets after its greeting, up to and including its OK or ERR."""
        out: list[Packet] = []
        for packet in PacketDecoder(1 << 24).feed(bytes(self.to_client))[1:]:
            out.append(packet)
            if packet.payload[:1] in (b"\x00", b"\xff"):
                break
        return out


class WireTap:
    """A loopback TCP forwarder to ``target`` that keeps every connection's bytes (``legs``).

    Runs on the caller's event loop (``start``/``close`` are coroutines)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.legs: list[Leg] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        leg = Leg()
        self.legs.append(leg)
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       into: bytearray) -> None:
            try:
                while data := await src.read(65536):
                    into += data
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        tasks = [asyncio.create_task(pump(reader, up_writer, leg.to_server)),
                 asyncio.create_task(pump(up_reader, writer, leg.to_client))]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks)
        finally:
            self._tasks.difference_update(tasks)

    def logins_of(self, user: str) -> list[list[Packet]]:
        """For every connection that logged in as ``user``: the server's login packets."""
        return [leg.server_login_packets() for leg in self.legs if leg.login_user() == user]


FAST_AUTH_OK = b"\x01\x03"
"""caching_sha2_password: AuthMoreData "fast authentication succeeded" (the cache hit)."""
PERFORM_FULL_AUTH = b"\x01\x04"
"""caching_sha2_password: AuthMoreData "perform full authentication" (no cached entry)."""


def sha2_path(packets: list[Packet]) -> str:
    """``fast`` or ``full`` (with the server's RSA public key sent) from one login's packets,
    ending in OK; anything else is returned as a description that fails the comparison."""
    heads = [p.payload[:2] for p in packets]
    if heads == [FAST_AUTH_OK, b"\x00" + packets[-1].payload[1:2]]:
        return "fast"
    if (len(packets) == 3 and heads[0] == PERFORM_FULL_AUTH
            and packets[1].payload.startswith(b"\x01-----BEGIN PUBLIC KEY-----")
            and packets[2].payload[:1] == b"\x00"):
        return "full"
    return f"unexpected: {[p.payload[:40] for p in packets]!r}"
