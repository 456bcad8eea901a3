"""The object a test gets from ``rds_iam_db``: one emulated instance, one fresh database.

Everything here is public contract (docs/pytest.md): attribute and method names do not change.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import boto3

from pytest_rdsiam.options import MOTO_ACCOUNT_ENV
from rdsiam_emulator.clock import OffsetClock
from rdsiam_emulator.engines import ConnectTarget, EngineName
from rdsiam_emulator.events import AuthEvent
from rdsiam_emulator.instances import EmulatedInstance

_iam_names = itertools.count(1)
_IAM_UNSAFE = re.compile(r"[^\w+=,.@-]")


def connect_session(account_id: str, region: str, user_name: str,
                    resource_arn: str) -> boto3.Session:
    """A boto3 session for a new IAM user ``user_name`` in ``account_id`` (moto) whose one
    inline policy allows exactly ``rds-db:connect`` on ``resource_arn``."""
    with moto_account(account_id):
        iam = boto3.client("iam", region_name=region)
        iam.create_user(UserName=user_name)
        iam.put_user_policy(UserName=user_name, PolicyName="rds-db-connect",
                            PolicyDocument=json.dumps({
                                "Version": "2012-10-17",
                                "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                                               "Resource": resource_arn}],
                            }))
        key = iam.create_access_key(UserName=user_name)["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"], region_name=region)


@contextmanager
def moto_account(account_id: str) -> Iterator[None]:
    """Make moto requests made meanwhile in this process land in ``account_id``; restores the
    previous value (or absence) of $MOTO_ACCOUNT_ID on exit."""
    before = os.environ.get(MOTO_ACCOUNT_ENV)
    os.environ[MOTO_ACCOUNT_ENV] = account_id
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MOTO_ACCOUNT_ENV, None)
        else:
            os.environ[MOTO_ACCOUNT_ENV] = before


class TestClock:
    """The test's virtual clock: drives the validator and botocore signing in this process."""

    __test__ = False  # not a test class, whatever pytest's collection thinks of the name

    def __init__(self, clock: OffsetClock) -> None:
        self._clock = clock

    def now(self) -> datetime:
        """The test's current time, aware, in UTC (real time plus every jump made so far)."""
        return self._clock.now()

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        """Jump forward (``seconds=`` and/or ``minutes=``, ``hours=``); returns the new time."""
        return self._clock.advance(seconds, **kwargs)

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (timezone-aware); time keeps flowing from there."""
        self._clock.set(when)


class RdsIamDb:
    """An RDS instance with IAM database authentication, as a test sees it."""

    def __init__(self, instance: EmulatedInstance, dbname: str, clock: TestClock,
                 events_cursor: int) -> None:
        self.instance = instance
        self.dbname = dbname
        self.clock = clock
        self._cursor = events_cursor

    # -- the instance -------------------------------------------------------------------------
    @property
    def engine(self) -> EngineName:
        """``"postgres"`` or ``"mysql"`` (MariaDB backends report ``"mysql"``, as they speak its
        protocol).
        """
        return self.instance.engine

    @property
    def host(self) -> str:
        """The endpoint name tokens must be generated for: RDS-style
        (``<instance>.<label>.<region>.rds.amazonaws.com``, resolving to the endpoint in this
        process only), or ``localhost`` with the ``loopback`` naming option.
        """
        return self.instance.host

    @property
    def hostaddr(self) -> str:
        """The IP the host name resolves to: for clients that resolve names in C (libpq's
        ``hostaddr=``, ``psql``)."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The endpoint's TCP port (listening on loopback; IAM logins need TLS, as on RDS)."""
        return self.instance.port

    @property
    def region(self) -> str:
        """The instance's region; tokens must be signed for it."""
        return self.instance.region

    @property
    def account_id(self) -> str:
        """The 12-digit AWS account the instance (and its moto state) belongs to."""
        return self.instance.account_id

    @property
    def instance_id(self) -> str:
        """The DB instance identifier, as ``describe_db_instances`` reports it."""
        return self.instance.instance_id

    @property
    def resource_id(self) -> str:
        """The DbiResourceId (``db-…``): the resource in ``rds-db:connect`` ARNs, not the instance
        id. See
        https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.IAMPolicy.html
        """
        return self.instance.resource_id

    @property
    def master_username(self) -> str:
        """The master user's name (a password login; not an IAM user unless you make it one)."""
        return self.instance.backend.master_user

    @property
    def master_password(self) -> str:
        """The master user's password."""
        return self.instance.backend.master_password

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM bundle of the emulator's CA, to verify the endpoint's certificate (the
        equivalent of RDS's ``global-bundle.pem``).
        """
        return str(self.instance.ca_bundle)

    @property
    def iam_enabled(self) -> bool:
        """Whether the instance accepts IAM logins now (``set_iam_enabled`` changes it)."""
        return self.instance.iam_enabled

    def db_user_arn(self, db_user: str) -> str:
        """``arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<db_user>``, for policies."""
        return self.instance.db_user_arn(db_user)

    @property
    def auth_events(self) -> list[AuthEvent]:
        """Auth events of this instance since the test started (live: read it when you need it)."""
        return self.instance.events_since(self._cursor)

    # -- connecting -----------------------------------------------------------------------------
    def connect_kwargs(self, user: str, password: str, *, dbname: str | None = None
                       ) -> dict[str, Any]:
        """Keyword arguments for psycopg (PostgreSQL) or PyMySQL (MySQL), verifying TLS against
        ``host``; ``dbname`` (None: this test's database) picks another database."""
        return self.instance.engine_info.connect_kwargs(self._target(user, password, dbname))

    def connect_master(self) -> Any:
        """A DB-API connection as the master user, through the endpoint (password login)."""
        return self.instance.engine_info.connect(
            self._target(self.master_username, self.master_password, None), autocommit=True)

    def _target(self, user: str, password: str, dbname: str | None) -> ConnectTarget:
        return ConnectTarget(host=self.host, hostaddr=self.hostaddr, port=self.port, user=user,
                             password=password, dbname=dbname or self.dbname,
                             ca_bundle=self.ca_bundle)

    def generate_token(self, db_user: str, session: boto3.Session) -> str:
        """An IAM auth token for ``db_user`` signed with ``session``'s credentials, as the
        application would make it (botocore's ``generate_db_auth_token``), dated by the test
        clock (``aws.clock`` hooks botocore's signing time in this process) and valid for 900
        seconds.
        """
        return str(session.client("rds", region_name=self.region).generate_db_auth_token(
            DBHostname=self.host, Port=self.port, DBUsername=db_user))

    # -- users ------------------------------------------------------------------------------------
    def create_iam_db_user(self, name: str) -> str:
        """Create DB user ``name`` the way RDS documents it, with usable grants on ``dbname``."""
        conn = self.connect_master()
        try:
            cur = conn.cursor()
            for statement in self.instance.engine_info.iam_user_ddl(name, self.dbname):
                cur.execute(statement)
            cur.close()
        finally:
            conn.close()
        return name

    def iam_session(self, db_user: str, *, name: str | None = None) -> boto3.Session:
        """A boto3 session for a fresh IAM user allowed exactly ``rds-db:connect`` as ``db_user``.

        The user is created in this instance's account (``account_id``), whatever account plain
        boto3 clients of the test default to.
        """
        user_name = name or _IAM_UNSAFE.sub("-", f"{db_user}-{next(_iam_names)}")[:64]
        return connect_session(self.account_id, self.region, user_name, self.db_user_arn(db_user))

    def set_iam_enabled(self, enabled: bool) -> None:
        """Like ``modify-db-instance --(no-)enable-iam-database-authentication``: the endpoint
        and moto's ``describe_db_instances`` both follow (``EmulatedInstance.set_iam_enabled``)."""
        self.instance.set_iam_enabled(enabled)

    def restart_backend(self) -> None:
        """Restart this instance's real database server on the same port with the same data,
        e.g. after a fault test killed it; new logins then work without restarting the emulator.
        The server may be shared with other tests of the session: their open sessions are lost.
        Raises ``BackendError`` for container or external servers."""
        self.instance.restart_backend()

    def __repr__(self) -> str:
        return (f"<RdsIamDb {self.engine} {self.instance_id} {self.host}:{self.port} "
                f"db={self.dbname}>")
