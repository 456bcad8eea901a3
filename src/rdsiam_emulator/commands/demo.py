"""``rdsiam-emulator demo``: the whole flow, end to end, on this machine.

Starts real servers (the ``auto`` backend: a Docker-API engine if one is reachable, else local
binaries), puts emulated RDS endpoints in front of them, creates an IAM user and policy in moto,
mints tokens with boto3 exactly as an app would, and connects with real drivers over verified TLS.
Then shows what a refused login looks like from both sides: the client's RDS error and the
emulator's reason.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from rdsiam_emulator.backends.spec import PROVIDERS
from rdsiam_emulator.clock import OffsetClock
from rdsiam_emulator.engines import ENGINE_NAMES, MYSQL, POSTGRES, ConnectTarget, EngineName
from rdsiam_emulator.instances import EmulatedInstance, Emulator, InstanceConfig
from rdsiam_emulator.reasons import Reason


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand to ``sub`` (an argparse sub-parsers object); it runs ``run``."""
    parser = sub.add_parser(
        "demo", help="start the emulator and connect with real IAM tokens",
        description="Start a real server per engine, put an emulated RDS endpoint with IAM "
        "authentication in front of it, create an IAM user and policy in moto, mint a token with "
        "boto3 and log in over verified TLS; then show an expired token being refused, as the "
        "client sees it and with the emulator's reason and hint. Exit 0 when every step worked.",
    )
    parser.add_argument("--backend", default="auto", choices=list(PROVIDERS),
                        help="where the real servers come from: auto (an engine's --*-url server "
                        "when given, else a Docker-API engine if reachable, else local binaries), "
                        "docker, local, or external (existing servers given by "
                        "--postgres-url/--mysql-url, required); default: auto")
    parser.add_argument("--engine", action="append", choices=list(ENGINE_NAMES),
                        help="engine to demonstrate; repeat for both (default: both)")
    parser.add_argument("--region", default="us-east-1",
                        help="AWS region of the emulated instances and tokens (default: us-east-1)")
    parser.add_argument("--postgres-url", metavar="URL",
                        help="superuser URL of an existing PostgreSQL server (used by external, "
                        "and by auto when given), e.g. postgresql://postgres:pw@127.0.0.1:5432/postgres")
    parser.add_argument("--mysql-url", metavar="URL",
                        help="superuser URL of an existing MySQL/MariaDB server (used by external, "
                        "and by auto when given), e.g. mysql://root:pw@127.0.0.1:3306/")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run the demo for each engine in ``args.engine`` (default: all) and print each step.

    Per engine: start a backend, an emulated instance registered in moto, an IAM user with an
    ``rds-db:connect`` policy, a boto3 token, a login over verified TLS; then the clock moves 16
    minutes on and the same token is tried again (RDS tokens live 15 minutes:
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.Connecting.html).
    Returns 0 once the steps ran; a failing step raises (backend, boto3 or driver exceptions
    propagate). Bad ``--region`` or a missing ``--*-url`` with ``--backend external`` exit
    through ``parser.error`` (status 2); 1 when a step did not behave as RDS would (e.g. an
    expired token was accepted).
    """
    from moto import mock_aws

    from rdsiam_emulator.aws.clock import aws_clock
    from rdsiam_emulator.backends import BackendSpec, start_backend

    engines: list[EngineName] = args.engine or list(ENGINE_NAMES)
    urls: dict[EngineName, str | None] = {POSTGRES.name: args.postgres_url,
                                          MYSQL.name: args.mysql_url}
    from rdsiam_emulator.regions import region_problem

    problem = region_problem(args.region)
    if problem:
        args.parser.error(f"--region: {problem}")
    if args.backend == "external":
        missing = [f"--{engine}-url" for engine in engines if not urls[engine]]
        if missing:
            args.parser.error(f"--backend external needs {' and '.join(missing)}")
    clock = OffsetClock()
    worked = True
    with tempfile.TemporaryDirectory(prefix="rdsiam-demo-") as tmp, \
            Emulator(Path(tmp), clock=clock) as emulator, mock_aws(), aws_clock(clock):
        for engine in engines:
            print(f"\n=== {engine} ===")
            backend = start_backend(BackendSpec(engine=engine, provider=args.backend,
                                                  external_admin_url=urls[engine]),
                                    audience="cli")
            try:
                print(f"backend: {backend.flavour} {backend.version} via {backend.provider}")
                instance = emulator.start_instance(
                    InstanceConfig(instance_id=f"demo-{engine}", engine=engine,
                                   region=args.region), backend)
                worked = _demo_instance(instance, clock) and worked
            finally:
                backend.stop()
    return 0 if worked else 1


def _demo_instance(instance: EmulatedInstance, clock: OffsetClock) -> bool:
    import boto3

    instance.register_in_moto()
    rds = boto3.client("rds", region_name=instance.region)
    [desc] = rds.describe_db_instances(DBInstanceIdentifier=instance.instance_id)["DBInstances"]
    host, port = desc["Endpoint"]["Address"], desc["Endpoint"]["Port"]
    print(f"endpoint: {host}:{port}  DbiResourceId: {desc['DbiResourceId']}  "
          f"IAM auth: {desc['IAMDatabaseAuthenticationEnabled']}")

    _create_db_user(instance, "app_user")
    iam = boto3.client("iam", region_name=instance.region)
    iam.create_user(UserName=f"demo-app-{instance.engine}")
    arn = instance.db_user_arn("app_user")
    iam.put_user_policy(UserName=f"demo-app-{instance.engine}", PolicyName="connect",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "rds-db:connect", "Resource": arn}]}))
    key = iam.create_access_key(UserName=f"demo-app-{instance.engine}")["AccessKey"]
    session = boto3.Session(aws_access_key_id=key["AccessKeyId"],
                            aws_secret_access_key=key["SecretAccessKey"],
                            region_name=instance.region)
    print(f"IAM user demo-app-{instance.engine} may rds-db:connect on {arn}")

    token = session.client("rds").generate_db_auth_token(DBHostname=host, Port=port,
                                                         DBUsername="app_user")
    who = _login(instance, "app_user", token)
    print(f"connected with an IAM token over verified TLS as {who}")

    clock.advance(minutes=16)
    refused = False
    try:
        _login(instance, "app_user", token)
        print("UNEXPECTED: an expired token was accepted")
    except Exception as exc:
        refused = True
        print(f"16 minutes later the same token is refused; the client sees: {_first_line(exc)}")
    event = instance.events_since()[-1]
    print(f"the emulator records: {event.reason} [{event.rds_error_code}] {event.detail}")
    print(f"  hint: {event.hint}")
    clock.reset()
    if refused and event.reason is not Reason.EXPIRED:
        print(f"UNEXPECTED: the refusal's reason is {event.reason}, not {Reason.EXPIRED}")
    return refused and event.reason is Reason.EXPIRED


def _target(instance: EmulatedInstance, user: str, password: str) -> ConnectTarget:
    return ConnectTarget(host=instance.host, hostaddr="127.0.0.1", port=instance.port, user=user,
                         password=password, dbname=instance.backend.dbname,
                         ca_bundle=str(instance.ca_bundle))


def _create_db_user(instance: EmulatedInstance, name: str) -> None:
    backend = instance.backend
    statements = instance.engine_info.iam_user_ddl(name, backend.dbname)
    conn = instance.engine_info.connect(
        _target(instance, backend.master_user, backend.master_password), autocommit=True)
    try:
        cur = conn.cursor()
        for statement in statements:
            cur.execute(statement)
    finally:
        conn.close()
    print("master ran: " + "; ".join(statements))


def _login(instance: EmulatedInstance, user: str, token: str) -> str:
    conn = instance.engine_info.connect(_target(instance, user, token))
    try:
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_USER, VERSION()")
        row = cur.fetchone()
        assert row is not None
        return f"{row[0]} ({str(row[1]).split(' on ')[0]})"
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if hasattr(exc, "args") and len(exc.args) == 2 and isinstance(exc.args[0], int):
        text = f"ERROR {exc.args[0]}: {exc.args[1]}"
    return text.splitlines()[0] if text else type(exc).__name__
