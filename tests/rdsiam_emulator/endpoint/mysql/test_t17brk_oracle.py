# ruff: noqa: F811, F401 - pytest fixtures imported from other modules are used as arguments
"""Reproducers from the trial-17 break review (Oracle MySQL path). Each test FAILS because of a
defect; run one with
    .venv/bin/python -m pytest tests/rdsiam_emulator/endpoint/mysql/test_t17brk_oracle.py -k NAME
"""

from __future__ import annotations

import pymysql
import pytest
from mysql_env import emulator_ca, unique
from oracle_env import podman_env
from test_oracle_mysql import RDS_TAIL, connect, current_user, master_sql, omenv, oracle_mysql

pytestmark = pytest.mark.containers

IAM = "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"


def test_realter_iam_user_with_password_history_locks_it_out(omenv):
    """PASSWORD HISTORY (or the password_history variable / PASSWORD REUSE INTERVAL): re-running
    the RDS ALTER USER on an IAM account makes the admin's derived-password ALTER fail with 3638:
    the client's connection is dropped (2013) and the account keeps the placeholder, so every
    token login fails for good (the repair hits 3638 too)."""
    user = unique("ph")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM} PASSWORD HISTORY 2")
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"
    master_sql(omenv, f"ALTER USER '{user}'@'%' {IAM}")  # observed: OperationalError 2013
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"  # observed: 1045


def test_trailing_space_iam_user_gets_bad_handshake(omenv):
    """docs/mysql.md: an IAM user created as 'u ' logs in as 'u ' (names compare exactly). On
    Oracle MySQL the account is stored as 'u', the token is accepted (event ok) and the client
    gets ERROR 1043 'Bad handshake' - neither a login nor RDS's 1045."""
    user = unique("ts") + " "
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    try:
        assert current_user(omenv, user, omenv.token(user)) == f"{user.rstrip()}@%"
    except pymysql.err.OperationalError as exc:
        legs = [leg.server_login_packets() for leg in omenv.tap.legs
                if (leg.login_user() or "").startswith(user.rstrip())]
        pytest.fail(f"{exc.args!r}; events {[(e.ok, e.reason) for e in omenv.events.all()]}; "
                    f"backend answered {[[p.payload[:60] for p in leg] for leg in legs]!r}")


def test_iam_login_whose_account_is_gone_gets_1045_not_bad_handshake(omenv):
    """The catalog says IAM but the server has no such account (dropped where the endpoint does
    not look, here a prepared statement - documented as not inspected). Oracle MySQL answers a
    login for an unknown account with an AuthSwitchRequest to sha256_password; the endpoint's
    backend login does not expect it: the client gets 1043 'Bad handshake' and the event log says
    the login succeeded ("token accepted", ok) instead of RDS's 1045 and a failure reason."""
    user = unique("gone")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"
    master_sql(omenv, f"PREPARE s FROM 'DROP USER ''{user}''@''%'''", "EXECUTE s")
    before = len(omenv.events.all())
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(omenv, user, omenv.token(user))
    assert info.value.args == (
        1045, f"Access denied for user '{user}'@'127.0.0.1' (using password: YES)")
    assert not any(e.ok for e in omenv.events.all()[before:])


def test_concurrent_iam_and_password_alter_leave_a_usable_account(omenv):
    """Two sessions at once: ALTER USER x IDENTIFIED WITH AWSAuthenticationPlugin and ALTER USER
    x IDENTIFIED BY 'pw'. The server runs them in some order, but the endpoint's catalog write and
    derived-password ALTER come later, unordered with the other session's: seen (about 1 in 6)
    the server keeps the derived password while the catalog says "not IAM", so neither the token
    nor the password logs in. Nondeterministic: up to 12 tries."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    def works(user: str, password: str) -> bool:
        try:
            return current_user(omenv, user, password) == f"{user}@%"
        except pymysql.err.OperationalError:
            return False

    for _ in range(12):
        user = unique("race")
        master_sql(omenv, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'Pw-x'")
        conns = [connect(omenv, *omenv.master) for _ in range(2)]
        barrier = threading.Barrier(2)
        sqls = [f"ALTER USER '{user}'@'%' {IAM}", f"ALTER USER '{user}'@'%' IDENTIFIED BY 'Pw-y'"]

        def run(k: int, barrier=barrier, conns=conns, sqls=sqls) -> None:
            barrier.wait()
            with conns[k].cursor() as cur:
                cur.execute(sqls[k])

        try:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(run, range(2)))
        finally:
            for conn in conns:
                conn.close()
        by_token, by_password = works(user, omenv.token(user)), works(user, "Pw-y")
        assert by_token != by_password, (user, by_token, by_password,
                                         omenv.backend.is_iam_user(user))


def _connector(env, user: str, password: str):
    import mysql.connector

    return mysql.connector.connect(host="127.0.0.1", port=env.port, user=user, password=password,
                                   ssl_ca=env.ca_file, ssl_verify_cert=True, use_pure=True,
                                   connection_timeout=10)


def test_iam_user_with_validate_password_component(omenv):
    """With MySQL's validate_password component (policy MEDIUM, its default; RDS MySQL supports
    it), the RDS DDL fails with 1819 'Your password does not satisfy the current policy
    requirements': the endpoint's placeholder (48 lowercase hex digits) and then its derived
    password (alphanumeric, no special character) are passwords the policy judges - on RDS an
    AWSAuthenticationPlugin account has no password to validate."""
    user = unique("vp")
    master_sql(omenv, "INSTALL COMPONENT 'file://component_validate_password'")
    try:
        master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
        assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"
    finally:
        master_sql(omenv, "UNINSTALL COMPONENT 'file://component_validate_password'")


def test_sha256_password_account_over_tls(omenv):
    """A password account with sha256_password (still in MySQL 8.0/8.4/9.7, RDS supports it): a
    client on TLS answers the server's switch with the password in clear, which the endpoint
    relays onto its plain link to the server, which refuses it (1045, event password_mismatch).
    The same client without TLS logs in. caching_sha2_password's full authentication is re-driven
    with RSA; sha256_password's is not."""
    user = unique("s256")
    master_sql(omenv, f"CREATE USER '{user}'@'%' IDENTIFIED WITH sha256_password BY 'S2-pw-1'")
    plain = pymysql.connect(host="localhost", port=omenv.port, user=user, password="S2-pw-1",
                            ssl_disabled=True, connect_timeout=10)
    plain.close()
    assert current_user(omenv, user, "S2-pw-1") == f"{user}@%"


