"""IAM decisions from moto's IAM state (users, keys, policies) through the PostgreSQL endpoint."""

from __future__ import annotations

import json

import boto3
import psycopg
import pytest
from pg_env import RDS_HOST, REGION

from rdsiam_emulator.auth.authenticator import Authenticator
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.reasons import Reason


@pytest.fixture
def moto_endpoint(endpoint):
    from moto import mock_aws

    from rdsiam_emulator.aws import MotoCredentials
    from rdsiam_emulator.iam import IamAuthorizer

    with mock_aws():
        spec = Endpoint(RDS_HOST, endpoint.port, REGION, aliases=("localhost", "127.0.0.1"),
                        account_id="123456789012", resource_id="db-ABCDEFGHIJKLMNOPQRSTUVWXY0",
                        instance_id="mydb")
        endpoint.endpoint.authenticator = Authenticator(
            instance_id="mydb", engine="postgres", endpoint=spec, credentials=MotoCredentials(),
            authorizer=IamAuthorizer(), events=endpoint.events)
        yield endpoint, spec


def test_policy_in_moto_decides(moto_endpoint) -> None:
    endpoint, spec = moto_endpoint
    allowed, other = endpoint.iam_user(), endpoint.iam_user()
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="app")
    iam.put_user_policy(UserName="app", PolicyName="connect", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                       "Resource": spec.db_user_arn(allowed)}]}))
    key = iam.create_access_key(UserName="app")["AccessKey"]
    rds = boto3.client("rds", region_name=REGION, aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])

    def token(user: str) -> str:
        return str(rds.generate_db_auth_token(DBHostname=RDS_HOST, Port=endpoint.port,
                                              DBUsername=user, Region=REGION))

    with psycopg.connect(endpoint.conninfo(allowed, token(allowed))) as conn:
        assert conn.execute("select current_user").fetchone() == (allowed,)
    assert endpoint.events.all()[-1].principal_arn.endswith(":user/app")
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(endpoint.conninfo(other, token(other)))
    assert f'FATAL:  PAM authentication failed for user "{other}"' in str(err.value)
    assert endpoint.events.all()[-1].reason is Reason.NOT_AUTHORIZED
    iam.update_access_key(UserName="app", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        psycopg.connect(endpoint.conninfo(allowed, token(allowed)))
    assert endpoint.events.all()[-1].reason is Reason.INACTIVE_ACCESS_KEY
