"""#13 break-it: ``MysqlHandle.is_iam_user`` promises ``BackendError`` when the server cannot be
reached or refuses; a server that answers a new connection with an ERR packet instead of its
greeting (1040 Too many connections) makes it raise the MySQL protocol layer's ``ProtocolError``
(a ValueError) instead. Before #13 the handle's pymysql path wrapped that as ``BackendError``."""

from __future__ import annotations

import pymysql
import pytest

from rdsiam_emulator.backends import BackendSpec, start_local
from rdsiam_emulator.backends.errors import BackendError


def test_is_iam_user_on_a_full_server_raises_backend_error() -> None:
    handle = start_local(BackendSpec(engine="mysql", provider="local"))
    held: list[pymysql.connections.Connection] = []
    try:
        assert handle.is_iam_user("nobody") is False
        handle.admin_execute("SET GLOBAL max_connections = 10")  # the server's minimum
        kwargs = handle.dsn(handle.master_user, handle.master_password)
        for _ in range(30):  # fill every slot, the privileged extra one included
            try:
                held.append(pymysql.connect(**kwargs, connect_timeout=10))
            except pymysql.err.OperationalError as exc:
                assert exc.args[0] == 1040, exc
                break
        else:
            pytest.fail("the server never refused a connection")
        with pytest.raises(BackendError):
            handle.is_iam_user("nobody")
    finally:
        for conn in held:
            conn.close()
        handle.stop()
