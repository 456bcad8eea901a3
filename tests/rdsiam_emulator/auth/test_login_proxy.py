"""The login step through an RDS Proxy's door, without sockets: the proxy's order of rules, one
event per attempt, the secret's credentials (never repaired) or the derived ones, and the
proxy's own wire texts. Real tokens signed by botocore for the proxy's name; the secret reader
and the role check are plain functions (moto's are exercised end to end in test_proxies.py)."""

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from freezegun import freeze_time

from rdsiam_emulator.auth.authenticator import Authenticator, ClientInfo
from rdsiam_emulator.auth.credentials import StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.login import AskToken, LogIn, LoginFacts, LoginStep, Refuse
from rdsiam_emulator.auth.proxy import (
    ProxyAuth,
    ProxyAuthorizer,
    ProxyDoor,
    SecretCredentials,
)
from rdsiam_emulator.clock import ManualClock
from rdsiam_emulator.events import EventLog
from rdsiam_emulator.reasons import Reason, Rejection
from rdsiam_emulator.secrets import derived_password

PROXY_HOST = "orders-proxy.proxy-c0abcdefgh.us-east-1.rds.amazonaws.com"
DB = Endpoint(host="orders.c0abcdefgh.us-east-1.rds.amazonaws.com", port=5432,
              region="us-east-1", account_id="123456789012",
              resource_id="db-ABCDEFGHIJKLMNOPQRSTUVWXYZ")
SIGNED_AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
AKID, SECRET = "AKIAPROXYSTEPTESTKEY", "pr0xy/st3p+secret"
INSTANCE_SECRET = b"\x02" * 32
TLS = ClientInfo(address="10.0.0.7", port=50000, tls=True, database="app")
PLAIN = ClientInfo(address="10.0.0.7", port=50001, tls=False, database="app")
SECRETS = {"arn:secret:app": SecretCredentials("app", "app-pw"),
           "arn:secret:pw": SecretCredentials("pwuser", "pw-pw")}
ROLE = "arn:aws:iam::123456789012:role/proxy"


def _token(user="app"):
    with freeze_time(SIGNED_AT):
        rds = boto3.client("rds", region_name="us-east-1", aws_access_key_id=AKID,
                           aws_secret_access_key=SECRET)
        return rds.generate_db_auth_token(DBHostname=PROXY_HOST, Port=5432, DBUsername=user)


def _read(arn):
    if arn not in SECRETS:
        raise LookupError("Secrets Manager cannot read it")
    return SECRETS[arn]


def _step(*, auth=(), scheme="NONE", require_tls=False, allowed=(), target_iam=True,
          engine="postgres", **facts):
    checked = []

    def check_role(role, resource, now):
        checked.append((role, resource))
        if resource.rsplit("/", 1)[-1] in allowed:
            return None
        return Rejection(Reason.NOT_AUTHORIZED, "no statement allows it", "attach a policy")

    door = ProxyDoor(name="orders-proxy", engine=engine, auth=auth, default_auth_scheme=scheme,
                     role_arn=ROLE, require_tls=require_tls, target=DB, read_secret=_read,
                     check_role=check_role, target_iam_enabled=lambda: target_iam)
    events = EventLog()
    auth_ = Authenticator(
        instance_id="orders-proxy", engine=engine,
        endpoint=Endpoint(host=PROXY_HOST, port=5432, region="us-east-1",
                          account_id="123456789012", resource_id="prx-0123456789abcdefg"),
        credentials=StaticCredentials({AKID: (SECRET, None)}), events=events,
        authorizer=ProxyAuthorizer(None, door),
        clock=ManualClock(SIGNED_AT + timedelta(minutes=1)))
    facts.setdefault("db_user", "app")
    facts.setdefault("client", TLS)
    facts.setdefault("iam_user", False)
    return LoginStep(auth_, LoginFacts(**facts), secret=INSTANCE_SECRET, door=door), events, \
        checked, door


REQUIRED = (ProxyAuth("arn:secret:missing", "REQUIRED"), ProxyAuth("arn:secret:app", "REQUIRED"),
            ProxyAuth("arn:secret:pw", "DISABLED"))


def test_required_secret_logs_in_with_the_secrets_credentials_never_repaired():
    step, events, checked, _ = _step(auth=REQUIRED)
    assert step.start() == AskToken()
    command = step.receive_token(_token())
    assert isinstance(command, LogIn)
    assert (command.user, command.password, command.repair) == ("app", "app-pw", False)
    [event] = events.all()
    assert event.outcome == "allow" and event.instance_id == "orders-proxy"
    assert checked == []  # no end-to-end IAM: the proxy's role is not consulted


