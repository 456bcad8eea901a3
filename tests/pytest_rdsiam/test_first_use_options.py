"""Options as a user runs them (issue #11): each one run by pytester against real servers."""

import pytest

from pytest_rdsiam.options import PluginSettings
from pytest_rdsiam.pool import BackendPool
from rdsiam_emulator.backends import BackendSpec, start_local

RUN = ("-p", "no:xdist", "-p", "no:randomly", "--rdsiam-emulator")

ACCOUNT_TESTS = r'''
import json

import boto3
import psycopg
import pytest

ACCOUNT = "111122223333"


def test_everything_lands_in_the_configured_account(rds_iam_db):
    db = rds_iam_db
    assert db.account_id == ACCOUNT
    assert db.db_user_arn("app").startswith(f"arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:")
    sts = boto3.client("sts", region_name=db.region)
    assert sts.get_caller_identity()["Account"] == ACCOUNT
    [desc] = boto3.client("rds", region_name=db.region).describe_db_instances(
        DBInstanceIdentifier=db.instance_id)["DBInstances"]
    assert desc["DbiResourceId"] == db.resource_id
    db.create_iam_db_user("app")
    psycopg.connect(**db.connect_kwargs("app", db.generate_token("app", db.iam_session("app")))
                    ).close()
    assert db.auth_events[-1].ok
    assert db.auth_events[-1].principal_arn.startswith(f"arn:aws:iam::{ACCOUNT}:user/app-")

    # a role the test creates with plain boto3 clients is in that account too
    iam = boto3.client("iam", region_name=db.region)
    role = iam.create_role(RoleName="svc", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}))["Role"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/svc"
    iam.put_role_policy(RoleName="svc", PolicyName="c", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
        "Resource": db.db_user_arn("app")}]}))
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="ci")["Credentials"]
    session = boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                            aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"], region_name=db.region)
    psycopg.connect(**db.connect_kwargs("app", db.generate_token("app", session))).close()
    assert db.auth_events[-1].principal_arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/svc/ci"


def test_factory_instance_in_another_account(rds_iam_db_factory):
    db = rds_iam_db_factory(account_id="444455556666")
    db.create_iam_db_user("app")
    psycopg.connect(**db.connect_kwargs("app", db.generate_token("app", db.iam_session("app")))
                    ).close()
    assert db.auth_events[-1].principal_arn.startswith("arn:aws:iam::444455556666:user/")
'''


def test_account_id_carries_through_to_every_principal(pytester, monkeypatch):
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    pytester.makepyfile(test_account=ACCOUNT_TESTS)
    result = pytester.runpytest(*RUN, "--rdsiam-backend", "local",
                                "--rdsiam-account-id", "111122223333")
    result.assert_outcomes(passed=2)


def test_account_id_must_be_twelve_digits(pytester):
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*RUN, "--rdsiam-account-id", "1111-2222")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rdsiam-account-id*expected 12 digits*"])


PROBE = """
from pytest_rdsiam.plugin import settings_of

def test_probe(request):
    s = settings_of(request.config)
    print("SETTINGS", s.reuse, s.require_tls, s.throttling)
"""


@pytest.mark.parametrize(("args", "expected"), [
    (("--rdsiam-reuse", "--rdsiam-require-tls", "--rdsiam-throttling"), "True True True"),
    (("--rdsiam-reuse", "--rdsiam-throttling", "off", "--rdsiam-require-tls=false"),
     "True False False"),
])
def test_bool_options_take_the_bare_flag_or_a_value(pytester, args, expected):
    pytester.makepyfile(test_probe=PROBE)
    result = pytester.runpytest("-s", *RUN, *args)
    result.assert_outcomes(passed=1)
    [line] = [out for out in result.outlines if "SETTINGS " in out]
    assert line.split("SETTINGS ", 1)[1].split()[:3] == expected.split()


def test_bare_flag_before_a_path_is_a_clear_usage_error(pytester):
    pytester.makepyfile(test_probe=PROBE)
    result = pytester.runpytest(*RUN, "--rdsiam-reuse", "test_probe.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rdsiam-reuse*got 'test_probe.py'*--rdsiam-reuse=true*"])


def test_help_lists_every_choice(pytester):
    result = pytester.runpytest("--help")
    text = " ".join(" ".join(result.outlines).split())
    assert "one of auto, uvloop, asyncio" in text
    assert "one of auto, docker, local, external" in text


def test_external_without_url_names_the_pytest_option(pytester):
    pytester.makepyfile("def test_x(rds_iam_db): pass")
    result = pytester.runpytest(*RUN, "--rdsiam-backend", "external")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--rdsiam-backend external needs --rdsiam-postgres-url*"])
    assert "external_admin_url" not in result.stdout.str()