def test_change_user_to_an_iam_user_whose_account_is_gone(omenv):
    """COM_CHANGE_USER to a catalogued IAM user the server no longer has (dropped through a
    prepared statement): the server's AuthSwitchRequest to sha256_password is not expected, the
    client loses its connection (2013) and the event log records a success."""
    import mysql.connector

    user = unique("cgone")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}",
               f"PREPARE s FROM 'DROP USER ''{user}''@''%'''", "EXECUTE s")
    conn = _connector(omenv, *omenv.master)
    before = len(omenv.events.all())
    try:
        with pytest.raises(mysql.connector.Error) as info:
            conn.cmd_change_user(username=user, password=omenv.token(user, host="127.0.0.1"))
    finally:
        conn.close()
    assert info.value.errno == 1045, info.value
    assert not any(e.ok for e in omenv.events.all()[before:])


def test_locked_iam_account_error_names_the_client_address(omenv):
    """ACCOUNT LOCK: the server's 3118 is relayed as is, naming the endpoint's own address on the
    container network ('u'@'10.88.0.1') instead of the client's, as the 1045 text is re-worded."""
    user = unique("lock")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM} ACCOUNT LOCK")
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(omenv, user, omenv.token(user))
    assert info.value.args == (
        3118, f"Access denied for user '{user}'@'127.0.0.1'. Account is locked.")


def test_master_sees_and_can_lock_the_emulators_catalog(omenv):
    """The emulator's own schema rdsiam_catalog is in the master's SHOW DATABASES (not on RDS),
    and the master's LOCK TABLES on it makes every other client's login - IAM and password -
    hang ~10 s and end with 2013 'Lost connection'."""
    iam, pw = unique("lk"), unique("lp")
    master_sql(omenv, f"CREATE USER '{iam}'@'%' {IAM}",
               f"CREATE USER '{pw}'@'%' IDENTIFIED BY 'Pw-1'")
    holder = connect(omenv, *omenv.master)
    try:
        with holder.cursor() as cur:
            cur.execute("SHOW DATABASES")
            databases = [row[0] for row in cur.fetchall()]
            cur.execute("LOCK TABLES rdsiam_catalog.iam_users WRITE")
        import time
        time.sleep(1.5)  # the endpoint's catalog copy is at most 1 s old
        assert current_user(omenv, pw, "Pw-1") == f"{pw}@%"
        assert current_user(omenv, iam, omenv.token(iam)) == f"{iam}@%"
    finally:
        with holder.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        holder.close()
    assert "rdsiam_catalog" not in databases


def test_failed_multi_user_drop_keeps_the_iam_user(omenv):
    """MySQL runs DROP USER a, typo atomically: 1396, a still exists. The endpoint applies
    MariaDB's partial rule (docs/mysql.md mentions it for CREATE only) and forgets a: a's token
    is refused from then on while its account (with the derived password) stays."""
    user = unique("dd")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    with pytest.raises(pymysql.err.OperationalError) as info:
        master_sql(omenv, f"DROP USER '{user}'@'%', 'typo{user}'@'%'")
    assert info.value.args[0] == 1396
    assert master_sql(omenv, f"SELECT user FROM mysql.user WHERE user = '{user}'") == [(user,)]
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"


def test_failed_multi_user_alter_leaves_the_password(omenv):
    """ALTER USER pw IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS', typo ... fails atomically
    on MySQL (nothing changed), yet the endpoint gives pw the derived password and catalogues it
    IAM: the account's real password stops working after a statement that failed."""
    user = unique("da")
    master_sql(omenv, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'Pw-1'")
    with pytest.raises(pymysql.err.OperationalError) as info:
        master_sql(omenv, f"ALTER USER '{user}'@'%' {IAM}, 'typo{user}'@'%' {IAM}")
    assert info.value.args[0] == 1396
    assert current_user(omenv, user, "Pw-1") == f"{user}@%"