def test_disabled_secret_checks_the_password_against_the_secret_even_without_tls():
    step, events, _, _ = _step(auth=REQUIRED, db_user="pwuser", client=PLAIN)
    assert step.start() == AskToken()
    command = step.receive_token(b"pw-pw\0")  # MySQL clients end it with a NUL
    assert isinstance(command, LogIn)
    assert (command.user, command.password, command.repair) == ("pwuser", "pw-pw", False)
    [event] = events.all()
    assert (event.outcome, event.method) == ("allow", "password")

    step, events, _, door = _step(auth=REQUIRED, db_user="pwuser", client=PLAIN)
    step.start()
    refused = step.receive_token("pw-pW")
    assert isinstance(refused, Refuse) and refused.reason is Reason.PROXY_PASSWORD_MISMATCH
    [event] = events.all()
    assert (event.outcome, event.method, event.reason) == (
        "deny", "password", Reason.PROXY_PASSWORD_MISMATCH)
    assert event.hint and "pw-pW" not in event.detail
    wire = door.wire(Reason.PROXY_PASSWORD_MISMATCH, "pwuser")
    assert wire is not None and wire.sqlstate == "28P01"
    assert "no credentials for the role pwuser" in wire.message


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"require_tls": True, "client": PLAIN, "db_user": "nobody"}, Reason.PROXY_TLS_REQUIRED),
    ({"db_user": "nobody"}, Reason.PROXY_NO_CREDENTIALS),
    ({"client": PLAIN}, Reason.TLS_REQUIRED),
    ({"scheme": "IAM_AUTH", "iam_user": False}, Reason.NOT_IAM_USER),
    ({"scheme": "IAM_AUTH", "iam_user": True, "reserved_user": True}, Reason.RESERVED_USER),
    ({"db_user": "pwuser", "reserved_user": True}, Reason.RESERVED_USER),
    ({"scheme": "IAM_AUTH", "iam_user": True, "target_iam": False}, Reason.IAM_DISABLED),
    ({"engine": "mysql", "can_ask_token": False}, Reason.CLEARTEXT_PLUGIN_UNSUPPORTED),
])
def test_refused_before_the_token_in_the_proxys_order(kwargs, reason):
    step, events, _, _ = _step(auth=REQUIRED, **kwargs)
    command = step.start()
    assert isinstance(command, Refuse) and command.reason is reason
    [event] = events.all()
    assert event.reason == reason and event.hint


def test_no_credentials_names_the_unreadable_secret():
    step, events, _, _ = _step(auth=REQUIRED, db_user="nobody")
    step.start()
    [event] = events.all()
    assert "arn:secret:missing" in event.detail and "app-pw" not in event.detail


def test_end_to_end_iam_checks_the_role_on_the_databases_resource():
    step, events, checked, _ = _step(scheme="IAM_AUTH", iam_user=True)
    assert step.start() == AskToken()
    command = step.receive_token(_token())
    assert isinstance(command, Refuse) and command.reason is Reason.PROXY_ROLE_NOT_AUTHORIZED
    assert checked == [(ROLE, DB.db_user_arn("app"))]
    [event] = events.all()
    assert DB.db_user_arn("app") in event.hint and ROLE in event.detail
    assert event.rds_error_code == "NotAuthorized"

    step, events, _, _ = _step(scheme="IAM_AUTH", iam_user=True, allowed=("app",))
    step.start()
    command = step.receive_token(_token())
    assert isinstance(command, LogIn)
    assert (command.user, command.password, command.repair) == (
        "app", derived_password(INSTANCE_SECRET, "app"), True)


@pytest.mark.parametrize(("engine", "reason", "wire"), [
    ("postgres", Reason.SIGNATURE_MISMATCH,
     ("28000", 'IAM authentication failed for user "app". Check the IAM token for this user '
               "and try again.")),
    ("postgres", Reason.PROXY_TLS_REQUIRED, ("28000", "This RDS Proxy requires TLS connections.")),
    ("postgres", Reason.TLS_REQUIRED,
     ("28000", "IAM authentication is allowed only with SSL connections.")),
    ("postgres", Reason.THROTTLED,
     ("53300", "The IAM authentication failed because of too many competing requests.")),
    ("mysql", Reason.EXPIRED,
     (1045, "28000", "Access denied for user 'app'@'%' (using password: YES)")),
    ("mysql", Reason.PROXY_TLS_REQUIRED,
     (3159, "HY000", "This RDS Proxy requires TLS connections.")),
    ("mysql", Reason.THROTTLED, (1040, "HY000", "IAM authentication rate limit exceeded")),
])
def test_the_proxys_own_wire_texts(engine, reason, wire):
    _, _, _, door = _step(engine=engine)
    got = door.wire(reason, "app")
    assert got is not None
    if engine == "postgres":
        assert (got.sqlstate, got.message) == wire
    else:
        assert (got.code, got.sqlstate, got.message) == wire


def test_mysql_client_without_plugin_auth_gets_the_instance_answer():
    _, _, _, door = _step(engine="mysql")
    assert door.wire(Reason.CLEARTEXT_PLUGIN_UNSUPPORTED, "app") is None


def test_bad_door_values_are_refused():
    with pytest.raises(ValueError, match="IAMAuth"):
        _step(auth=(ProxyAuth("arn:secret:app", "ENABLED"),))
    with pytest.raises(ValueError, match="DefaultAuthScheme"):
        _step(scheme="SECRETS")