MYSQL_TEST = """
import pytest

@pytest.mark.parametrize("rds_iam_db", ["mysql"], indirect=True)
def test_mysql(rds_iam_db):
    print("RUNNING", rds_iam_db.instance.backend.flavour, rds_iam_db.instance.backend.version)
"""


@pytest.mark.parametrize("option", [("--rdsiam-mysql-flavour", "mysql"),
                                    ("--rdsiam-mysql-version", "8.0")])
def test_mysql_setting_that_cannot_be_honoured_fails_clearly(pytester, option):
    pytester.makepyfile(MYSQL_TEST)
    result = pytester.runpytest(*RUN, "--rdsiam-backend", "local", *option)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        f"*{' '.join(option)} cannot be honoured: the local backend runs mariadb 10.*"
        "--rdsiam-backend docker*$RDSIAM_MYSQLD*--rdsiam-mysql-url*",
    ])


def test_mysql_version_that_matches_runs(pytester):
    pytester.makepyfile(MYSQL_TEST)
    result = pytester.runpytest("-s", *RUN, "--rdsiam-backend", "local",
                                "--rdsiam-mysql-flavour", "mariadb",
                                "--rdsiam-mysql-version", "10.11")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*RUNNING mariadb 10.11*"])


def test_version_matching_is_by_whole_parts():
    from pytest_rdsiam.pool import version_matches

    assert version_matches("8.0", "8.0.36")
    assert version_matches("10.11", "10.11.6-MariaDB-0+deb12u1")
    assert version_matches("15", "15.18")
    assert not version_matches("8", "80.1")
    assert not version_matches("8.0", "10.11.6-MariaDB")


@pytest.fixture(scope="module")
def outside_postgres():
    """A real server the user "already runs": a local one (with TCP, opt-in), reached by its
    admin URL."""
    handle = start_local(BackendSpec(engine="postgres", provider="local", dbname="app",
                                     listen_tcp=True))
    yield handle
    handle.stop()


def test_explicit_url_wins_over_auto_detection(pytester, outside_postgres):
    h = outside_postgres
    url = f"postgresql://{h.admin_user}:{h.admin_password}@127.0.0.1:{h.port}/postgres"
    pytester.makepyfile("""
import psycopg

def test_on_the_given_server(rds_iam_db):
    print("PROVIDER", rds_iam_db.instance.backend.provider)
    rds_iam_db.create_iam_db_user("app")
    token = rds_iam_db.generate_token("app", rds_iam_db.iam_session("app"))
    psycopg.connect(**rds_iam_db.connect_kwargs("app", token)).close()
""")
    # default backend (auto) with local binaries installed: the URL still wins
    result = pytester.runpytest("-s", *RUN, "--rdsiam-postgres-url", url)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*PROVIDER external:127.0.0.1:{h.port}"])


def test_factory_future_skew_has_the_option_name(pytester):
    pytester.makepyfile("""
import pytest
import psycopg
from datetime import timedelta

def test_skew(rds_iam_db_factory):
    db = rds_iam_db_factory(future_skew=10)
    db.create_iam_db_user("app")
    session = db.iam_session("app")
    token = db.generate_token("app", session)          # signed "now"
    db.clock.set(db.clock.now() - timedelta(seconds=60))  # the token is now 60 s in the future
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**db.connect_kwargs("app", token))
    assert db.auth_events[-1].reason == "not_yet_valid"
""")
    result = pytester.runpytest(*RUN, "--rdsiam-backend", "local")
    result.assert_outcomes(passed=1)


def test_unknown_factory_argument_lists_the_accepted_names(pytester):
    pytester.makepyfile("""
import pytest

def test_typo(rds_iam_db_factory):
    with pytest.raises(TypeError, match="future_skew_seconds.*accepted: .*future_skew"):
        rds_iam_db_factory(future_skew_seconds=10)
""")
    result = pytester.runpytest(*RUN, "--rdsiam-backend", "local")
    result.assert_outcomes(passed=1)


def test_spec_for_external_keeps_library_errors_out():
    pool = BackendPool(PluginSettings(backend="external", mysql_url="mysql://root:x@h:3306/"))
    assert pool.spec_for("mysql").external_admin_url == "mysql://root:x@h:3306/"
    with pytest.raises(pytest.UsageError, match="--rdsiam-postgres-url"):
        pool.spec_for("postgres")


ACCOUNT_PROBE = """
from pytest_rdsiam.plugin import settings_of

def test_probe(request):
    print("ACCOUNT", settings_of(request.config).account_id)
"""


