from datetime import UTC, datetime, timedelta

import boto3
import pytest
from freezegun import freeze_time

from rdsiam_emulator.auth.authenticator import Authenticator, ClientInfo
from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.throttle import Throttle, ThrottleLimits
from rdsiam_emulator.clock import ManualClock
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.reasons import Reason, Rejection

HOST = "mydb.c0abcdefgh.us-east-1.rds.amazonaws.com"
SIGNED_AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
AKID, SECRET = "AKIAAUTHENTICATORTST", "s3cr3t/with+chars"
TLS_CLIENT = ClientInfo(address="127.0.0.1", port=50000, tls=True, database="app")


def _token(user="app", akid=AKID, secret=SECRET, port=5432, at=SIGNED_AT):
    with freeze_time(at):
        rds = boto3.client("rds", region_name="us-east-1", aws_access_key_id=akid,
                           aws_secret_access_key=secret)
        return rds.generate_db_auth_token(DBHostname=HOST, Port=port, DBUsername=user)


class DenyAll:
    """A minimal authorizer standing in for the IAM policy engine (tested in tests/.../iam)."""

    def authorize(self, **_kw):
        return Rejection(Reason.NOT_AUTHORIZED, "no statement allows it", "attach a policy")


def _auth(**kw):
    clock = ManualClock(SIGNED_AT + timedelta(minutes=1))
    events = EventLog()
    defaults = dict(
        instance_id="mydb", engine="postgres",
        endpoint=Endpoint(host=HOST, port=5432, region="us-east-1"),
        credentials=StaticCredentials({AKID: (SECRET, None)}), events=events, clock=clock,
    )
    defaults.update(kw)
    return Authenticator(**defaults), clock, events


def test_genuine_token_is_allowed_and_recorded():
    auth, _, events = _auth()
    decision = auth.authenticate_iam(db_user="app", token=_token(), client=TLS_CLIENT)
    assert decision.ok and decision.reason is None and decision.rds_error_code is None
    [event] = events.all()
    assert event.outcome == "allow" and event.method == "iam" and event.tls
    assert event.access_key_id == AKID and event.database == "app"


def test_expired_after_clock_advance():
    auth, clock, events = _auth()
    token = _token()
    clock.advance(minutes=15)
    decision = auth.authenticate_iam(db_user="app", token=token, client=TLS_CLIENT)
    assert decision.reason is Reason.EXPIRED and decision.rds_error_code == "ExpiredToken"
    assert events.all()[-1].reason is Reason.EXPIRED


def test_plain_tcp_is_refused_before_verification():
    auth, _, events = _auth()
    plain = ClientInfo(address="127.0.0.1", tls=False)
    assert auth.transport_rejection(plain) is Reason.TLS_REQUIRED
    assert auth.transport_rejection(TLS_CLIENT) is None
    decision = auth.authenticate_iam(db_user="app", token=_token(), client=plain)
    assert decision.reason is Reason.TLS_REQUIRED and decision.rds_error_code is None
    assert events.all()[-1].tls is False


def test_tls_requirement_can_be_relaxed():
    auth, _, _ = _auth(require_tls=False)
    plain = ClientInfo(address="127.0.0.1", tls=False)
    assert auth.authenticate_iam(db_user="app", token=_token(), client=plain).ok


def test_iam_disabled_instance_rejects_every_token():
    auth, _, _ = _auth(iam_enabled=False)
    decision = auth.authenticate_iam(db_user="app", token=_token(), client=TLS_CLIENT)
    assert decision.reason is Reason.IAM_DISABLED


def test_authorizer_decides_after_signature():
    auth, _, events = _auth(authorizer=DenyAll())
    decision = auth.authenticate_iam(db_user="app", token=_token(), client=TLS_CLIENT)
    assert decision.reason is Reason.NOT_AUTHORIZED and decision.rds_error_code == "NotAuthorized"
    assert events.all()[-1].hint == "attach a policy"


def test_garbage_password_is_a_rejection_not_an_exception():
    auth, _, _ = _auth()
    for garbage in ["", "hunter2", "x?y", "\x00" * 10, "a" * 100_000]:
        decision = auth.authenticate_iam(db_user="app", token=garbage, client=TLS_CLIENT)
        assert not decision.ok and decision.reason is Reason.MALFORMED_TOKEN


def test_throttling_distinct_tokens_but_not_token_reuse():
    throttle = Throttle(ThrottleLimits(distinct_tokens_per_second=2,
                                       distinct_identities_per_second=20))
    auth, _, _ = _auth(throttle=throttle)
    tokens = [_token(at=SIGNED_AT + timedelta(seconds=s)) for s in range(3)]
    assert len(set(tokens)) == 3
    results = [auth.authenticate_iam(db_user="app", token=t, client=TLS_CLIENT) for t in tokens]
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].reason is Reason.THROTTLED
    assert results[2].rds_error_code == "ThrottlingException"
    # reusing an admitted token is never throttled
    assert auth.authenticate_iam(db_user="app", token=tokens[0], client=TLS_CLIENT).ok


def test_a_crashing_lookup_is_an_internal_error():
    class Boom:
        def lookup(self, access_key_id):
            raise RuntimeError("backend state unreadable")

    auth, _, _ = _auth(credentials=Boom())
    decision = auth.authenticate_iam(db_user="app", token=_token(), client=TLS_CLIENT)
    assert decision.reason is Reason.INTERNAL_ERROR
    assert decision.rds_error_code == "InternalError"


@pytest.mark.parametrize("method", ["iam", "password"])
def test_engine_rejection_and_password_events(method):
    auth, _, events = _auth()
    if method == "iam":
        d = auth.reject(db_user="app", client=TLS_CLIENT, reason=Reason.NOT_IAM_USER,
                        detail="app is not a member of rds_iam")
        assert d.reason is Reason.NOT_IAM_USER and events.all()[-1].method == "iam"
    else:
        ev = auth.record_password_login(db_user="master", client=TLS_CLIENT, ok=True,
                                        detail="password accepted by the server")
        assert ev.method == "password" and ev.ok


@pytest.mark.parametrize("mangle", [
    lambda t: "",
    lambda t: "hunter2",
    lambda t: t.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
    lambda t: t.replace("Action=connect", "Action=DbConnect"),
    lambda t: t[:-10],
    lambda t: t.replace("DBUser=app", "DBUser=other"),
], ids=["empty", "password", "algorithm", "action", "truncated", "db_user"])
def test_every_verifier_refusal_carries_a_hint(mangle):
    """Most format checks give no hint of their own; the event still says what to do."""
    auth, _, events = _auth()
    decision = auth.authenticate_iam(db_user="app", token=mangle(_token()), client=TLS_CLIENT)
    assert not decision.ok and decision.reason is not None
    assert decision.hint and events.all()[-1].hint == decision.hint


def test_verification_that_raises_is_an_internal_error_with_a_hint():
    auth, _, events = _auth(settings=None)  # a broken setting makes verify_token itself raise
    decision = auth.authenticate_iam(db_user="app", token=_token(), client=TLS_CLIENT)
    assert decision.reason is Reason.INTERNAL_ERROR and "raised" in decision.detail
    assert decision.hint and "report" in decision.hint
    assert events.all()[-1].hint == decision.hint
