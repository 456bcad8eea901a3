# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""Backend connections held by clients that have not authenticated (issue #12 item 3, break-it
trial follow-up): clients that send their HandshakeResponse and then go silent must not fill the
server's max_connections; IAM logins open no backend before their token is verified; a valid IAM
login refused by the database gets the server's own error and a truthful event; capacity events
name the login's method. Real MariaDB, real TLS, loopback only (attackers bind 127.0.0.2)."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pymysql
import pytest
from mysql_env import MyEnv, _make_env, emulator_ca, mariadb, myenv, unique  # noqa: F401
from test_mysql_lifecycle import CAPS, connect, make_user, read_packet

from rdsiam_emulator.endpoint.mysql import MysqlEndpointSettings
from rdsiam_emulator.protocols.mysql.constants import Capability as C
from rdsiam_emulator.protocols.mysql.messages import ErrPacket, HandshakeResponse
from rdsiam_emulator.protocols.mysql.packets import encode_packet
from rdsiam_emulator.reasons import Reason

ATTACKER = "127.0.0.2"  # another loopback address: the per-address bound is what is tested
HOLDERS = 260  # more than the server's max_connections (asserted)
PERIOD = 0.2


def backend_sessions(direct) -> int:
    with direct.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.processlist")
        (count,) = cur.fetchone()
    return int(count)


def greeted(env: MyEnv, source: str = ATTACKER) -> socket.socket:
    """A client that got its greeting and is now logging in (pending)."""
    raw = socket.create_connection(("127.0.0.1", env.port), timeout=20,
                                   source_address=(source, 0))
    assert read_packet(raw) is not None
    return raw


def login_then_hold(env: MyEnv, raw: socket.socket, user: str, *, tls: bool
                    ) -> tuple[socket.socket | ssl.SSLSocket, bytes]:
    """Send a HandshakeResponse on a greeted socket, read the endpoint's first answer (an
    AuthSwitchRequest, or an ERR) and return the socket, still open and silent, with that
    answer's payload (b"" if the endpoint closed the connection first)."""
    sock: socket.socket | ssl.SSLSocket = raw
    seq = 1
    caps = CAPS | (C.SSL if tls else 0)
    if tls:
        raw.sendall(encode_packet(1, HandshakeResponse(caps, 1 << 24, 45, b"\0" * 23,
                                                       is_ssl_request=True).build()))
        sock = ssl.create_default_context(cafile=env.ca_file).wrap_socket(
            raw, server_hostname="localhost")
        seq = 2
    sock.sendall(encode_packet(seq, HandshakeResponse(
        caps, 1 << 24, 45, b"\0" * 23, user=user.encode(), auth_response=b"\x01" * 20,
        auth_plugin="mysql_native_password").build()))
    answer = read_packet(sock)
    return sock, b"" if answer is None else answer.payload


@pytest.fixture
def hold_env(mariadb, emulator_ca):
    yield from _make_env(mariadb, emulator_ca, settings=MysqlEndpointSettings(
        handshake_timeout=6.0, preauth_wait=0.5))


