# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""Robustness of the MySQL endpoint (real MariaDB, real sockets) and IAM policy through moto."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

import boto3
import pymysql
import pytest
from mysql_env import (  # noqa: F401
    REGION,
    MyEnv,
    _make_env,
    emulator_ca,
    mariadb,
    myenv,
    unique,
)

from rdsiam_emulator.endpoint.mysql import MysqlEndpointSettings
from rdsiam_emulator.reasons import Reason


def connect(env: MyEnv, user: str, password: str, **kw):
    return pymysql.connect(host="localhost", port=env.port, user=user, password=password,
                           ssl={"ca": env.ca_file}, connect_timeout=10, **kw)


def make_iam_user(env: MyEnv) -> str:
    user = unique("iam")
    with connect(env, *env.master) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    return user


def wait_idle(env: MyEnv, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if env.endpoint.active_tasks == 0 and env.endpoint.active_connections == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"endpoint not idle: {env.endpoint.active_tasks} tasks, "
                         f"{env.endpoint.active_connections} connections")


@pytest.fixture
def quick_env(mariadb, emulator_ca):
    yield from _make_env(mariadb, emulator_ca,
                         settings=MysqlEndpointSettings(handshake_timeout=0.5))


@pytest.fixture
def dead_backend_env(mariadb, emulator_ca):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield from _make_env(mariadb, emulator_ca, backend_port=port,
                         settings=MysqlEndpointSettings(backend_timeout=1.0))


def test_silent_client_is_closed_after_handshake_timeout(quick_env):
    with socket.create_connection(("127.0.0.1", quick_env.port), timeout=5) as s:
        assert s.recv(4096)[4] == 10  # greeting
        started = time.monotonic()
        assert s.recv(4096) == b""  # closed by the endpoint, no answer
        assert time.monotonic() - started < 4
    wait_idle(quick_env)


def test_clients_vanishing_mid_handshake_leave_nothing_behind(myenv):
    for cut in ("after_greeting", "after_ssl_request", "mid_packet"):
        s = socket.create_connection(("127.0.0.1", myenv.port), timeout=5)
        s.recv(4096)
        if cut == "after_ssl_request":
            s.sendall(b"\x20\x00\x00\x01" + (0x0200 | 0x0800 | 0x8000).to_bytes(4, "little")
                      + b"\0\0\0\1\x2d" + b"\0" * 23)
        elif cut == "mid_packet":
            s.sendall(b"\x50\x00\x00\x01abc")
        s.close()
    user = make_iam_user(myenv)
    conn = connect(myenv, user, myenv.token(user))
    conn.close()
    wait_idle(myenv)


def test_dead_backend_gets_an_error_packet(dead_backend_env):
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(dead_backend_env, "admin", "x")
    assert info.value.args[0] == 1053
    with pytest.raises(pymysql.err.OperationalError):  # and again: the endpoint keeps serving
        connect(dead_backend_env, "admin", "x")
    wait_idle(dead_backend_env)


def test_admin_connection_and_sessions_survive_backend_kills(myenv):
    user = make_iam_user(myenv)
    with connect(myenv, *myenv.master) as m, m.cursor() as cur:
        cur.execute("SELECT id FROM information_schema.processlist WHERE user = %s",
                    [myenv.backend.admin_user])
        for (pid,) in cur.fetchall():
            if pid != m.thread_id():
                cur.execute(f"KILL {int(pid)}")
    with connect(myenv, user, myenv.token(user)) as conn:  # admin reconnects transparently
        assert conn.cursor().execute("SELECT 1") == 1
    victim = connect(myenv, user, myenv.token(user))
    with connect(myenv, *myenv.master) as m, m.cursor() as cur:
        cur.execute(f"KILL {victim.thread_id()}")
    with pytest.raises(pymysql.err.OperationalError):
        victim.cursor().execute("SELECT 1")
    victim.close()
    wait_idle(myenv)


def test_every_attempt_is_recorded_with_a_reason(myenv):
    user = make_iam_user(myenv)
    cursor = myenv.events.mark()
    with pytest.raises(pymysql.err.OperationalError):
        connect(myenv, user, myenv.token(user, port=myenv.port + 1))
    with connect(myenv, user, myenv.token(user)):
        pass
    events = myenv.events.since(cursor)
    assert [(e.db_user, e.reason) for e in events] == [
        (user, Reason.HOST_MISMATCH), (user, None)]
    assert all(e.tls and e.client_address == "127.0.0.1" for e in events)


@pytest.fixture
def moto_env(mariadb, emulator_ca):
    from moto import mock_aws

    with mock_aws():
        yield from _make_env(mariadb, emulator_ca)


