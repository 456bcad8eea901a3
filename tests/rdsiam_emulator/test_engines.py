"""The engine objects: names parse, each engine answers its own facts, no string branches."""

import pytest

from rdsiam_emulator.auth.explain import CLIENT_MESSAGES
from rdsiam_emulator.backends.external import parse_admin_url
from rdsiam_emulator.backends.spec import BackendSpec
from rdsiam_emulator.engines import ENGINE_NAMES, ENGINES, MYSQL, POSTGRES, ConnectTarget, engine

TARGET = ConnectTarget(host="db.example", hostaddr="127.0.0.1", port=4321, user="u",
                       password="p", dbname="d", ca_bundle="/ca.pem")


def test_names_parse_to_the_one_object_per_engine():
    assert ENGINE_NAMES == ("postgres", "mysql")
    assert engine("postgres") is POSTGRES and engine("mysql") is MYSQL
    assert engine(MYSQL) is MYSQL
    assert [e.name for e in ENGINES.values()] == list(ENGINE_NAMES)
    with pytest.raises(ValueError, match="engine must be one of"):
        engine("oracle")


def test_connect_kwargs_have_each_drivers_shape():
    assert POSTGRES.connect_kwargs(TARGET) == {
        "host": "db.example", "hostaddr": "127.0.0.1", "port": 4321, "user": "u",
        "password": "p", "dbname": "d", "sslmode": "verify-full", "sslrootcert": "/ca.pem"}
    assert MYSQL.connect_kwargs(TARGET) == {
        "host": "db.example", "port": 4321, "user": "u", "password": "p", "database": "d",
        "ssl": {"ca": "/ca.pem"}}


def test_iam_user_ddl_quotes_names():
    assert POSTGRES.iam_user_ddl('a"b', "x\"y") == (
        'CREATE USER "a""b"', 'GRANT rds_iam TO "a""b"',
        'GRANT ALL PRIVILEGES ON DATABASE "x""y" TO "a""b"', 'GRANT ALL ON SCHEMA public TO "a""b"')
    assert MYSQL.iam_user_ddl("o'k\\", "d`b") == (
        "CREATE USER 'o''k\\\\'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'",
        "GRANT ALL PRIVILEGES ON `d``b`.* TO 'o''k\\\\'@'%'")


def test_backend_facts_come_from_the_engine():
    assert BackendSpec("mysql").master_user == MYSQL.default_master == "admin"
    assert BackendSpec("postgres").resolved_image({"RDSIAM_POSTGRES_IMAGE": "x:1"}) == "x:1"
    assert parse_admin_url("mariadb://root@h/", "mysql")["port"] == MYSQL.default_port
    with pytest.raises(ValueError, match="does not match engine"):
        parse_admin_url("mysql://root@h/", "postgres")
    messages = dict(CLIENT_MESSAGES)
    assert messages == {"postgres": POSTGRES.iam_refusal_text, "mysql": MYSQL.iam_refusal_text}


def test_the_refusal_a_client_prints_is_rendered_from_what_the_endpoint_sends():
    from rdsiam_emulator.endpoint.mysql_relay import refusal_packet
    from rdsiam_emulator.protocols.mysql.messages import access_denied
    from rdsiam_emulator.reasons import Reason

    assert POSTGRES.iam_refusal_text == (
        'FATAL:  PAM authentication failed for user "{user}" (SQLSTATE 28000)')
    assert MYSQL.iam_refusal_text == (
        "ERROR 1045 (28000): Access denied for user '{user}'@'<client ip>' (using password: YES)")
    sent = refusal_packet(Reason.NOT_AUTHORIZED, "app", "10.0.0.7")
    # the IAM refusal is byte for byte the server's own 1045 for a wrong password
    assert sent.build() == access_denied("app", "10.0.0.7").build()
    assert MYSQL.iam_refusal_text.format(user="app").replace("<client ip>", "10.0.0.7") == (
        f"ERROR {sent.code} ({sent.sqlstate}): {sent.message}")
