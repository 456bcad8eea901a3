# ruff: noqa: F811 - pytest fixtures imported from mysql_env are used as arguments
"""Account DDL through the MySQL endpoint against a real MariaDB (PyMySQL, real TLS).

* what the server says about a rewritten statement never carries the rewrite (issue #12): the
  client, SHOW WARNINGS / SHOW ERRORS and the process list only ever see its own text, and no
  password derived from the instance secret is in any SQL the server runs;
* every statement that changes an account's authentication keeps the IAM catalogue and the
  server in agreement (issue #11): GRANT ... IDENTIFIED, SET PASSWORD.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pymysql
import pytest
from mysql_env import (  # noqa: F401
    MyEnv,
    emulator_ca,
    mariadb,
    myenv,
    unique,
)
from test_mysql_endpoint import connect, make_iam_user, master

from rdsiam_emulator.secrets import derived_password

SECRET = b"s" * 32  # the fixture endpoint's instance secret
MULTI = pymysql.constants.CLIENT.MULTI_STATEMENTS
PARSE_ERROR = ("You have an error in your SQL syntax; check the manual that corresponds to your "
               "MariaDB server version for the right syntax to use near ")


def backend_login(env: MyEnv, user: str, password: str, **kw):
    """Straight to the backend server, around the endpoint."""
    return pymysql.connect(user=user, password=password, connect_timeout=10, **kw)


def rows(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def assert_logs_in(env: MyEnv, user: str, password: str) -> None:
    with connect(env, user, password) as conn:
        assert rows(conn, "SELECT CURRENT_USER()") == ((f"{user}@%",),)


def assert_refused(env: MyEnv, user: str, password: str) -> None:
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(env, user, password)
    assert info.value.args[0] == 1045


# -- issue #12: nothing the rewrite produced reaches the client ----------------------------------
def test_syntax_error_in_iam_ddl_is_answered_for_the_original_text(myenv):
    user = make_iam_user(myenv)
    secret = derived_password(SECRET, user)
    original = f"ALTER USER {user}@%% IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"
    expected = PARSE_ERROR + "'%% IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'' at line 1"
    with master(myenv) as conn:
        with pytest.raises(pymysql.err.ProgrammingError) as info:
            rows(conn, original)
        assert info.value.args == (1064, expected)
        # the session's diagnostics area holds the same error
        assert rows(conn, "SHOW WARNINGS") == (("Error", 1064, expected),)
        assert rows(conn, "SHOW ERRORS") == (("Error", 1064, expected),)
        # the endpoint's own PREPARE left no statement behind and the session goes on
        assert rows(conn, "SELECT 1") == ((1,),)
    assert secret not in repr(info.value)
    assert_logs_in(myenv, user, myenv.token(user))  # the account itself is unharmed


def test_syntax_error_in_a_later_statement_and_on_a_later_line(myenv):
    user, other = unique("iam"), unique("gone")
    query = (f"DROP USER IF EXISTS '{other}'@'%';\nCREATE USER '{user}'\n  @%% "
             "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    expected = PARSE_ERROR + "'%% IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'' at line 2"
    with master(myenv, client_flag=MULTI) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.ProgrammingError) as info:
            cur.execute(query)
            while cur.nextset():
                pass
        assert info.value.args == (1064, expected)
        assert rows(conn, "SHOW WARNINGS") == (("Error", 1064, expected),)
        assert rows(conn, f"SELECT COUNT(*) FROM mysql.user WHERE user = '{user}'") == ((0,),)


@contextlib.contextmanager
def general_log(env: MyEnv) -> Iterator[list[str]]:
    """Every statement the server receives meanwhile (from any session), as text."""
    backend = env.backend
    before = backend.admin_execute("SELECT @@general_log, @@log_output")[0]
    backend.admin_execute("TRUNCATE TABLE mysql.general_log")
    backend.admin_execute("SET GLOBAL log_output = 'TABLE'")
    backend.admin_execute("SET GLOBAL general_log = 1")
    texts: list[str] = []
    try:
        yield texts
    finally:
        backend.admin_execute("SET GLOBAL general_log = %s", [before[0]])
        texts += [str(r[0]) for r in backend.admin_execute(
            "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log")]
        backend.admin_execute("SET GLOBAL log_output = %s", [before[1]])
        backend.admin_execute("TRUNCATE TABLE mysql.general_log")


def test_no_password_derived_from_the_secret_is_in_the_servers_sql(myenv):
    """The server's statement (process list, logs, errors) holds a placeholder, and the endpoint
    sets the real password by its stored hash - also when it renames an IAM user or repairs an
    out-of-step password: the password itself is never in SQL text."""
    user, renamed = unique("iam"), unique("ren")
    with general_log(myenv) as texts:
        make_iam_user(myenv, user)
        assert_logs_in(myenv, user, myenv.token(user))
        with master(myenv) as conn:
            rows(conn, f"RENAME USER '{user}'@'%' TO '{renamed}'@'%'")
        myenv.backend.admin_execute(f"ALTER USER '{renamed}'@'%' IDENTIFIED BY 'stale'")
        assert_logs_in(myenv, renamed, myenv.token(renamed))  # repaired on the way
    ours = [t for t in texts if user in t or renamed in t]
    assert sum("IDENTIFIED BY PASSWORD '*" in t for t in ours) >= 4, ours
    for name in (user, renamed):
        assert not any(derived_password(SECRET, name) in t for t in texts), ours


def test_alter_if_exists_on_a_missing_account_answers_ok_and_records_nothing(myenv):
    user = unique("nosuch")
    with master(myenv) as conn:
        rows(conn, f"ALTER USER IF EXISTS '{user}'@'%' "
                   "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
        notes = rows(conn, "SHOW WARNINGS")  # the server's own notes about the missing account
        assert notes[-1][:2] == ("Note", 1396) and user in notes[-1][2], notes
        assert rows(conn, "SELECT 1") == ((1,),)  # the session goes on
    assert not myenv.backend.is_iam_user(user)


# -- issue #11: every authentication change keeps catalogue and server in agreement --------------
def test_grant_identified_by_turns_an_iam_user_into_a_password_user(myenv):
    user = make_iam_user(myenv)
    with master(myenv) as conn:
        rows(conn, f"GRANT SELECT ON *.* TO '{user}'@'%' IDENTIFIED BY 'granted-pw'")
    assert_logs_in(myenv, user, "granted-pw")
    assert_refused(myenv, user, myenv.token(user))
    assert_logs_in(myenv, user, "granted-pw")  # the failed IAM attempt reset nothing
    assert not myenv.backend.is_iam_user(user)


def test_set_password_for_turns_an_iam_user_into_a_password_user(myenv):
    user = make_iam_user(myenv)
    with master(myenv) as conn:
        rows(conn, f"SET PASSWORD FOR '{user}'@'%' = PASSWORD('set-pw')")
    assert_refused(myenv, user, myenv.token(user))
    assert_logs_in(myenv, user, "set-pw")


def test_an_iam_user_setting_its_own_password_becomes_a_password_user(myenv):
    user = make_iam_user(myenv)
    with connect(myenv, user, myenv.token(user)) as conn:
        rows(conn, "SET PASSWORD = PASSWORD('own-pw')")
    assert_logs_in(myenv, user, "own-pw")
    assert_refused(myenv, user, myenv.token(user))


def test_grant_identified_with_the_plugin_makes_an_iam_user(myenv):
    user = unique("iam")
    with master(myenv) as conn:
        rows(conn, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'before'")
        rows(conn, f"GRANT SELECT ON *.* TO '{user}'@'%' "
                   "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
    assert_logs_in(myenv, user, myenv.token(user))
    assert_refused(myenv, user, "before")


def test_grant_without_identified_leaves_an_iam_user_alone(myenv):
    user = make_iam_user(myenv)
    with master(myenv) as conn:
        rows(conn, f"GRANT INSERT ON *.* TO '{user}'@'%'")
    assert_logs_in(myenv, user, myenv.token(user))


def test_set_password_after_change_user_acts_for_the_new_user(myenv):
    import mysql.connector

    iam, other = make_iam_user(myenv), unique("pw")
    with master(myenv) as conn:
        rows(conn, f"CREATE USER '{other}'@'%' IDENTIFIED BY 'first'")
    conn = mysql.connector.connect(host="localhost", port=myenv.port, user=iam,
                                   password=myenv.token(iam), ssl_ca=myenv.ca_file,
                                   auth_plugin="mysql_clear_password", use_pure=True)
    try:
        conn.cmd_change_user(username=other, password="first")
        cur = conn.cursor()
        cur.execute("SET PASSWORD = PASSWORD('second')")
    finally:
        conn.close()
    assert_logs_in(myenv, other, "second")
    assert_logs_in(myenv, iam, myenv.token(iam))  # the first login's user is still IAM


# -- issue #17: statements followed in order, executable comments, own account, host case -----
IAM = "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"


def test_rename_chain_keeps_iam(myenv):
    a = make_iam_user(myenv)
    with master(myenv) as conn:
        rows(conn, f"RENAME USER '{a}'@'%' TO 'n{a}'@'%', 'n{a}'@'%' TO 'nn{a}'@'%'")
    assert myenv.backend.is_iam_user(f"nn{a}")
    assert not myenv.backend.is_iam_user(f"n{a}") and not myenv.backend.is_iam_user(a)
    assert_logs_in(myenv, f"nn{a}", myenv.token(f"nn{a}"))


def test_rename_swap_keeps_iam(myenv):
    a, b = make_iam_user(myenv), unique("pw")
    with master(myenv) as conn:
        rows(conn, f"CREATE USER '{b}'@'%' IDENTIFIED BY 'pwb'")
        rows(conn, f"RENAME USER '{a}'@'%' TO 't{a}'@'%', '{b}'@'%' TO '{a}'@'%', "
                   f"'t{a}'@'%' TO '{b}'@'%'")
    assert_logs_in(myenv, a, "pwb")
    assert_logs_in(myenv, b, myenv.token(b))
    assert_refused(myenv, a, myenv.token(a))


def test_create_then_rename_in_one_multi_statement_query(myenv):
    a, b = unique("ma"), unique("mb")
    with master(myenv, client_flag=MULTI) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{a}'@'%' {IAM}; RENAME USER '{a}'@'%' TO '{b}'@'%'")
        while cur.nextset():
            pass
    assert_logs_in(myenv, b, myenv.token(b))
    assert not myenv.backend.is_iam_user(a)


@pytest.mark.parametrize("opener", ["/*!", "/*!100000", "/*M!100000"])
def test_executable_comment_iam_ddl(myenv, opener):
    user = unique("ec")
    with master(myenv) as conn:
        rows(conn, f"CREATE USER '{user}'@'%' {opener} {IAM} */")
        rows(conn, f"ALTER USER '{user}'@'%' {opener} IDENTIFIED BY 'Ec-pw-1' */")
    assert_logs_in(myenv, user, "Ec-pw-1")
    assert not myenv.backend.is_iam_user(user)


def test_a_comment_for_a_later_version_is_not_run(myenv):
    user = unique("ec")
    with master(myenv) as conn:
        rows(conn, f"CREATE USER '{user}'@'%' {IAM} /*!999999 IDENTIFIED BY 'x' */")
    assert_logs_in(myenv, user, myenv.token(user))


@pytest.mark.parametrize("form", ["CURRENT_USER()", "CURRENT_USER"])
def test_alter_user_own_account_is_a_no_op_on_mariadb(myenv, form):
    """MariaDB (10.11) answers OK to ALTER USER CURRENT_USER() IDENTIFIED BY ... but leaves the
    password as it was (seen on a password account too; it has no ALTER USER USER()): the
    endpoint follows the server, the IAM user stays one. Oracle MySQL changes the password:
    test_oracle_mysql.py::test_iam_user_alter_user_own_account_password_is_seen."""
    user, other = make_iam_user(myenv), unique("pw")
    with master(myenv) as conn:
        rows(conn, f"CREATE USER '{other}'@'%' IDENTIFIED BY 'Pw-1'")
        rows(conn, f"GRANT CREATE USER ON *.* TO '{user}'@'%', '{other}'@'%'")
    for name, password in ((user, myenv.token(user)), (other, "Pw-1")):
        with connect(myenv, name, password) as conn:
            rows(conn, f"ALTER USER {form} IDENTIFIED BY 'Own-pw-1'")
    assert_logs_in(myenv, other, "Pw-1")  # the server's behaviour
    assert_refused(myenv, other, "Own-pw-1")
    assert myenv.backend.is_iam_user(user)
    assert_logs_in(myenv, user, myenv.token(user))
    assert_refused(myenv, user, "Own-pw-1")


def test_host_part_case(myenv):
    user = unique("hc")
    with master(myenv) as conn:
        rows(conn, f"CREATE USER '{user}'@'Ten.Example.COM' {IAM}")
        assert rows(conn, f"SELECT Host FROM mysql.user WHERE User = '{user}'") == (
            ("ten.example.com",),)  # the server's rule the catalog follows
        [(shown,)] = rows(conn, f"SHOW CREATE USER '{user}'@'ten.example.com'")
        assert "AWSAuthenticationPlugin" in shown, shown
        rows(conn, f"DROP USER '{user}'@'TEN.example.com'")
        rows(conn, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'Pw-1'")
    assert_logs_in(myenv, user, "Pw-1")


def test_show_create_user_of_a_name_containing_the_servers_clause(myenv):
    user = "x IDENTIFIED BY PASSWORD '*" + "A" * 40 + "' " + unique("")[:4]
    sql_user = user.replace("'", "''")
    with master(myenv) as conn:
        rows(conn, f"CREATE USER '{sql_user}'@'%' {IAM}")
        [(shown,)] = rows(conn, f"SHOW CREATE USER '{sql_user}'@'%'")
    assert shown == (f"CREATE USER `{user}`@`%` IDENTIFIED VIA AWSAuthenticationPlugin "
                     "USING 'RDS'")
    assert_logs_in(myenv, user, myenv.token(user))
