"""One "is this an IAM user?" rule: the backend handle (sync, psycopg) and the endpoint's admin
client (async, our protocol client) run the same SQL and agree on a real PostgreSQL 15."""

from __future__ import annotations

import asyncio
import uuid

from pg_env import PgServer

from rdsiam_emulator.endpoint.backend import BackendAddress
from rdsiam_emulator.endpoint.postgres_admin import AdminClient


def test_handle_and_endpoint_agree_on_who_is_an_iam_user(pg_server: PgServer) -> None:
    tag = uuid.uuid4().hex[:8]
    direct, indirect, plain, group = (f"{n}_{tag}" for n in ("direct", "indirect", "plain", "grp"))
    su_member, su_plain = f"su_member_{tag}", f"su_plain_{tag}"
    pg_server.sql(
        f"CREATE ROLE {direct} LOGIN", f"GRANT rds_iam TO {direct}",
        f"CREATE ROLE {group} NOLOGIN", f"GRANT rds_iam TO {group}",
        f"CREATE ROLE {indirect} LOGIN", f"GRANT {group} TO {indirect}",
        f"CREATE ROLE {plain} LOGIN",
        f"CREATE ROLE {su_member} LOGIN SUPERUSER", f"GRANT rds_iam TO {su_member}",
        f"CREATE ROLE {su_plain} LOGIN SUPERUSER",
    )
    expected = {direct: True, indirect: True, group: True, plain: False,
                su_member: True,  # membership decides, as for the RDS master user
                su_plain: False,  # pg_has_role would say True for any superuser
                f"missing_{tag}": False, "it's \"odd\"": False}

    async def endpoint_answers() -> dict[str, bool]:
        admin = AdminClient(BackendAddress.from_handle(pg_server.handle), timeout=10)
        try:
            return {user: await admin.is_iam_user(user) for user in expected}
        finally:
            await admin.close()

    handle = {user: pg_server.handle.is_iam_user(user) for user in expected}
    endpoint = asyncio.run(endpoint_answers())
    assert handle == expected
    assert endpoint == expected
