"""``backend = "external"``: the server attaches to a PostgreSQL it did not start (as in compose,
where the database is its own service), logs in through it with IAM tokens, and on SIGTERM
leaves that server running."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from serve_proc import REGION, Serve, free_port, process_gone

from rdsiam_emulator.backends import BackendHandle, BackendSpec, start_local


@pytest.fixture(scope="module")
def pg_server() -> Iterator[BackendHandle]:
    handle = start_local(BackendSpec(engine="postgres", listen_tcp=True))
    try:
        yield handle
    finally:
        handle.stop()


def test_external_postgres(pg_server: BackendHandle, tmp_path: Path) -> None:
    url = (f"postgresql://{quote(pg_server.admin_user)}:{quote(pg_server.admin_password)}"
           f"@127.0.0.1:{pg_server.port}/postgres")
    port = free_port()
    serve = Serve(f'[server]\nport = {port}\nregion = "{REGION}"\n\n[[instances]]\n'
                  f'identifier = "ext"\nengine = "postgres"\nbackend = "external"\n'
                  f'url = "{url}"\niam_db_users = ["app_user"]\n', tmp_path)
    try:
        serve.wait_ready(port)
        serve.ca.write_bytes(serve.get("/_rdsiam/ca.pem").content)
        inst = serve.instance("ext")
        assert inst["backend_pid"] is None and inst["state"] == "available"
        iam = serve.client("iam")
        iam.create_user(UserName="svc")
        iam.put_user_policy(UserName="svc", PolicyName="db", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
            f'"Action": "rds-db:connect", "Resource": "arn:aws:rds-db:{REGION}:123456789012:'
            f'dbuser:{inst["resource_id"]}/app_user"}}]}}'))
        key = iam.create_access_key(UserName="svc")["AccessKey"]
        tok = serve.client("rds", key["AccessKeyId"], key["SecretAccessKey"]) \
            .generate_db_auth_token(DBHostname=inst["host"], Port=inst["port"],
                                    DBUsername="app_user")
        with psycopg.connect(host=inst["host"], hostaddr=inst["address"], port=inst["port"],
                             user="app_user", password=tok, dbname="app",
                             sslmode="verify-full", sslrootcert=str(serve.ca),
                             connect_timeout=20) as conn:
            row = conn.execute("SELECT current_user, inet_server_port()").fetchone()
        # the session really is on the external server (it listens on its own TCP port)
        assert row == ("app_user", pg_server.port)
    except BaseException:
        serve.stop(signal.SIGKILL)
        raise
    assert serve.stop() == 0
    assert serve.stderr() == ""
    assert pg_server.server_pid is not None and not process_gone(pg_server.server_pid)
