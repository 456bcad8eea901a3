"""The admin client of a PostgreSQL reader endpoint in an emulated Aurora cluster.

A hot standby cannot store an IAM user's derived password (``ALTER ROLE`` is a write), so the
reader's endpoint stores it through the writer's admin client and waits until its own server has
replayed that change before retrying the login. Everything else reads the reader's own server.
"""

from __future__ import annotations

import asyncio

from rdsiam_emulator.endpoint.backend import BackendAddress, BackendUnreachable
from rdsiam_emulator.endpoint.postgres_admin import AdminClient
from rdsiam_emulator.protocols.postgres.query import quote_literal


class ReplicaAdminClient(AdminClient):
    """``AdminClient`` of a cluster member; ``writer`` is the current writer's admin client, None
    while this member is the writer (swap it on failover).

    ``timeout``: seconds for each query and for the replay wait."""

    def __init__(self, target: BackendAddress, writer: AdminClient | None = None, *,
                 timeout: float = 10.0) -> None:
        super().__init__(target, timeout=timeout)
        self.writer = writer

    async def set_password(self, user: str, password: str) -> None:
        """Store the password on the writer, then wait for this replica to replay it.

        Raises ``BackendUnreachable`` when either server fails or the replay takes longer than
        the timeout."""
        if self.writer is None:
            await super().set_password(user, password)
            return
        await self.writer.set_password(user, password)
        result = await self.writer.query("SELECT pg_current_wal_insert_lsn()")
        if result.error is not None or not result.rows:
            raise BackendUnreachable("cannot read the writer's WAL position")
        lsn = quote_literal(str(result.rows[0][0]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            done = await self.query(f"SELECT pg_last_wal_replay_lsn() >= {lsn}::pg_lsn")
            if done.error is None and done.rows and done.rows[0][0] == "t":
                return
            if loop.time() > deadline:
                raise BackendUnreachable(f"the replica did not replay the password within "
                                         f"{self._timeout} s")
            await asyncio.sleep(0.01)
