"""Issue #16, load (the bounded CI versions; ``bench/soak.py`` runs the long ones): RDS's IAM
throttling proved with clients over real TLS (beyond 200 new connections/s with different
tokens, beyond 20/s from different identities; reused tokens never): with the real drivers at a
frozen throttle clock (exact counts), and at the real rate with hand-driven TLS clients that send
their tokens at the same moment (the sliding window's rule checked on the decisions' times);
200 concurrent authenticated idle connections per engine, then all closed (fds and the endpoint's
task/connection registry back to their baseline); a short burst of sustained logins with zero
failures. Real servers, loopback only."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pymysql
import pytest

from rdsiam_emulator.auth.credentials import ResolvedCredential, StaticCredentials
from rdsiam_emulator.auth.throttle import Throttle
from rdsiam_emulator.backends import (
    BackendHandle,
    BackendSpec,
    local_mysql,
    local_postgres,
    start_local,
)
from rdsiam_emulator.instances import EmulatedInstance, Emulator, InstanceConfig
from rdsiam_emulator.protocols.mysql.constants import Capability as Cap
from rdsiam_emulator.protocols.mysql.messages import ErrPacket, HandshakeResponse
from rdsiam_emulator.protocols.mysql.packets import PacketDecoder, encode_packet
from rdsiam_emulator.protocols.postgres import codec as pg
from rdsiam_emulator.reasons import Reason

ACCOUNT = "123456789012"
SHARED = f"arn:aws:iam::{ACCOUNT}:user/loader"
"""One identity behind many access keys: distinct tokens in one second from one identity."""
SHARED_KEYS = [f"AKIALOADSHARED{i:06d}" for i in range(230)]
OWN_KEYS = [f"AKIALOADOWNKEY{i:06d}" for i in range(60)]
"""One identity each (``user/own-<i>``)."""
SECRET = "load-test-secret-0123456789abcdefghijklmn"
IDLE = 200
USER = "load_user"


def _credentials() -> StaticCredentials:
    table: dict[str, Any] = {
        key: ResolvedCredential(key, SECRET, principal_arn=SHARED, account_id=ACCOUNT)
        for key in SHARED_KEYS}
    table.update({key: ResolvedCredential(key, SECRET, principal_arn=f"arn:aws:iam::{ACCOUNT}:"
                                          f"user/own-{i}", account_id=ACCOUNT)
                  for i, key in enumerate(OWN_KEYS)})
    return StaticCredentials(table)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = Emulator(tmp_path_factory.mktemp("emulator"), credentials=_credentials())
    yield emu
    emu.close()


@pytest.fixture(scope="module", params=["postgres", "mysql"])
def backend(request: pytest.FixtureRequest) -> Iterator[BackendHandle]:
    """A server with room for the idle connections (benchmark-style settings for this module:
    the providers' defaults are 100 / 200 connections)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(local_postgres.FAST_SETTINGS, "max_connections", str(IDLE + 50))
        mp.setattr(local_mysql, "MARIADB_FAST",
                   [a for a in local_mysql.MARIADB_FAST if not a.startswith("--max-connections")]
                   + [f"--max-connections={IDLE + 50}"])
        handle = start_local(BackendSpec(engine=request.param, provider="local", dbname="app"))
    try:
        _create_iam_db_user(handle)
        yield handle
    finally:
        handle.stop()


def _create_iam_db_user(handle: BackendHandle) -> None:
    if handle.engine == "postgres":
        handle.admin_execute(f"CREATE ROLE {USER} LOGIN")
        handle.admin_execute(f"GRANT rds_iam TO {USER}")


@pytest.fixture
def instance(emulator: Emulator, backend: BackendHandle) -> Iterator[EmulatedInstance]:
    inst = emulator.start_instance(
        InstanceConfig(instance_id=f"load-{backend.engine}", engine=backend.engine), backend)
    inst.authenticator.authorizer = None  # tokens only: the keys are a static table here
    try:
        if backend.engine == "mysql":
            _mysql_iam_user(inst)
        yield inst
    finally:
        inst.close()


def _mysql_iam_user(inst: EmulatedInstance) -> None:
    handle = inst.backend
    conn = pymysql.connect(host=inst.host, port=inst.port, user=handle.master_user,
                           password=handle.master_password, ssl={"ca": str(inst.ca_bundle)})
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED WITH "
                        "AWSAuthenticationPlugin AS 'RDS'")
    finally:
        conn.close()


def _token(inst: EmulatedInstance, key: str) -> str:
    rds = boto3.client("rds", region_name=inst.region, aws_access_key_id=key,
                       aws_secret_access_key=SECRET)
    return str(rds.generate_db_auth_token(DBHostname=inst.host, Port=inst.port,
                                          DBUsername=USER))


def _open(inst: EmulatedInstance, token: str) -> Any:
    if inst.engine == "postgres":
        return psycopg.connect(host=inst.host, port=inst.port, user=USER, password=token,
                               dbname="app", sslmode="verify-full",
                               sslrootcert=str(inst.ca_bundle), connect_timeout=20)
    return pymysql.connect(host=inst.host, port=inst.port, user=USER, password=token,
                           ssl={"ca": str(inst.ca_bundle)}, connect_timeout=20)


