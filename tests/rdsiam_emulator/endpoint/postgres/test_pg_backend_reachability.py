"""Around the endpoint, straight to the local PostgreSQL: every way in a client that is not the
endpoint could try, as an IAM user or as the emulator's admin (docs/backends.md "Who can reach a
backend"): every TCP login needs a password (SCRAM), the IAM users' one is derived from a random
per-instance secret only the endpoint holds, the admin's is random; over the private socket the
admin is mapped from the emulator's own OS account only, and the socket's directory admits no
other OS account than the server's.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from pg_env import RunningEndpoint

from rdsiam_emulator.backends.procs import run_as
from rdsiam_emulator.backends.spec import ADMIN_USER
from rdsiam_emulator.secrets import derived_password, new_instance_secret


def test_no_login_around_the_endpoint_as_an_iam_user_or_the_admin(endpoint: RunningEndpoint):
    user = endpoint.iam_user()
    token = endpoint.token(user)
    with psycopg.connect(endpoint.conninfo(user, token)) as conn:  # works through the endpoint
        assert conn.execute("select current_user").fetchone() == (user,)
    handle = endpoint.server.handle
    assert handle.unix_socket is not None
    guesses = {
        user: ["", user, token, derived_password(new_instance_secret(), user)],
        ADMIN_USER: ["", ADMIN_USER],
        "postgres": ["", "postgres"],
    }
    ways = [("127.0.0.1", guesses), (handle.unix_socket, {user: guesses[user]})]
    tried = 0
    for host, accounts in ways:
        for name, passwords in accounts.items():
            for password in passwords:
                with pytest.raises(psycopg.OperationalError) as info:
                    psycopg.connect(host=host, port=handle.port, user=name, password=password,
                                    dbname="app", sslmode="disable", connect_timeout=10)
                message = str(info.value)
                assert ("password authentication failed" in message
                        or "no password supplied" in message), (host, name, message)
                tried += 1
    assert tried == 2 * 4 + 2 + 2


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
