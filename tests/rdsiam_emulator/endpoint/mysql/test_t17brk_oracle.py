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


def test_show_create_user_keeps_default_role(omenv):
    """rds_form replaces everything from IDENTIFIED WITH to REQUIRE; MySQL prints DEFAULT ROLE
    in between, so the role vanishes from the IAM account's SHOW CREATE USER (RDS shows it)."""
    role, user = unique("role"), unique("dr")
    master_sql(omenv, f"CREATE ROLE '{role}'",
               f"CREATE USER '{user}'@'%' {IAM} DEFAULT ROLE '{role}'")
    assert master_sql(omenv, f"SHOW CREATE USER '{user}'@'%'") == [(
        f"CREATE USER `{user}`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' "
        f"DEFAULT ROLE `{role}`@`%` REQUIRE NONE {RDS_TAIL}",)]


def test_show_create_user_of_a_name_containing_identified_with(omenv):
    """rds_form looks for " IDENTIFIED WITH '" from the start of the text, i.e. inside the
    account name: the user name is cut and the answer is garbage."""
    user = "x IDENTIFIED WITH 'y" + unique("")[:4]
    sql_user = user.replace("'", "''")
    master_sql(omenv, f"CREATE USER '{sql_user}'@'%' {IAM}")
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"
    assert master_sql(omenv, f"SHOW CREATE USER '{sql_user}'@'%'") == [(
        f"CREATE USER `{user}`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' "
        f"REQUIRE NONE {RDS_TAIL}",)]


def test_syntax_error_in_iam_ddl_names_the_clients_text(omenv):
    """The replay of a syntax error uses PREPARE ... FROM X'<hex>', which Oracle MySQL's grammar
    rejects (hex literal is not a string literal there): the client gets a 1064 about the
    endpoint's own hex text, also in SHOW WARNINGS."""
    user = unique("se")
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        master_sql(omenv, f"CREATE USER '{user}' {IAM} FOO")
    assert info.value.args[0] == 1064
    assert "near 'FOO' at line 1" in info.value.args[1], info.value.args[1]


def test_rename_chain_keeps_iam(omenv):
    """RENAME USER a TO b, b TO c: the endpoint sets the derived password for the intermediate
    name (gone once the statement ran), so c is neither IAM in the catalog nor loggable."""
    a = unique("rc")
    master_sql(omenv, f"CREATE USER '{a}'@'%' {IAM}")
    master_sql(omenv, f"RENAME USER '{a}'@'%' TO 'n{a}'@'%', 'n{a}'@'%' TO 'nn{a}'@'%'")
    assert omenv.backend.is_iam_user(f"nn{a}")
    assert current_user(omenv, f"nn{a}", omenv.token(f"nn{a}")) == f"nn{a}@%"


def test_rename_swap_keeps_iam(omenv):
    """Swapping an IAM and a password account's names (a->t, b->a, t->b)."""
    a, b = unique("sa"), unique("sb")
    master_sql(omenv, f"CREATE USER '{a}'@'%' {IAM}", f"CREATE USER '{b}'@'%' IDENTIFIED BY 'pwb'")
    master_sql(omenv, f"RENAME USER '{a}'@'%' TO 't{a}'@'%', '{b}'@'%' TO '{a}'@'%', "
                      f"'t{a}'@'%' TO '{b}'@'%'")
    assert current_user(omenv, a, "pwb") == f"{a}@%"
    assert current_user(omenv, b, omenv.token(b)) == f"{b}@%"


def test_executable_comment_iam_ddl(omenv):
    """MySQL runs /*!NNNNN ... */ as code; the DDL tokenizer treats it as a comment: the RDS
    DDL inside one gets 1524 'Plugin not loaded' (RDS accepts it)."""
    user = unique("ec")
    master_sql(omenv, f"CREATE USER '{user}'@'%' /*!80000 {IAM} */")
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"


def test_executable_comment_password_change_is_seen(omenv):
    """ALTER USER iam /*!80000 IDENTIFIED BY 'pw' */ changes the password on the server but the
    catalog keeps the account IAM: the password login is refused (the endpoint asks for a token)
    and the next token login silently puts the derived password back."""
    user = unique("ep")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    master_sql(omenv, f"ALTER USER '{user}'@'%' /*!80000 IDENTIFIED BY 'New-pw-1' */")
    assert current_user(omenv, user, "New-pw-1") == f"{user}@%"


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


