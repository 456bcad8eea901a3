"""asyncpg with an IAM token; asyncpg resolves the RDS-style name through the emulator."""

import asyncio
import ssl

import asyncpg


def test_asyncpg_login(rds_iam_db):
    rds_iam_db.create_iam_db_user("app_user")
    token = rds_iam_db.generate_token("app_user", rds_iam_db.iam_session("app_user"))

    async def main():
        tls = ssl.create_default_context(cafile=rds_iam_db.ca_bundle)
        conn = await asyncpg.connect(host=rds_iam_db.host, port=rds_iam_db.port,
                                     user="app_user", password=token,
                                     database=rds_iam_db.dbname, ssl=tls)
        try:
            return await conn.fetchval("select current_user")
        finally:
            await conn.close()

    assert asyncio.run(main()) == "app_user"