@pytest.mark.parametrize("holder", ["nobody-plain", "iam-tls"])
def test_silent_logins_starve_neither_iam_logins_nor_the_master(hold_env, mariadb, holder):
    """The trial: HOLDERS clients send a login and go quiet at the AuthSwitchRequest. Before the
    fix each held a backend connection and everyone got 1040 within ~1.5 s."""
    env = hold_env
    user = make_user(env)
    with connect(env, user, env.token(user)):  # warm up: greeting template, catalog
        pass
    direct = pymysql.connect(**mariadb.address_kwargs(), user=mariadb.admin_user,
                             password=mariadb.admin_password, autocommit=True)
    with direct.cursor() as cur:
        cur.execute("SELECT @@max_connections")
        (max_connections,) = cur.fetchone()
    assert max_connections < HOLDERS
    hold_user, tls = ("nobody", False) if holder == "nobody-plain" else (user, True)
    before = backend_sessions(direct)
    during = before
    held: list[socket.socket | ssl.SSLSocket] = []
    answers: list[int] = []
    lock = threading.Lock()
    canary_failures: list[str] = []
    holder_errors: list[str] = []
    canary_ok = 0
    stop = threading.Event()

    def holders(count: int) -> None:
        # all greeted first (so more clients are logging in than get an eager backend), then
        # each sends its login and goes silent
        try:
            raws = [greeted(env) for _ in range(count)]
        except OSError as exc:  # the attacker's own trouble (load), not a canary failure
            holder_errors.append(repr(exc))
            return
        for raw in raws:
            try:
                sock, payload = login_then_hold(env, raw, hold_user, tls=tls)
            except OSError as exc:
                with lock:
                    holder_errors.append(repr(exc))
                continue
            with lock:
                held.append(sock)
                answers.append(payload[0] if payload else -1)

    def canary() -> None:
        nonlocal canary_ok, during
        while not stop.is_set():
            started = time.monotonic()
            during = max(during, backend_sessions(direct))
            try:
                with connect(env, user, env.token(user)) as conn:
                    assert conn.cursor().execute("SELECT 1") == 1
                canary_ok += 1
            except Exception as exc:  # every failure counts, whatever its kind
                canary_failures.append(f"canary {time.monotonic() - started:.2f}s: {exc!r}")
            stop.wait(max(0.0, PERIOD - (time.monotonic() - started)))

    canary_thread = threading.Thread(target=canary)
    canary_thread.start()
    attackers = [threading.Thread(target=holders, args=(HOLDERS // 20,)) for _ in range(20)]
    try:
        for t in attackers:
            t.start()
        for t in attackers:
            t.join(30)
        with connect(env, *env.master) as conn:  # the master during the attack
            assert conn.cursor().execute("SELECT 1") == 1
        time.sleep(1.0)  # more canary logins while the holders still hold
    finally:
        stop.set()
        canary_thread.join(30)
        for s in held:
            s.close()
        direct.close()
    assert canary_failures == [], canary_failures[:5]
    assert canary_ok >= 5
    assert len(held) >= HOLDERS * 3 // 4, holder_errors[:3]  # the attack was real
    # the per-address bound (8) on backends held before authentication, plus the canary's and
    # the master's sessions, which may be open while the sample is taken
    assert during - before <= 8 + 2, (during, before)
    if holder == "nobody-plain":  # 0xFE AuthSwitchRequest for the held ones, else 0xFF (1040,
        # or 1045 from a backend opened at accept)
        assert answers.count(0xFF) > len(answers) // 2
    else:
        # every IAM holder was asked for its token (-1: closed at the handshake timeout first)
        assert 0xFF not in answers and answers.count(0xFE) >= len(answers) * 3 // 4


@pytest.fixture
def tight_env(mariadb, emulator_ca):
    yield from _make_env(mariadb, emulator_ca, settings=MysqlEndpointSettings(
        handshake_timeout=4.0, max_preauth_backends_per_address=1, preauth_wait=0.3,
        max_pending_logins=3))


def test_capacity_events_name_the_logins_method(tight_env, mariadb):
    env = tight_env
    user = make_user(env)
    with connect(env, user, env.token(user)):
        pass
    holder = socket.create_connection(("127.0.0.1", env.port), timeout=5)
    assert read_packet(holder) is not None  # greeted: holds the one slot of 127.0.0.1
    cursor = env.events.mark()
    extra = []
    try:
        # a password login (here a non-existent user) finds no slot: 1040 after preauth_wait
        with pytest.raises(pymysql.err.OperationalError) as info:
            connect(env, unique("nobody"), "pw")
        assert info.value.args == (1040, "Too many connections")
        # an IAM login needs no slot before its token is verified
        with connect(env, user, env.token(user)) as conn:
            assert conn.cursor().execute("SELECT 1") == 1
        # beyond max_pending_logins, before any user is named: method "unknown"
        extra = [socket.create_connection(("127.0.0.1", env.port), timeout=5)
                 for _ in range(3)]
        for s in extra[:2]:
            assert read_packet(s) is not None
        packet = read_packet(extra[2])
        assert packet is not None
        assert ErrPacket.parse(packet.payload).code == 1040
    finally:
        holder.close()
        for s in extra:
            s.close()
    refusals = [(e.reason, e.method, e.db_user != "") for e in env.events.since(cursor)
                if e.outcome != "allow"]
    assert refusals == [(Reason.TOO_MANY_CONNECTIONS, "password", True),
                        (Reason.TOO_MANY_CONNECTIONS, "unknown", False)]


def test_iam_login_refused_by_the_database_gets_the_servers_error(myenv):
    env = myenv
    no_grants = make_user(env)  # no privileges at all
    cursor = env.events.mark()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(env, no_grants, env.token(no_grants), database="app")
    assert info.value.args == (
        1044, f"Access denied for user '{no_grants}'@'%' to database 'app'")
    allowed, refused = env.events.since(cursor)
    assert allowed.outcome == "allow" and allowed.method == "iam"
    assert (refused.reason, refused.method, refused.db_user) == (
        Reason.BACKEND_REFUSED, "iam", no_grants)
    assert "1044" in refused.detail and "GRANT" in (refused.hint or "")

    user = make_user(env)
    with connect(env, *env.master) as conn, conn.cursor() as cur:
        cur.execute(f"GRANT SELECT ON *.* TO '{user}'@'%'")
    cursor = env.events.mark()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(env, user, env.token(user), database="no_such_db")
    assert info.value.args == (1049, "Unknown database 'no_such_db'")
    refused = env.events.since(cursor)[-1]
    assert refused.reason is Reason.BACKEND_REFUSED and "1049" in refused.detail
    assert "create the database" in (refused.hint or "")


def test_preauth_slots_bound_in_total_and_per_address():
    import asyncio

    from rdsiam_emulator.endpoint.mysql import PreauthSlots

    async def scenario() -> None:
        slots = PreauthSlots(total=3, per_address=2)
        assert slots.try_acquire("a") and slots.try_acquire("a")
        assert not slots.try_acquire("a")  # per address
        assert slots.try_acquire("b")
        assert not slots.try_acquire("c")  # in total
        assert not await slots.acquire("c", 0.05)  # no slot came free in time
        waiting = asyncio.ensure_future(slots.acquire("c", 5.0))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        slots.release("a")  # frees the total; "c" takes it
        assert await waiting
        assert (slots.held, slots.try_acquire("a")) == (3, False)
        for address in ("a", "b", "c"):
            slots.release(address)
        assert slots.held == 0 and slots.try_acquire("a")

    asyncio.run(scenario())