def test_query_attributes_bypass_the_ddl_rewriting(omenv):
    """A COM_QUERY that carries query attributes (mysql-connector cursor.add_attribute,
    the mysql CLI's `query_attributes`) is relayed untouched: the RDS DDL gets
    1524 'Plugin not loaded'
    (RDS accepts it). Not among the documented uninspected paths (compressed, prepared, > 1 MB)."""
    user = unique("qa")
    conn = _connector(omenv, *omenv.master)
    try:
        cur = conn.cursor()
        cur.add_attribute("trace", "1")
        cur.execute(f"CREATE USER '{user}'@'%' {IAM}")
    finally:
        conn.close()
    assert current_user(omenv, user, omenv.token(user)) == f"{user}@%"


def test_query_attributes_password_change_is_seen(omenv):
    """ALTER USER iam IDENTIFIED BY 'pw' with a query attribute: the server changes the password,
    the catalog keeps the account IAM, so the new password never logs in (and the next token login
    silently overwrites it); SHOW CREATE USER with an attribute shows the derived password's
    hash."""
    user = unique("qb")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    conn = _connector(omenv, *omenv.master)
    try:
        cur = conn.cursor()
        cur.add_attribute("trace", "1")
        cur.execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'Qa-pw-1'")
    finally:
        conn.close()
    assert current_user(omenv, user, "Qa-pw-1") == f"{user}@%"


@pytest.mark.parametrize("form", ["USER()", "CURRENT_USER()", "CURRENT_USER"])
def test_iam_user_alter_user_own_account_password_is_seen(omenv, form):
    """An IAM user sets its own password with ALTER USER USER()/CURRENT_USER() IDENTIFIED BY (the
    MySQL 8 form of SET PASSWORD = ..., which the endpoint does follow): the server changes the
    password, the catalog keeps the account IAM, so the password never logs in and the next token
    login silently puts the derived password back."""
    user = unique("own")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    with connect(omenv, user, omenv.token(user)) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER USER {form} IDENTIFIED BY 'Own-pw-1'")
    assert not omenv.backend.is_iam_user(user)
    assert current_user(omenv, user, "Own-pw-1") == f"{user}@%"


def test_random_password_on_an_iam_account_is_seen(omenv):
    """ALTER USER iam IDENTIFIED BY RANDOM PASSWORD (MySQL 8.0.18+) answers with a result set
    (user, host, generated password, auth_factor): the endpoint's outcome reader does not
    recognise it, the catalog keeps the account IAM and the generated password is refused (the
    next token login overwrites it)."""
    user = unique("rnd")
    master_sql(omenv, f"CREATE USER '{user}'@'%' {IAM}")
    [(_, _, generated, _)] = master_sql(
        omenv, f"ALTER USER '{user}'@'%' IDENTIFIED BY RANDOM PASSWORD")
    assert current_user(omenv, user, generated) == f"{user}@%"


def test_iam_account_created_beside_a_random_password_one(omenv):
    """CREATE USER a IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS', b IDENTIFIED BY RANDOM
    PASSWORD: the answer is a result set, so a keeps the placeholder and is not catalogued: a's
    token is refused and no one can log in as a."""
    a, b = unique("rna"), unique("rnb")
    master_sql(omenv, f"CREATE USER '{a}'@'%' {IAM}, '{b}'@'%' IDENTIFIED BY RANDOM PASSWORD")
    assert current_user(omenv, a, omenv.token(a)) == f"{a}@%"


def test_host_part_case(omenv):
    """MySQL stores an account's host in lower case ('Ten.Example.COM' -> 'ten.example.com') and
    matches it case-insensitively; the catalog keeps the statement's spelling and compares
    exactly. DROP USER with the server's spelling leaves a stale catalog row, so a new password
    account of the same name is taken for an IAM user and its password is refused (and SHOW
    CREATE USER of the IAM account was never rewritten)."""
    user = unique("hc")
    master_sql(omenv, f"CREATE USER '{user}'@'Ten.Example.COM' {IAM}")
    [(shown,)] = master_sql(omenv, f"SHOW CREATE USER '{user}'@'ten.example.com'")
    assert "AWSAuthenticationPlugin" in shown, shown
    master_sql(omenv, f"DROP USER '{user}'@'ten.example.com'",
               f"CREATE USER '{user}'@'%' IDENTIFIED BY 'Pw-1'")
    assert current_user(omenv, user, "Pw-1") == f"{user}@%"


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


def test_create_then_rename_in_one_multi_statement_query(omenv):
    """docs/mysql.md: the RDS DDL works with several statements per query. CREATE USER a (IAM);
    RENAME USER a TO b in one query: whether a was IAM is looked up before the query runs (a
    does not exist yet), so b is not IAM and its token is refused."""
    a, b = unique("ma"), unique("mb")
    conn = connect(omenv, *omenv.master, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE USER '{a}'@'%' {IAM}; RENAME USER '{a}'@'%' TO '{b}'@'%'")
            while cur.nextset():
                pass
    finally:
        conn.close()
    assert current_user(omenv, b, omenv.token(b)) == f"{b}@%"