def test_iam_policy_from_moto_decides(moto_env):
    from rdsiam_emulator.auth.authenticator import Authenticator
    from rdsiam_emulator.aws import MotoCredentials
    from rdsiam_emulator.iam import IamAuthorizer

    env = moto_env
    endpoint_spec = env.endpoint.authenticator.endpoint
    env.endpoint.authenticator = Authenticator(
        instance_id="mydb", engine="mysql", endpoint=endpoint_spec,
        credentials=MotoCredentials(), authorizer=IamAuthorizer(), events=env.events)
    allowed, other = make_iam_user(env), make_iam_user(env)
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="app")
    arn = endpoint_spec.db_user_arn(allowed)
    iam.put_user_policy(UserName="app", PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": arn}]}))
    key = iam.create_access_key(UserName="app")["AccessKey"]
    rds = boto3.client("rds", region_name=REGION, aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])

    def token(user: str) -> str:
        return rds.generate_db_auth_token(DBHostname="localhost", Port=env.port,
                                          DBUsername=user, Region=REGION)

    with connect(env, allowed, token(allowed)) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == (f"{allowed}@%",)
    assert env.events.all()[-1].principal_arn.endswith(":user/app")
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(env, other, token(other))
    assert info.value.args == (
        1045, f"Access denied for user '{other}'@'127.0.0.1' (using password: YES)")
    assert env.events.all()[-1].reason is Reason.NOT_AUTHORIZED


def test_many_refused_logins_do_not_get_the_endpoint_blocked(myenv):
    """Each refusal abandons a backend connection mid-handshake; MariaDB must not start refusing
    the endpoint's address (max_connect_errors is 100 by default)."""
    user = make_iam_user(myenv)
    for _ in range(120):
        with pytest.raises(pymysql.err.OperationalError):
            connect(myenv, user, "bad-token")
    with connect(myenv, user, myenv.token(user)) as conn:
        assert conn.cursor().execute("SELECT 1") == 1


def test_old_client_without_plugin_auth_gets_1251(myenv):
    import ssl

    from rdsiam_emulator.protocols.mysql.constants import Capability as C
    from rdsiam_emulator.protocols.mysql.messages import ErrPacket, HandshakeResponse
    from rdsiam_emulator.protocols.mysql.packets import PacketDecoder, encode_packet

    user = make_iam_user(myenv)
    caps = int(C.PROTOCOL_41 | C.SECURE_CONNECTION | C.SSL)
    ssl_req = HandshakeResponse(caps, 1 << 24, 45, b"\0" * 23, is_ssl_request=True)
    hello = HandshakeResponse(caps, 1 << 24, 45, b"\0" * 23, user=user.encode(),
                              auth_response=b"\x01" * 20)
    raw = socket.create_connection(("127.0.0.1", myenv.port), timeout=5)
    raw.recv(4096)
    raw.sendall(encode_packet(1, ssl_req.build()))
    ctx = ssl.create_default_context(cafile=myenv.ca_file)
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(encode_packet(2, hello.build()))
        (packet,) = PacketDecoder().feed(tls.recv(4096))
    assert packet.seq == 3
    err = ErrPacket.parse(packet.payload)
    assert (err.code, err.sqlstate) == (1251, "08004")


def test_no_tls_session_tickets_are_issued(myenv):
    """MySQL clients do not resume sessions; the endpoint skips the tickets' CPU cost."""
    with connect(myenv, *myenv.master) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")  # tickets, if any, arrive with the first records after login
        assert cur.fetchall() == ((1,),)
        session = conn._sock.session
        assert conn._sock.version() == "TLSv1.3"
        assert session is None or not session.has_ticket


def _socket_inodes() -> set[str]:
    links = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            links.add(os.readlink(f"/proc/self/fd/{fd}"))
    return {link for link in links if link.startswith("socket:")}


def test_close_releases_a_refused_tls_client_still_shutting_down(mariadb, emulator_ca):
    """A refused TLS client that keeps its socket open (never answers close_notify) leaves the
    endpoint's side in TLS shutdown; closing the endpoint must still close that socket."""
    import ssl

    from rdsiam_emulator.protocols.mysql.constants import Capability as C
    from rdsiam_emulator.protocols.mysql.messages import HandshakeResponse
    from rdsiam_emulator.protocols.mysql.packets import encode_packet

    envs = _make_env(mariadb, emulator_ca)
    env = next(envs)
    try:
        user = make_iam_user(env)
        wait_idle(env)
        before = _socket_inodes()
        caps = int(C.PROTOCOL_41 | C.SECURE_CONNECTION | C.SSL)
        ssl_req = HandshakeResponse(caps, 1 << 24, 45, b"\0" * 23, is_ssl_request=True)
        hello = HandshakeResponse(caps, 1 << 24, 45, b"\0" * 23, user=user.encode(),
                                  auth_response=b"\x01" * 20)  # no plugin auth: refused 1251
        ctx = ssl.create_default_context(cafile=env.ca_file)
        with socket.create_connection(("127.0.0.1", env.port), timeout=5) as raw:
            raw.recv(4096)
            raw.sendall(encode_packet(1, ssl_req.build()))
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(encode_packet(2, hello.build()))
                assert tls.recv(4096)  # the refusal; the client stays silent from here on
                mine = os.readlink(f"/proc/self/fd/{tls.fileno()}")
                deadline = time.monotonic() + 5
                while env.endpoint.active_tasks and time.monotonic() < deadline:
                    time.sleep(0.05)
                env.loop.run(env.endpoint.close())
                # the client is still open; every socket the endpoint opened must be gone
                assert _socket_inodes() - before - {mine} == set()
    finally:
        next(envs, None)  # closes the endpoint (again: a no-op) and stops its loop