@pytest.mark.parametrize(("args", "expected"), [
    ((), "222233334444"),                                        # follows $MOTO_ACCOUNT_ID
    (("--rdsiam-account-id", "111122223333"), "111122223333"),  # the option wins
])
def test_account_id_defaults_to_moto_account_env(pytester, monkeypatch, args, expected):
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "222233334444")
    pytester.makepyfile(test_probe=ACCOUNT_PROBE)
    result = pytester.runpytest("-s", *RUN, *args)
    result.assert_outcomes(passed=1)
    [line] = [out for out in result.outlines if "ACCOUNT " in out]
    assert line.split("ACCOUNT ", 1)[1].split()[0] == expected


def test_docker_image_that_cannot_be_the_version_asked_fails_before_starting(pytester,
                                                                            monkeypatch):
    """--rdsiam-mysql-version 8.4 with the docker backend while $RDSIAM_MYSQL_IMAGE names a
    MariaDB 10.11 image: refused from the image's tag, before any container starts, with a hint
    for the docker backend (not "use --rdsiam-backend docker")."""
    image = "localhost/rdsiam-standin-mariadb:10.11"
    monkeypatch.setenv("RDSIAM_MYSQL_IMAGE", image)
    monkeypatch.delenv("DOCKER_HOST", raising=False)  # a start would fail, not wait for one
    pytester.makepyfile(MYSQL_TEST)
    result = pytester.runpytest(*RUN, "--rdsiam-backend", "docker",
                                "--rdsiam-mysql-version", "8.4")
    result.assert_outcomes(errors=1)
    text = " ".join(result.outlines)
    assert (f"--rdsiam-mysql-version 8.4 cannot be honoured: the docker backend would run "
            f"{image}, which its name and tag say is not that (nothing was started). To get "
            "MySQL 8.4: the image comes from $RDSIAM_MYSQL_IMAGE, which is used whatever version"
            " is asked: set it (or --rdsiam-mysql-image) to an image of MySQL 8.4, or unset it "
            "to run mysql:8.4") in text, text
    assert "use --rdsiam-backend docker" not in text


@pytest.mark.parametrize(("args", "env", "message"), [
    # the flavour asked for and the image's name disagree
    (("--rdsiam-mysql-flavour", "mysql", "--rdsiam-mysql-image", "mariadb:10.11"), {},
     "--rdsiam-mysql-flavour mysql cannot be honoured: the docker backend would run "
     "mariadb:10.11"),
    (("--rdsiam-mysql-version", "10.6"), {"RDSIAM_MARIADB_IMAGE": "x/standin-mariadb:10.11"},
     None),  # flavour auto: $RDSIAM_MYSQL_IMAGE decides, unset here (the official image)
    (("--rdsiam-mysql-flavour", "mariadb", "--rdsiam-mysql-version", "10.11.6"),
     {"RDSIAM_MARIADB_IMAGE": "x/standin-mariadb:10.11"}, None),  # a less precise tag
    (("--rdsiam-mysql-flavour", "mysql", "--rdsiam-mysql-version", "8.4"),
     {"RDSIAM_ORACLE_MYSQL_IMAGE": "x/standin-mysql:sid"}, None),  # no version in the tag
    (("--rdsiam-mysql-flavour", "mariadb", "--rdsiam-mysql-version", "10.6"),
     {"RDSIAM_MARIADB_IMAGE": "x/standin-mariadb:10.11"},
     "--rdsiam-mysql-version 10.6 cannot be honoured: the docker backend would run "
     "x/standin-mariadb:10.11"),
])
def test_image_check_before_start(monkeypatch, args, env, message):
    """Only an image whose tag or name contradicts the options is refused before starting;
    anything else goes to the starter (here one that records the spec and stops there)."""
    from rdsiam_emulator.backends import BackendError

    for var in ("RDSIAM_MYSQL_IMAGE", "RDSIAM_MARIADB_IMAGE", "RDSIAM_ORACLE_MYSQL_IMAGE"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    values = dict(zip([a.removeprefix("--rdsiam-").replace("-", "_") for a in args[::2]],
                      args[1::2], strict=True))
    started: list[BackendSpec] = []

    class Started(Exception):
        pass

    def starter(spec: BackendSpec):
        started.append(spec)
        raise Started

    pool = BackendPool(PluginSettings(backend="docker", **values), starter=starter)
    if message is None:
        with pytest.raises(Started):
            pool.get("mysql")
        assert len(started) == 1
    else:
        with pytest.raises(BackendError, match="nothing was started") as info:
            pool.get("mysql")
        assert str(info.value).startswith(message), info.value
        assert started == []
