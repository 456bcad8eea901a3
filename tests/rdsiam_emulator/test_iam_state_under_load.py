"""Issue #16, faults: moto's IAM state changing while clients log in in a loop. A policy
detached, attached again, then the access key deleted, each mid-run (the next change once a
few decisions showed the current state): the refusals switch to the
right reason code (``not_authorized``, then ``unknown_access_key``), clients see only the
engine's refusal (no other kind of error), nothing hangs, and the endpoint holds nothing
afterwards. Real servers, real TLS, real drivers, moto as the IAM state."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import psycopg
import pymysql
import pytest
from moto import mock_aws

from rdsiam_emulator.backends import BackendHandle, BackendSpec, start_local
from rdsiam_emulator.instances import EmulatedInstance, Emulator, InstanceConfig
from rdsiam_emulator.reasons import Reason

CLIENTS = 3
PHASE_DECISIONS = 4
"""Decisions with a phase's own outcome to wait for before the next change (however loaded the
machine, each phase is seen)."""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = Emulator(tmp_path_factory.mktemp("emulator"))
    yield emu
    emu.close()


@pytest.fixture(params=["postgres", "mysql"])
def instance(request: pytest.FixtureRequest,
             emulator: Emulator) -> Iterator[EmulatedInstance]:
    engine = request.param
    handle = start_local(BackendSpec(engine=engine, provider="local", dbname="app"))
    inst = emulator.start_instance(
        # no throttling: the loop's distinct tokens are not what this test is about
        InstanceConfig(instance_id=f"load-{engine}", engine=engine, throttling=False), handle)
    try:
        with mock_aws():
            inst.register_in_moto()
            yield inst
    finally:
        inst.close()
        handle.stop()


def _create_iam_db_user(inst: EmulatedInstance, user: str) -> None:
    handle: BackendHandle = inst.backend
    if inst.engine == "postgres":
        handle.admin_execute(f"CREATE ROLE {user} LOGIN")
        handle.admin_execute(f"GRANT rds_iam TO {user}")
        return
    master = pymysql.connect(host=inst.host, port=inst.port, user=handle.master_user,
                             password=handle.master_password, ssl={"ca": str(inst.ca_bundle)})
    try:
        with master.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin "
                        "AS 'RDS'")
    finally:
        master.close()


def _login(inst: EmulatedInstance, user: str, token: str) -> None:
    """One IAM login and ``select 1``; raises the driver's error."""
    if inst.engine == "postgres":
        with psycopg.connect(host=inst.host, port=inst.port, user=user, password=token,
                             dbname="app", sslmode="verify-full",
                             sslrootcert=str(inst.ca_bundle), connect_timeout=30) as conn:
            conn.execute("select 1")
        return
    conn = pymysql.connect(host=inst.host, port=inst.port, user=user, password=token,
                           ssl={"ca": str(inst.ca_bundle)}, connect_timeout=30)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


def _refusal_text(inst: EmulatedInstance, user: str) -> str:
    """The engine's refusal for a token (what RDS sends), as the driver reports it."""
    if inst.engine == "postgres":
        return f'FATAL:  PAM authentication failed for user "{user}"'
    return f"(1045, \"Access denied for user '{user}'@'127.0.0.1' (using password: YES)\")"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_refusals_follow_iam_changes_under_load(instance: EmulatedInstance) -> None:
    inst = instance
    user = "loaded_user"
    _create_iam_db_user(inst, user)
    iam = boto3.client("iam", region_name=inst.region)
    iam.create_user(UserName="loader")
    policy_arn = iam.create_policy(PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                       "Resource": inst.db_user_arn(user)}]}))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="loader", PolicyArn=policy_arn)
    key = iam.create_access_key(UserName="loader")["AccessKey"]
    rds = boto3.client("rds", region_name=inst.region, aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])
    sign_lock = threading.Lock()  # one botocore client, shared by the loop threads

    def token() -> str:
        with sign_lock:
            return str(rds.generate_db_auth_token(DBHostname=inst.host, Port=inst.port,
                                                  DBUsername=user))

    _login(inst, user, token())  # warm: the endpoint's admin session exists
    time.sleep(0.2)
    fds = _fds()
    stop = threading.Event()
    outcomes: list[tuple[str, float]] = []  # ("ok" or the error text, seconds taken)
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                _login(inst, user, token())
                result = "ok"
            except (psycopg.Error, pymysql.err.Error) as exc:
                result = str(exc)
            with lock:
                outcomes.append((result, time.monotonic() - started))

    changes: list[tuple[str, Callable[[], Any], Reason | None]] = [
        ("policy detached", lambda: iam.detach_user_policy(UserName="loader",
                                                           PolicyArn=policy_arn),
         Reason.NOT_AUTHORIZED),
        ("policy attached again", lambda: iam.attach_user_policy(UserName="loader",
                                                                 PolicyArn=policy_arn), None),
        ("access key deleted", lambda: iam.delete_access_key(UserName="loader",
                                                             AccessKeyId=key["AccessKeyId"]),
         Reason.UNKNOWN_ACCESS_KEY),
    ]
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    marks: list[int] = []  # after each change
    ends: list[int] = []  # before each change: decisions in between may show either state
    first = inst.events.mark()
    for t in threads:
        t.start()
    try:
        _wait_for(inst, first, None)
        for _, change, reason in changes:
            ends.append(inst.events.mark())
            change()
            marks.append(inst.events.mark())
            _wait_for(inst, marks[-1], reason)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads), "a client hangs"

    # clients: logged in, or refused exactly as RDS refuses a token; nothing slow
    refused = _refusal_text(inst, user)
    kinds = {r if r == "ok" else ("refused" if refused in r else r) for r, _ in outcomes}
    assert kinds <= {"ok", "refused"}, kinds
    assert max(seconds for _, seconds in outcomes) < 30  # a loaded 2-core machine

    # events: each phase's reason; at most CLIENTS decisions that were under way at the change
    # may still show the phase before
    starts, ends = [first, *marks], [*ends, inst.events.mark()]
    expected: list[Reason | None] = [None, *(reason for _, _, reason in changes)]
    names = ["start", *(name for name, _, _ in changes)]
    for i, name in enumerate(names):
        got = _iam_reasons(inst, starts[i], ends[i])
        late = [r for r in got if r != expected[i]]
        assert len(got) - len(late) >= 1, (name, got)
        if i == 0:
            assert late == [], (name, got)
        else:
            assert len(late) <= CLIENTS and set(late) <= {expected[i - 1]}, (name, got)
    assert all(e.hint for e in inst.events.since(first) if not e.ok)

    deadline = time.monotonic() + 10
    while (inst.server.active_connections or inst.server.active_tasks or _fds() > fds):
        assert time.monotonic() < deadline, (inst.server.active_connections,
                                             inst.server.active_tasks, _fds(), fds)
        time.sleep(0.05)


def _wait_for(inst: EmulatedInstance, cursor: int, reason: Reason | None,
              timeout: float = 60.0) -> None:
    """Until PHASE_DECISIONS IAM decisions after ``cursor`` had ``reason`` (None: allowed)."""
    deadline = time.monotonic() + timeout
    while sum(r == reason for r in _iam_reasons(inst, cursor, 1 << 62)) < PHASE_DECISIONS:
        assert time.monotonic() < deadline, f"no {reason} decisions within {timeout} s"
        time.sleep(0.05)


def _iam_reasons(inst: EmulatedInstance, start: int, end: int) -> list[Reason | None]:
    """The reasons of this instance's IAM events between two ``mark()`` cursors."""
    return [e.reason for e in inst.events_since(start) if e.seq <= end and e.method == "iam"]
