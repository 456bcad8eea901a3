from datetime import UTC, datetime, timedelta

import boto3
from freezegun import freeze_time
from moto import mock_aws

from rdsiam_emulator.auth.tokens import parse_token
from rdsiam_emulator.aws.clock import aws_clock
from rdsiam_emulator.clock import ManualClock, OffsetClock, SystemClock

HOST = "db.c0abcdefgh.us-east-1.rds.amazonaws.com"


def _sign() -> str:
    rds = boto3.client("rds", region_name="us-east-1", aws_access_key_id="AKIAEXAMPLEEXAMPLE12",
                       aws_secret_access_key="secret")
    return rds.generate_db_auth_token(DBHostname=HOST, Port=5432, DBUsername="app")


def test_botocore_signs_at_the_manual_clock_time_and_restores():
    at = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    with aws_clock(ManualClock(at)):
        assert parse_token(_sign()).signed_at == at
    after = parse_token(_sign()).signed_at
    assert abs(after - SystemClock().now()) < timedelta(minutes=1)


def test_offset_clock_moves_signing_forward():
    clock = OffsetClock()
    with aws_clock(clock):
        before = parse_token(_sign()).signed_at
        clock.advance(seconds=16 * 60)
        later = parse_token(_sign()).signed_at
    assert timedelta(minutes=15, seconds=59) <= later - before <= timedelta(minutes=17)


def test_moto_sts_expiration_follows_the_clock():
    start = datetime(2031, 1, 1, 0, 0, 0, tzinfo=UTC)
    clock = ManualClock(start)
    with mock_aws(), aws_clock(clock):
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]
        sts = boto3.client("sts", region_name="us-east-1")
        creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="sess",
                                DurationSeconds=900)["Credentials"]
    assert creds["Expiration"] == start + timedelta(seconds=900)


def test_coexists_with_freezegun():
    """botocore signs at the emulator's clock, which freezegun in the application does not
    stop (RDS's clock is not the app's): the real time plus the clock's offset."""
    clock = OffsetClock()
    with freeze_time("2029-02-03 04:05:06"), aws_clock(clock):
        clock.advance(seconds=60)
        signed = parse_token(_sign()).signed_at
        expected = SystemClock().now() + timedelta(seconds=60)
    assert abs(signed - expected) < timedelta(seconds=5)
    assert signed.year != 2029


def test_nested_contexts_restore_in_order():
    import botocore.auth

    original = botocore.auth.get_current_datetime
    with aws_clock(ManualClock(datetime(2030, 1, 1, tzinfo=UTC))):
        outer = botocore.auth.get_current_datetime
        with aws_clock(ManualClock(datetime(2031, 1, 1, tzinfo=UTC))):
            assert botocore.auth.get_current_datetime() == datetime(2031, 1, 1)
        assert botocore.auth.get_current_datetime is outer
    assert botocore.auth.get_current_datetime is original
