"""The login step without sockets: facts in, one command out, exactly one event per attempt.

A real ``Authenticator`` (real tokens signed by botocore, static credentials; no authorizer: the
policy evaluator has its own tests) decides; the step only orders its rules.
"""

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from freezegun import freeze_time

from rdsiam_emulator.auth.authenticator import Authenticator, ClientInfo
from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.login import (
    AskToken,
    LogIn,
    LoginFacts,
    LoginStep,
    LoginStepError,
    Refuse,
    RelayPassword,
)
from rdsiam_emulator.clock import ManualClock
from rdsiam_emulator.engines import engine as engine_named
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.reasons import Reason
from rdsiam_emulator.secrets import derived_password

HOST = "mydb.c0abcdefgh.us-east-1.rds.amazonaws.com"
SIGNED_AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
AKID, SECRET = "AKIALOGINSTEPTESTKEY", "l0gin/st3p+secret"
INSTANCE_SECRET = b"\x01" * 32
TLS = ClientInfo(address="10.0.0.7", port=50000, tls=True, database="app")
PLAIN = ClientInfo(address="10.0.0.7", port=50001, tls=False, database="app")


def _token(user="app"):
    with freeze_time(SIGNED_AT):
        rds = boto3.client("rds", region_name="us-east-1", aws_access_key_id=AKID,
                           aws_secret_access_key=SECRET)
        return rds.generate_db_auth_token(DBHostname=HOST, Port=5432, DBUsername=user)


def _step(engine="postgres", *, iam_enabled=True, require_tls=True, **facts):
    events = EventLog()
    auth = Authenticator(
        instance_id="mydb", engine=engine, endpoint=Endpoint(host=HOST, port=5432,
                                                             region="us-east-1"),
        credentials=StaticCredentials({AKID: (SECRET, None)}), events=events,
        clock=ManualClock(SIGNED_AT + timedelta(minutes=1)), iam_enabled=iam_enabled,
        require_tls=require_tls)
    facts.setdefault("db_user", "app")
    facts.setdefault("client", TLS)
    facts.setdefault("iam_user", True)
    return LoginStep(auth, LoginFacts(**facts), secret=INSTANCE_SECRET), events


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_iam_user_is_asked_for_the_token_then_logged_in_as_itself(engine):
    step, events = _step(engine)
    assert step.start() == AskToken()
    assert events.all() == []  # nothing decided yet
    command = step.receive_token(_token().encode() + b"\0")  # MySQL clients end it with NUL
    assert isinstance(command, LogIn)
    assert (command.user, command.password) == ("app", derived_password(INSTANCE_SECRET, "app"))
    [event] = events.all()
    assert event is command.decision.event and event.outcome == "allow" and event.engine == engine


def test_a_token_sent_with_the_login_is_used_without_asking():
    step, events = _step("mysql", sent_token=_token().encode())
    command = step.start()
    assert isinstance(command, LogIn) and len(events.all()) == 1


def test_a_bad_token_is_refused_with_the_verifiers_reason():
    step, events = _step()
    step.start()
    command = step.receive_token("not a token")
    assert isinstance(command, Refuse) and command.reason is Reason.MALFORMED_TOKEN
    [event] = events.all()
    assert event.reason is Reason.MALFORMED_TOKEN and event.method == "iam"


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_password_user_is_relayed_and_the_step_records_nothing(engine):
    step, events = _step(engine, iam_user=False, client=PLAIN)
    assert step.start() == RelayPassword()
    assert events.all() == [] and not step.relays_iam_user


@pytest.mark.parametrize(("engine", "via"), [("postgres", ""), ("mysql", ""),
                                             ("mysql", "COM_CHANGE_USER: ")])
def test_iam_login_without_tls_is_refused_before_asking(engine, via):
    step, events = _step(engine, client=PLAIN, via=via)
    command = step.start()
    assert isinstance(command, Refuse) and command.reason is Reason.TLS_REQUIRED
    [event] = events.all()
    assert event.detail.startswith(via + "IAM logins are accepted over TLS only")
    assert event.hint == engine_named(engine).tls_hint


def test_require_tls_off_lets_a_plain_iam_login_through():
    step, _ = _step(client=PLAIN, require_tls=False)
    assert step.start() == AskToken()
    assert isinstance(step.receive_token(_token()), LogIn)


def test_force_ssl_refuses_a_plain_password_login_only():
    step, events = _step(iam_user=False, client=PLAIN, force_ssl=True)
    command = step.start()
    assert isinstance(command, Refuse) and command.reason is Reason.TLS_REQUIRED
    assert events.all()[0].method == "password" and "force_ssl" in events.all()[0].detail
    step, _ = _step(iam_user=False, client=TLS, force_ssl=True)
    assert step.start() == RelayPassword()


def test_iam_disabled_postgres_still_asks_then_refuses():
    step, events = _step("postgres", iam_enabled=False)
    assert step.start() == AskToken()
    command = step.receive_token(_token())
    assert isinstance(command, Refuse) and command.reason is Reason.IAM_DISABLED
    assert len(events.all()) == 1


def test_iam_disabled_mysql_relays_the_iam_user_as_a_password_login():
    step, events = _step("mysql", iam_enabled=False, client=PLAIN)
    assert step.start() == RelayPassword()
    assert step.relays_iam_user and events.all() == []


def test_reserved_user_and_replication_are_refused_first():
    step, events = _step(reserved_user=True, iam_user=False)
    command = step.start()
    assert isinstance(command, Refuse) and command.reason is Reason.RESERVED_USER
    assert events.all()[0].method == "password"
    step, _ = _step(replication="true", client=PLAIN)
    command = step.start()
    assert isinstance(command, Refuse) and command.reason is Reason.REPLICATION_NOT_ALLOWED
    step, _ = _step(replication="true", iam_user=False)
    assert step.start() == RelayPassword()  # a password user may replicate (the server decides)


def test_a_client_that_cannot_send_cleartext_is_refused_and_one_that_hangs_up_too():
    step, events = _step("mysql", can_ask_token=False)
    command = step.start()
    assert isinstance(command, Refuse) and command.reason is Reason.CLEARTEXT_PLUGIN_UNSUPPORTED
    step, events = _step("mysql")
    assert step.start() == AskToken()
    command = step.client_left()
    assert command.reason is Reason.CLEARTEXT_PLUGIN_UNSUPPORTED
    [event] = events.all()
    assert "hung up" in event.detail and "cleartext" in (event.hint or "")


def test_driving_out_of_order_raises():
    step, _ = _step()
    with pytest.raises(LoginStepError):
        step.receive_token(_token())
    step.start()
    step.receive_token(_token())
    with pytest.raises(LoginStepError):
        step.receive_token(_token())
    with pytest.raises(LoginStepError):
        step.start()
