# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""One "is this an IAM user?" answer on MySQL: the backend handle and the endpoint ask the same
admin client, agree on tricky names, and agree with what the server itself does at login.
"""

from __future__ import annotations

import uuid

import pymysql
import pytest
from mysql_env import MyEnv, emulator_ca, mariadb, myenv  # noqa: F401
from test_mysql_endpoint import connect, make_iam_user, scalar

PASSWORD = "pw-Tricky-1"


def login_resolves_to(handle: object, name: str) -> str | None:
    """The account user a password login as ``name`` lands on (the server's own matching), or
    None when the server refuses it."""
    try:
        conn = pymysql.connect(**handle.address_kwargs(),  # type: ignore[attr-defined]
                               user=name, password=PASSWORD, charset="utf8mb4",
                               connect_timeout=10)
    except pymysql.err.OperationalError as exc:
        assert exc.args[0] == 1045, exc
        return None
    with conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        current = cur.fetchone()[0]
    return str(current).rsplit("@", 1)[0]


def test_handle_endpoint_and_server_login_agree_on_tricky_names(myenv: MyEnv) -> None:
    handle = myenv.backend
    tag = uuid.uuid4().hex[:6]
    iam = [f"tsp_{tag}", f"tsq_{tag}  ", f"Caps_{tag}", f"it's \"q\"`{tag}", f"üñí_{tag}"]
    plain = f"plain_{tag}"
    for name in [*iam, plain]:
        handle.admin_execute("CREATE USER %s@'%%' IDENTIFIED BY %s",  # type: ignore[attr-defined]
                             [name, PASSWORD])
    for name in iam:
        handle.record_iam_user(name)  # type: ignore[attr-defined]
    try:
        probes = sorted({p for n in [*iam, plain]
                         for p in (n, n + "  ", n.rstrip(" "), n.lower(), n.upper(), " " + n,
                                   n.replace("ü", "u"))})
        at_login = {p: login_resolves_to(handle, p) for p in probes}
        expected = {p: at_login[p] in iam for p in probes}
        # the server's own rule, as these names exercise it: exact, trailing spaces count
        assert at_login[f"tsp_{tag}"] == f"tsp_{tag}"
        assert at_login[f"tsp_{tag}  "] is None and at_login[f"tsq_{tag}"] is None
        assert at_login[f"tsq_{tag}  "] == f"tsq_{tag}  "
        assert at_login[f"caps_{tag}"] is None and at_login[f"u\u00f1\u00ed_{tag}"] is None
        assert sum(expected.values()) == len(iam)

        from_handle = {p: handle.is_iam_user(p) for p in probes}  # type: ignore[attr-defined]
        from_endpoint = {p: myenv.loop.run(myenv.endpoint.admin.is_iam_user(p))
                         for p in probes}
        assert from_handle == expected
        assert from_endpoint == expected
    finally:
        for name in [*iam, plain]:
            handle.forget_iam_user(name)  # type: ignore[attr-defined]
            handle.admin_execute("DROP USER IF EXISTS %s@'%%'", [name])  # type: ignore[attr-defined]


def test_a_login_name_with_trailing_spaces_is_not_the_iam_user(myenv: MyEnv) -> None:
    """Through the endpoint: 'u  ' is a password login the server refuses (it has no such
    account), not an IAM login of 'u'; 'u' itself still logs in with its token."""
    user = make_iam_user(myenv)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        connect(myenv, user + "  ", myenv.token(user + "  "))
    assert refused.value.args[0] == 1045
    event = myenv.events.all()[-1]
    assert (event.db_user, event.method, event.outcome) == (user + "  ", "password", "deny")
    with connect(myenv, user, myenv.token(user)) as conn:
        assert scalar(conn, "SELECT CURRENT_USER()") == f"{user}@%"
    assert myenv.events.all()[-1].method == "iam"
