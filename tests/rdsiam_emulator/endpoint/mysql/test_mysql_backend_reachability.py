# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""Around the endpoint, straight to the local MariaDB: every way in a client that is not the
endpoint could try, as an IAM user or as an account the server or the emulator made.

What keeps them out (docs/backends.md "Who can reach a backend"): the server opens no TCP socket
(``--skip-networking``), so even the master, whose password is known by design, logs in only
through the endpoint; the unix socket sits in a directory only the server's OS account can enter;
on it, the IAM users' backend password is derived from a random per-instance secret held only in
the endpoint's memory and is never in any SQL text the endpoint sends to a MariaDB server
(test_mysql_account_ddl); the admin and root passwords are random and held in memory; the
password-less accounts the server's installer makes are dropped.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pymysql
import pytest
from mysql_env import (  # noqa: F401
    MyEnv,
    emulator_ca,
    mariadb,
    myenv,
    unique,
)

from rdsiam_emulator.backends.procs import run_as
from rdsiam_emulator.secrets import derived_password, new_instance_secret


def via_endpoint(env: MyEnv, user: str, password: str):
    return pymysql.connect(host="localhost", port=env.port, user=user, password=password,
                           connect_timeout=10, ssl={"ca": env.ca_file})


def test_no_login_around_the_endpoint_as_an_iam_user_or_a_system_account(myenv):
    user = unique("iam")
    with via_endpoint(myenv, *myenv.master) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    token = myenv.token(user)
    with via_endpoint(myenv, user, token) as conn:  # the account works through the endpoint
        assert conn.open
    backend = myenv.backend
    guesses = {
        user: ["", user, token, "RDS", derived_password(new_instance_secret(), user)],
        "root": ["", "root"],
        backend.admin_user: ["", backend.admin_user],
        "": [""],
        "mariadb.sys": [""],
        "mysql": [""],
    }
    tried = 0
    for name, passwords in guesses.items():
        for password in passwords:
            with pytest.raises(pymysql.err.OperationalError) as info:
                pymysql.connect(user=name, password=password, connect_timeout=10,
                                unix_socket=backend.unix_socket)
            # 1045 access denied, 4151 account locked (mariadb.sys)
            assert info.value.args[0] in (1045, 4151), (name, info.value.args)
            tried += 1
    assert tried == sum(len(p) for p in guesses.values())


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


def test_the_master_password_opens_no_way_around_the_endpoint(myenv):
    """The master's password is known (RDS hands it out): through the endpoint it logs in, and
    nowhere else - not on the loopback port the server used to listen on, not on any TCP
    address, not on the socket as another OS account."""
    backend = myenv.backend
    master, password = myenv.master
    with via_endpoint(myenv, master, password) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == (f"{master}@%",)
    for host in ("127.0.0.1", "::1"):
        with pytest.raises(pymysql.err.OperationalError) as info:
            pymysql.connect(host=host, port=backend.port, user=master, password=password,
                            connect_timeout=10)
        assert info.value.args[0] == 2003, (host, info.value.args)  # can't connect: refused
        assert "Connection refused" in str(info.value.args[1]), (host, info.value.args)
    # no TCP socket at all, on any address or port (not just the one tried above)
    assert backend.server_pid is not None
    assert tcp_sockets(backend.server_pid) == []
    if os.geteuid() != 0:
        return  # the server runs as this user: no other OS account to try the socket with
    other = subprocess.run(
        ["setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups", "mariadb",
         "--no-defaults", f"--socket={backend.unix_socket}", f"--user={master}",
         "-e", "SELECT 1"], capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "MYSQL_PWD": password})
    assert other.returncode != 0 and "(13)" in other.stderr, other.stderr  # EACCES


def test_the_socket_directory_is_the_servers_alone(mariadb):
    who = run_as()
    sock = Path(mariadb.unix_socket)
    info = sock.parent.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == who.uid
    if os.geteuid() != 0:
        return  # the server runs as this user: no other account to try with
    # another unprivileged OS account cannot even open the socket ...
    other = subprocess.run(
        ["setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups",
         "mariadb", f"--socket={sock}", "--user=root", "--password=", "-e", "SELECT 1"],
        capture_output=True, text=True, timeout=30, check=False)
    assert other.returncode != 0 and "(13)" in other.stderr, other.stderr  # EACCES
    # ... and the server's own account reaches it, but needs a password like anyone
    own = subprocess.run(
        [*who.prefix, "mariadb", f"--socket={sock}", "--user=root", "--password=", "-e",
         "SELECT 1"], capture_output=True, text=True, timeout=30, check=False)
    assert own.returncode != 0 and "1045" in own.stderr, own.stderr
