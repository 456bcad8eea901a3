"""Around the endpoint, straight to the local PostgreSQL: every way in a client that is not the
endpoint could try (docs/backends.md "Who can reach a backend"). The server opens no TCP socket at
all (``listen_addresses=''``), so even the master, whose password is known by design, can only
log in through the endpoint; its one way in is the private unix socket, in a directory no other
unprivileged OS account can enter, where every login needs a password (SCRAM) except the
emulator's own admin, mapped from the emulator's OS account only; the IAM users' password is
derived from a random per-instance secret only the endpoint holds.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from pg_env import RunningEndpoint

from rdsiam_emulator.backends import PostgresHandle
from rdsiam_emulator.backends.procs import run_as
from rdsiam_emulator.backends.spec import ADMIN_USER
from rdsiam_emulator.secrets import derived_password, new_instance_secret


def test_no_login_on_the_socket_as_an_iam_user_or_with_guessed_passwords(endpoint: RunningEndpoint):
    user = endpoint.iam_user()
    token = endpoint.token(user)
    with psycopg.connect(endpoint.conninfo(user, token)) as conn:  # works through the endpoint
        assert conn.execute("select current_user").fetchone() == (user,)
    handle = endpoint.server.handle
    assert handle.unix_socket is not None
    guesses = {
        user: ["", user, token, derived_password(new_instance_secret(), user)],
        "postgres": ["", "postgres"],
    }
    # (the admin on the socket: peer-mapped from this OS account, the emulator's own - see the
    # next test for every other account)
    tried = 0
    for name, passwords in guesses.items():
        for password in passwords:
            with pytest.raises(psycopg.OperationalError) as info:
                psycopg.connect(host=handle.unix_socket, port=handle.port, user=name,
                                password=password, dbname="app", sslmode="disable",
                                connect_timeout=10)
            message = str(info.value)
            assert ("password authentication failed" in message
                    or "no password supplied" in message), (name, message)
            tried += 1
    assert tried == 4 + 2


def tcp_sockets(pid: int) -> list[str]:
    """The TCP sockets (any state, IPv4 and IPv6) process ``pid`` holds, as /proc lines."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return [line for table in ("tcp", "tcp6")
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            if line.split()[9] in inodes]


def test_the_master_password_opens_no_way_around_the_endpoint(endpoint: RunningEndpoint):
    """The master's password is known (RDS hands it out): through the endpoint it logs in, and
    nowhere else - not on the loopback port the server used to listen on, not on any TCP
    address, not on the socket as another OS account."""
    handle = endpoint.server.handle
    assert isinstance(handle, PostgresHandle)
    master, password = handle.master_user, handle.master_password
    with psycopg.connect(endpoint.conninfo(master, password)) as conn:
        assert conn.execute("select current_user").fetchone() == (master,)
    for host in ("127.0.0.1", "::1", "localhost"):
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(host=host, port=handle.port, user=master, password=password,
                            dbname="app", sslmode="disable", connect_timeout=10)
        assert "Connection refused" in str(info.value), (host, str(info.value))
    # no TCP socket at all, on any address or port (not just the one tried above)
    assert handle.server_pid is not None
    assert tcp_sockets(handle.server_pid) == []
    if os.geteuid() != 0:
        return  # the server runs as this user: no other OS account to try the socket with
    psql = ["psql", f"host={handle.unix_socket} port={handle.port} user={master} dbname=app",
            "-w", "-c", "select 1"]
    other = subprocess.run(["setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups",
                            *psql], capture_output=True, text=True, timeout=30, check=False,
                           env={**os.environ, "PGPASSWORD": password})
    assert other.returncode != 0 and "Permission denied" in other.stderr, other.stderr


def test_the_socket_admits_the_admin_for_the_emulators_os_account_only(
    endpoint: RunningEndpoint,
) -> None:
    handle = endpoint.server.handle
    sock = Path(str(handle.unix_socket))
    who = run_as()
    info = sock.parent.stat()
    assert stat.S_IMODE(info.st_mode) & 0o077 == 0 and info.st_uid == who.uid
    if os.geteuid() != 0:
        return  # the server runs as this user: no other account to try with
    psql = ["psql", "-h", str(sock), "-p", str(handle.port), "-U", ADMIN_USER, "-d", "app",
            "-w", "-c", "select 1"]
    other = subprocess.run(["setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups",
                            *psql], capture_output=True, text=True, timeout=30, check=False)
    assert other.returncode != 0 and "Permission denied" in other.stderr, other.stderr
    own = subprocess.run([*who.prefix, *psql], capture_output=True, text=True, timeout=30,
                         check=False)
    assert own.returncode != 0 and "Peer authentication failed" in own.stderr, own.stderr