def _login(inst: EmulatedInstance, token: str) -> str:
    """"ok", or the driver's error text."""
    try:
        conn = _open(inst, token)
    except (psycopg.Error, pymysql.err.Error) as exc:
        return str(exc)
    conn.close()
    return "ok"


def _refused(inst: EmulatedInstance) -> str:
    """RDS's wire text for a refused token, as the driver reports it."""
    if inst.engine == "postgres":
        return f'connection failed: connection to server at "127.0.0.1", port {inst.port} ' \
               f'failed: FATAL:  PAM authentication failed for user "{USER}"'
    return f"(1045, \"Access denied for user '{USER}'@'127.0.0.1' (using password: YES)\")"


class FrozenMonotonic:
    """The throttle's clock, moved by the test: every login lands in the same second."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttled(inst: EmulatedInstance, cursor: int) -> list[Any]:
    return [e for e in inst.events_since(cursor) if e.reason is Reason.THROTTLED]


def test_more_than_200_distinct_tokens_per_second_are_throttled(
        instance: EmulatedInstance) -> None:
    inst = instance
    clock = FrozenMonotonic()
    inst.authenticator.throttle = Throttle(monotonic=clock)
    tokens = [_token(inst, key) for key in SHARED_KEYS[:205]]
    assert len(set(tokens)) == 205
    cursor = inst.events.mark()
    results = [_login(inst, t) for t in tokens]
    assert results[:200] == ["ok"] * 200
    assert results[200:] == [_refused(inst)] * 5
    throttled = _throttled(inst, cursor)
    assert len(throttled) == 5
    for event in throttled:
        assert event.detail == "more than 200 new connections per second with different tokens"
        assert event.rds_error_code == "ThrottlingException" and event.hint
        assert event.principal_arn == SHARED
    # a token already used in this second is never throttled, however often
    assert [_login(inst, tokens[7]) for _ in range(10)] == ["ok"] * 10
    clock.now += 1.0  # the next second: room again
    assert _login(inst, tokens[203]) == "ok"


def test_more_than_20_identities_per_second_are_throttled(instance: EmulatedInstance) -> None:
    inst = instance
    clock = FrozenMonotonic()
    inst.authenticator.throttle = Throttle(monotonic=clock)
    cursor = inst.events.mark()
    results = [_login(inst, _token(inst, key)) for key in OWN_KEYS[:22]]
    assert results == ["ok"] * 20 + [_refused(inst)] * 2
    throttled = _throttled(inst, cursor)
    assert [e.detail for e in throttled] == [
        "more than 20 connections per second signed by different IAM identities"] * 2
    assert [e.principal_arn for e in throttled] == [
        f"arn:aws:iam::{ACCOUNT}:user/own-20", f"arn:aws:iam::{ACCOUNT}:user/own-21"]
    assert _login(inst, _token(inst, SHARED_KEYS[0])) == _refused(inst)  # a 21st identity
    clock.now += 1.5
    assert _login(inst, _token(inst, OWN_KEYS[21])) == "ok"


def _held_at_token_request(inst: EmulatedInstance) -> ssl.SSLSocket:
    """A TLS client that named the IAM user and was asked for its token (cleartext password
    request / AuthSwitchRequest to mysql_clear_password), driven by hand so that many can send
    their tokens at the same moment."""
    raw = socket.create_connection(("127.0.0.1", inst.port), timeout=30)
    context = ssl.create_default_context(cafile=str(inst.ca_bundle))
    if inst.engine == "postgres":
        raw.sendall(pg.ssl_request())
        assert raw.recv(1) == b"S"
        tls = context.wrap_socket(raw, server_hostname=inst.host)
        tls.sendall(pg.startup_message({"user": USER, "database": "app"}))
        assert _pg_next(tls, pg.MessageReader()).type == b"R"
        return tls
    assert _my_packet(raw, PacketDecoder()) is not None  # the greeting
    caps = int(Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH | Cap.SSL)
    raw.sendall(encode_packet(1, HandshakeResponse(caps, 1 << 24, 45, b"\0" * 23,
                                                   is_ssl_request=True).build()))
    tls = context.wrap_socket(raw, server_hostname=inst.host)
    tls.sendall(encode_packet(2, HandshakeResponse(
        caps, 1 << 24, 45, b"\0" * 23, user=USER.encode(), auth_response=b"\1" * 20,
        auth_plugin="mysql_native_password").build()))
    switch = _my_packet(tls, PacketDecoder())
    assert switch is not None and switch.payload.startswith(b"\xfemysql_clear_password\0")
    return tls


def _pg_next(sock: ssl.SSLSocket, reader: pg.MessageReader) -> pg.Message:
    while (msg := reader.next_message()) is None:
        data = sock.recv(65536)
        assert data, "closed by the endpoint"
        reader.feed(data)
    return msg


def _my_packet(sock: socket.socket, decoder: PacketDecoder) -> Any:
    while True:
        data = sock.recv(65536)
        if not data:
            return None
        packets = decoder.feed(data)
        if packets:
            return packets[0]


def _send_token(inst: EmulatedInstance, tls: ssl.SSLSocket, token: str) -> None:
    if inst.engine == "postgres":
        tls.sendall(pg.password_message(token))
    else:
        tls.sendall(encode_packet(4, token.encode() + b"\0"))


def _answer(inst: EmulatedInstance, tls: ssl.SSLSocket) -> str:
    """"ok", or the refusal as the wire carries it (PostgreSQL: severity, code and message;
    MySQL: code and message)."""
    if inst.engine == "postgres":
        reader = pg.MessageReader()
        while True:
            msg = _pg_next(tls, reader)
            if msg.type == b"E":
                fields = pg.parse_fields(msg.body)
                return f"{fields['S']} {fields['C']} {fields['M']}"
            if msg.type == b"Z":
                return "ok"
    packet = _my_packet(tls, PacketDecoder())
    assert packet is not None
    if packet.payload[0] == 0x00:
        return "ok"
    err = ErrPacket.parse(packet.payload)
    return f"{err.code} {err.message}"


def _wire_refusal(inst: EmulatedInstance) -> str:
    if inst.engine == "postgres":
        return f'FATAL 28000 PAM authentication failed for user "{USER}"'
    return f"1045 Access denied for user '{USER}'@'127.0.0.1' (using password: YES)"


def test_throttling_at_the_real_rate(instance: EmulatedInstance) -> None:
    """40 TLS clients, each signed by its own identity, asked for their tokens and then sending
    them at the same moment, with the real monotonic clock: more than 20 identities in one
    second, so some are refused with RDS's wire refusal and a ``throttled`` event; the decisions'
    times obey the rule (no more than 20 identities admitted in any second; each refusal had 20
    in the second before it)."""
    inst = instance
    inst.authenticator.throttle = Throttle()
    # the first client held waits for the last one to be ready: more than MySQL's 10 s default
    inst.server.settings.handshake_timeout = 120.0
    tokens = [_token(inst, key) for key in OWN_KEYS[:40]]
    clients = [_held_at_token_request(inst) for _ in tokens]
    cursor = inst.events.mark()
    try:
        for tls, token in zip(clients, tokens, strict=True):
            _send_token(inst, tls, token)
        results = [_answer(inst, tls) for tls in clients]
    finally:
        for tls in clients:
            tls.close()
    assert set(results) <= {"ok", _wire_refusal(inst)}, set(results)
    events = [e for e in inst.events_since(cursor) if e.method == "iam"]
    assert len(events) == len(tokens)
    allowed = [e.time.timestamp() for e in events if e.ok]
    refused = [e.time.timestamp() for e in events if e.reason is Reason.THROTTLED]
    assert len(allowed) + len(refused) == len(tokens)
    assert results.count("ok") == len(allowed) >= 20 and len(refused) >= 1
    slack = 0.05  # the events' wall clock against the throttle's monotonic one
    for t in allowed:
        assert sum(t - 1 + slack < u <= t for u in allowed) <= 20
    for t in refused:
        assert sum(t - 1 - slack < u <= t for u in allowed) >= 20


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _wait_baseline(inst: EmulatedInstance, fds: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = (inst.server.active_connections, inst.server.active_tasks, _fds() - fds)
        if state[0] == 0 and state[1] == 0 and state[2] <= 0:
            return
        assert time.monotonic() < deadline, f"left (connections, tasks, extra fds): {state}"
        time.sleep(0.05)


def test_idle_connections_then_all_closed(instance: EmulatedInstance) -> None:
    """IDLE authenticated sessions open at once (each a real server session), then all closed:
    the endpoint's registry and this process's fds return to their baseline."""
    inst = instance
    inst.authenticator.throttle = None
    token = _token(inst, SHARED_KEYS[0])
    assert _login(inst, token) == "ok"  # warm: the admin session exists
    _wait_baseline(inst, _fds() + 5)
    fds = _fds()
    conns = []
    try:
        for _ in range(IDLE):
            conns.append(_open(inst, token))
        # one client leg and one server leg per session, one serving task each
        assert inst.server.active_connections == 2 * IDLE
        assert inst.server.active_tasks >= IDLE
        for conn in conns[::50]:
            if inst.engine == "postgres":
                assert conn.execute("select current_user").fetchone() == (USER,)
            else:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
    finally:
        for conn in conns:
            conn.close()
    _wait_baseline(inst, fds)


def test_sustained_logins_for_a_few_seconds_do_not_fail(instance: EmulatedInstance) -> None:
    """The CI version of the soak: new IAM logins from three threads for 4 s, no failure, and
    nothing left afterwards."""
    inst = instance
    inst.authenticator.throttle = None
    token = _token(inst, SHARED_KEYS[1])
    assert _login(inst, token) == "ok"
    _wait_baseline(inst, _fds() + 5)
    fds = _fds()
    stop = time.monotonic() + 4
    results: list[str] = []

    def client() -> None:
        while time.monotonic() < stop:
            results.append(_login(inst, token))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) >= 20
    assert [r for r in results if r != "ok"] == []
    _wait_baseline(inst, fds)
