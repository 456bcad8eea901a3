"""SHOW CREATE USER rewriting, sans-I/O: recognising the statement, finding the account in the
server's text, swapping the clause, and reading the result set with and without
CLIENT_DEPRECATE_EOF. The end-to-end checks against real servers are in
endpoint/mysql/test_oracle_mysql.py."""

import pytest

from rdsiam_emulator.protocols.mysql.ddl import Account
from rdsiam_emulator.protocols.mysql.packets import Packet, lenenc_bytes
from rdsiam_emulator.protocols.mysql.show_create import (
    MARIADB_IAM_CLAUSE,
    MYSQL_IAM_CLAUSE,
    ResultSetReader,
    account_in,
    is_show_create_user,
    rds_form,
    single_text_value,
)

MYSQL9 = (b"CREATE USER `a``b`@`10.%` IDENTIFIED WITH 'caching_sha2_password' AS "
          b"'$A$00A$,\x08,/ REQUIRE\x01tHkLB.5ofLmvsaIHbeKeJyzVcpUoIwX.V5DWTpZSDVCuF0' "
          b"REQUIRE SSL PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK")


@pytest.mark.parametrize(("sql", "expected"), [
    ("SHOW CREATE USER 'a'@'%'", True),
    ("  show /* c */ create\nuser a;", True),
    ("SHOW CREATE USER CURRENT_USER()", True),
    ("SHOW CREATE USER a; SELECT 1", False),
    ("SHOW CREATE TABLE user", False),
    ("CREATE USER a", False),
])
def test_is_show_create_user(sql, expected):
    assert is_show_create_user(sql) is expected


def test_account_in_unquotes_backquotes():
    assert account_in(MYSQL9) == Account("a`b", "10.%")
    assert account_in(b"CREATE USER `u`@`%`") == Account("u", "%")
    assert account_in(b"CREATE ROLE `u`@`%`") is None
    assert account_in(b"CREATE USER `u`") is None


def test_rds_form_mysql_keeps_everything_after_require():
    # a salt byte sequence that happens to read " REQUIRE" sits inside the quoted hash without
    # the following space, so the clause still ends at the real REQUIRE
    assert rds_form(MYSQL9, mariadb=False) == (
        b"CREATE USER `a``b`@`10.%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' "
        b"REQUIRE SSL PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK")
    assert rds_form(b"CREATE USER `u`@`%` REQUIRE NONE", mariadb=False) is None


def test_rds_form_mariadb():
    text = b"CREATE USER `u`@`%` IDENTIFIED BY PASSWORD '*" + b"A1" * 20 + b"' REQUIRE SSL"
    assert rds_form(text, mariadb=True) == (
        b"CREATE USER `u`@`%` IDENTIFIED VIA AWSAuthenticationPlugin USING 'RDS' REQUIRE SSL")
    assert rds_form(b"CREATE USER `u`@`%`", mariadb=True) is None


def _result(deprecate_eof: bool) -> list[Packet]:
    coldef = b"\x03def" + b"\x00" * 12
    out = [Packet(1, b"\x01"), Packet(2, coldef)]
    if not deprecate_eof:
        out.append(Packet(3, b"\xfe\x00\x00\x02\x00"))
    out.append(Packet(len(out) + 1, lenenc_bytes(b"x" * 300)))
    out.append(Packet(len(out) + 1, b"\xfe\x00\x00\x02\x00\x00\x00"))
    return out


@pytest.mark.parametrize("deprecate_eof", [False, True])
def test_result_set_reader_finds_the_row(deprecate_eof):
    reader = ResultSetReader(deprecate_eof)
    packets = _result(deprecate_eof)
    done = [reader.feed(p) for p in packets]
    assert done == [False] * (len(packets) - 1) + [True]
    assert reader.rows == [len(packets) - 2]
    assert single_text_value(packets[reader.rows[0]].payload) == b"x" * 300


def test_result_set_reader_error_and_ok_end_at_once():
    assert ResultSetReader(False).feed(Packet(1, b"\xff\x7c\x05#HY000no such user"))
    assert ResultSetReader(True).feed(Packet(1, b"\x00\x00\x00\x02\x00"))


def test_rds_form_shows_the_tls_requirement_the_endpoint_keeps():
    mysql = MYSQL9.replace(b"REQUIRE SSL", b"REQUIRE NONE")
    iam = b"CREATE USER `a``b`@`10.%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' "
    assert rds_form(mysql, mariadb=False, tls_required=True) == (
        iam + b"REQUIRE SSL PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK")
    assert rds_form(mysql, mariadb=False) == (
        iam + b"REQUIRE NONE PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK")
    maria = b"CREATE USER `u`@`%` IDENTIFIED BY PASSWORD '*" + b"A" * 40 + b"'"
    shown = b"CREATE USER `u`@`%` IDENTIFIED VIA AWSAuthenticationPlugin USING 'RDS'"
    assert rds_form(maria, mariadb=True, tls_required=True) == shown + b" REQUIRE SSL"
    assert rds_form(maria + b" PASSWORD EXPIRE", mariadb=True, tls_required=True) == (
        shown + b" REQUIRE SSL PASSWORD EXPIRE")
    assert rds_form(maria, mariadb=True) == shown


# -- issue #17 -------------------------------------------------------------------------------------
def test_rds_form_keeps_the_default_roles():
    text = (b"CREATE USER `u`@`%` IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$xy' "
            b"DEFAULT ROLE `r REQUIRE x`@`%`,`r2`@`h` REQUIRE NONE PASSWORD EXPIRE DEFAULT")
    assert rds_form(text, mariadb=False, tls_required=True) == (
        b"CREATE USER `u`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' "
        b"DEFAULT ROLE `r REQUIRE x`@`%`,`r2`@`h` REQUIRE SSL PASSWORD EXPIRE DEFAULT")


@pytest.mark.parametrize("mariadb", [False, True])
def test_rds_form_looks_for_the_clause_after_the_account(mariadb):
    name = (b"x IDENTIFIED BY PASSWORD '*" + b"B" * 40 + b"' y" if mariadb
            else b"x IDENTIFIED WITH 'y REQUIRE z")
    clause = (b"IDENTIFIED BY PASSWORD '*" + b"A" * 40 + b"'" if mariadb
              else b"IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$xy'")
    text = b"CREATE USER `" + name + b"`@`%` " + clause + b" REQUIRE NONE"
    iam = MARIADB_IAM_CLAUSE if mariadb else MYSQL_IAM_CLAUSE
    assert rds_form(text, mariadb=mariadb) == (
        b"CREATE USER `" + name + b"`@`%` " + iam + b" REQUIRE NONE")
    # no clause right after the account (MySQL) or none at all (MariaDB): not rewritten
    assert rds_form(b"CREATE USER `" + name + b"`@`%` REQUIRE NONE", mariadb=mariadb) is None
