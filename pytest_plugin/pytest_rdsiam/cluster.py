"""The object a test gets from ``rds_iam_cluster``: one emulated Aurora cluster with real
replicas (docs/aurora.md). Everything here is public contract (docs/pytest.md)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import boto3

from pytest_rdsiam.db import TestClock, connect_session
from rdsiam_emulator.backends.replication import wait_for_replay
from rdsiam_emulator.clusters import EmulatedCluster
from rdsiam_emulator.engines import ConnectTarget, EngineName
from rdsiam_emulator.events import AuthEvent

_iam_names = itertools.count(1)
_IAM_UNSAFE = re.compile(r"[^\w+=,.@-]")


class RdsIamCluster:
    """An Aurora cluster with IAM database authentication, as a test sees it."""

    def __init__(self, cluster: EmulatedCluster, clock: TestClock, events_cursor: int) -> None:
        self.cluster = cluster
        self.clock = clock
        self._cursor = events_cursor

    @property
    def engine(self) -> EngineName:
        """``"postgres"`` (aurora-postgresql) or ``"mysql"`` (aurora-mysql, on MariaDB)."""
        return self.cluster.engine

    @property
    def cluster_id(self) -> str:
        """The DB cluster identifier."""
        return self.cluster.cluster_id

    @property
    def host(self) -> str:
        """The cluster (writer) endpoint: ``<c>.cluster-<label>.<region>.rds.amazonaws.com``."""
        return self.cluster.host

    @property
    def reader_host(self) -> str:
        """The reader endpoint: ``<c>.cluster-ro-<label>.<region>.rds.amazonaws.com``; new
        connections go to the readers in turn."""
        return self.cluster.reader_host

    @property
    def writer_host(self) -> str:
        """The current writer's instance endpoint (changes with ``failover``)."""
        return self.cluster.writer.host

    @property
    def reader_instance_hosts(self) -> tuple[str, ...]:
        """The current readers' instance endpoints."""
        return tuple(r.host for r in self.cluster.readers)

    @property
    def instance_hosts(self) -> dict[str, str]:
        """Every member's instance endpoint by instance identifier."""
        return {i: m.host for i, m in self.cluster.members.items()}

    @property
    def port(self) -> int:
        """The one port of every endpoint of the cluster."""
        return self.cluster.port

    def hostaddr(self, host: str | None = None) -> str:
        """The loopback address ``host`` (default: the cluster endpoint) listens on, for clients
        that resolve names in C (libpq's ``hostaddr=``). KeyError for other names."""
        return self.cluster.address_of(host or self.host)

    @property
    def region(self) -> str:
        """The cluster's region."""
        return self.cluster.region

    @property
    def account_id(self) -> str:
        """The owning account."""
        return self.cluster.account_id

    @property
    def resource_id(self) -> str:
        """The DbClusterResourceId (``cluster-…``) that ``rds-db:connect`` policies name."""
        return self.cluster.resource_id

    @property
    def dbname(self) -> str:
        """The database every member serves (the cluster's own servers: no copy per test)."""
        return self.cluster.writer.backend.dbname

    @property
    def master_username(self) -> str:
        """The master user's name."""
        return self.cluster.writer.backend.master_user

    @property
    def master_password(self) -> str:
        """The master user's password."""
        return self.cluster.writer.backend.master_password

    @property
    def ca_bundle(self) -> str:
        """Path of the emulator's CA bundle (every endpoint of the cluster)."""
        return str(self.cluster.ca_bundle)

    @property
    def iam_enabled(self) -> bool:
        """Whether the cluster accepts IAM logins now."""
        return self.cluster.iam_enabled

    def db_user_arn(self, db_user: str) -> str:
        """``arn:aws:rds-db:<region>:<account>:dbuser:<DbClusterResourceId>/<db_user>``."""
        return self.cluster.db_user_arn(db_user)

    @property
    def auth_events(self) -> list[AuthEvent]:
        """Auth events of every member since the test started."""
        ids = set(self.cluster.members)
        return [e for e in self.cluster.writer.events.since(self._cursor)
                if e.instance_id in ids]

    def connect_kwargs(self, user: str, password: str, *, host: str | None = None
                       ) -> dict[str, Any]:
        """psycopg (with ``hostaddr``) or PyMySQL keyword arguments for ``host`` (default: the
        cluster endpoint; the reader endpoint or an instance endpoint), verified TLS."""
        name = host or self.host
        return self.cluster.writer.engine_info.connect_kwargs(ConnectTarget(
            host=name, hostaddr=self.hostaddr(name), port=self.port, user=user,
            password=password, dbname=self.dbname, ca_bundle=self.ca_bundle))

    def connect_master(self) -> Any:
        """A DB-API connection as the master user through the cluster endpoint."""
        return self.cluster.writer.engine_info.connect(ConnectTarget(
            host=self.host, hostaddr=self.hostaddr(), port=self.port,
            user=self.master_username, password=self.master_password, dbname=self.dbname,
            ca_bundle=self.ca_bundle), autocommit=True)

    def generate_token(self, db_user: str, session: boto3.Session, *,
                       host: str | None = None) -> str:
        """A token for ``db_user`` signed for ``host`` (default: the cluster endpoint) at the
        cluster's port, dated by the test clock."""
        return str(session.client("rds", region_name=self.region).generate_db_auth_token(
            DBHostname=host or self.host, Port=self.port, DBUsername=db_user))

    def create_iam_db_user(self, name: str) -> str:
        """Create DB user ``name`` the RDS way through the cluster endpoint (the writer), then
        wait until every reader has replayed it."""
        conn = self.connect_master()
        try:
            cur = conn.cursor()
            for statement in self.cluster.writer.engine_info.iam_user_ddl(name, self.dbname):
                cur.execute(statement)
            cur.close()
        finally:
            conn.close()
        self.wait_for_replicas()
        return name

    def wait_for_replicas(self, timeout: float = 10.0) -> None:
        """Block until every reader has replayed what the writer has written so far. Raises
        ``BackendError`` after ``timeout`` seconds."""
        for reader in self.cluster.readers:
            wait_for_replay(self.cluster.writer.backend, reader.backend, timeout)

    def iam_session(self, db_user: str, *, name: str | None = None) -> boto3.Session:
        """A boto3 session for a fresh IAM user allowed exactly ``rds-db:connect`` on
        ``db_user_arn(db_user)`` (the cluster's resource)."""
        user_name = name or _IAM_UNSAFE.sub("-", f"{db_user}-c{next(_iam_names)}")[:64]
        return connect_session(self.account_id, self.region, user_name, self.db_user_arn(db_user))

    def set_iam_enabled(self, enabled: bool) -> None:
        """Like ``modify-db-cluster --(no-)enable-iam-database-authentication``: every member
        and moto's describe calls follow."""
        self.cluster.set_iam_enabled(enabled)

    def failover(self, target: str | None = None) -> str:
        """Like ``failover-db-cluster``: promote ``target`` (None: the first reader) for real,
        repoint the cluster and reader endpoints; the old writer becomes a reader. Returns the
        new writer's identifier (moto's describe calls and, aurora-postgresql, every member's
        ``aurora_replica_status()`` report it)."""
        return self.cluster.failover(target)

    def __repr__(self) -> str:
        return f"<RdsIamCluster {self.engine} {self.cluster_id} {self.host}:{self.port}>"
