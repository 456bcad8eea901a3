import pytest

from pytest_rdsiam.options import PluginSettings
from rdsiam_emulator.engines import MARIADB, ORACLE_MYSQL

PROBE = """
from pytest_rdsiam.plugin import settings_of

def test_probe(request):
    s = settings_of(request.config)
    print("SETTINGS", s.enabled, s.backend, s.region, s.future_skew, s.throttling, s.naming)
"""


def _settings_line(result):
    [line] = [out for out in result.outlines if "SETTINGS" in out]
    return line.split("SETTINGS", 1)[1].split()[:6]


def test_defaults_without_activation(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    assert _settings_line(result) == ["False", "auto", "us-east-1", "300.0", "False", "rds"]


def test_ini_activates_and_configures(pytester):
    pytester.makeini("""
        [pytest]
        rdsiam_emulator = true
        rdsiam_backend = local
        rdsiam_region = eu-west-1
        rdsiam_throttling = on
    """)
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    assert _settings_line(result) == ["True", "local", "eu-west-1", "300.0", "True", "rds"]


def test_command_line_beats_ini(pytester):
    pytester.makeini("""
        [pytest]
        rdsiam_backend = local
        rdsiam_region = eu-west-1
    """)
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s", "-p", "no:xdist", "--rdsiam-emulator",
                                "--rdsiam-region", "ap-south-1", "--rdsiam-future-skew", "30",
                                "--rdsiam-naming", "loopback")
    result.assert_outcomes(passed=1)
    assert _settings_line(result) == ["True", "local", "ap-south-1", "30.0", "False", "loopback"]


def test_bad_values_are_usage_errors(pytester):
    pytester.makeini("""
        [pytest]
        rdsiam_throttling = sometimes
    """)
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-p", "no:xdist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*rdsiam_throttling*expected true/false*sometimes*"])


def test_bad_choice_on_command_line(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-p", "no:xdist", "--rdsiam-backend", "cloud")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_factory_arguments_win_and_unknown_names_fail():
    base = PluginSettings(region="eu-west-1", backend="local")
    assert base.override(region="us-west-2", backend=None).region == "us-west-2"
    assert base.override(backend=None).backend == "local"
    with pytest.raises(TypeError, match="unknown rds_iam_db setting"):
        base.override(regoin="x")


def test_backend_specs_follow_the_settings():
    from pytest_rdsiam.pool import BackendPool

    pool = BackendPool(PluginSettings(backend="docker", postgres_version="15",
                                      mysql_flavour="mariadb", reuse=True))
    pg = pool.spec_for("postgres")
    assert (pg.provider, pg.version, pg.reuse, pg.image) == ("docker", "15", True, None)
    assert pg.resolved_image({}) == "postgres:15"
    my = pool.spec_for("mysql")
    assert my.resolved_image({}) == "mariadb:11"
    assert my.flavour is MARIADB
    oracle = BackendPool(PluginSettings(mysql_flavour="mysql")).spec_for("mysql")
    assert oracle.flavour is ORACLE_MYSQL
    assert oracle.resolved_image({}) == "mysql:8.4"
    assert oracle.resolved_image({"RDSIAM_ORACLE_MYSQL_IMAGE": "o:1",
                                  "RDSIAM_MYSQL_IMAGE": "m:1"}) == "o:1"
    assert BackendPool(PluginSettings()).spec_for("mysql").flavour is None
    custom = BackendPool(PluginSettings(mysql_image="mysql:8.4")).spec_for("mysql")
    assert custom.resolved_image({}) == "mysql:8.4"


LOOP_PROBE = """
def test_loop(rds_iam_instances):
    print("LOOP", rds_iam_instances.emulator.event_loop)
"""


@pytest.mark.parametrize(("args", "env", "expected"), [
    ((), None, "uvloop"),
    (("--rdsiam-event-loop", "asyncio"), None, "asyncio"),
    ((), "asyncio", "asyncio"),  # auto leaves the choice to $RDSIAM_EVENT_LOOP
    (("--rdsiam-event-loop", "uvloop"), "asyncio", "uvloop"),
])
def test_event_loop_option(pytester, monkeypatch, args, env, expected):
    if env is None:
        monkeypatch.delenv("RDSIAM_EVENT_LOOP", raising=False)
    else:
        monkeypatch.setenv("RDSIAM_EVENT_LOOP", env)
    pytester.makepyfile(LOOP_PROBE)
    result = pytester.runpytest("-s", "-p", "no:xdist", "--rdsiam-emulator",
                                "--rdsiam-backend", "local", *args)
    result.assert_outcomes(passed=1)
    [line] = [out for out in result.outlines if "LOOP " in out]
    assert line.split("LOOP ", 1)[1].split()[0] == expected


def test_global_keys_option(pytester):
    """--rdsiam-global-keys / rdsiam_global_keys selects the request-context reading; the pool
    passes it to every instance it configures."""
    from types import SimpleNamespace

    from pytest_rdsiam.pool import InstancePool

    pytester.makepyfile("""
from pytest_rdsiam.plugin import settings_of

def test_probe(request):
    print("GLOBALKEYS", settings_of(request.config).global_keys)
""")
    result = pytester.runpytest("-s", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    assert "GLOBALKEYS documented" in result.stdout.str()
    result = pytester.runpytest("-s", "-p", "no:xdist", "--rdsiam-global-keys", "none")
    result.assert_outcomes(passed=1)
    assert "GLOBALKEYS none" in result.stdout.str()
    pool = SimpleNamespace(settings=PluginSettings(global_keys="none"))
    assert InstancePool.default_config(pool, "postgres").global_keys == "none"  # type: ignore[arg-type]
    result = pytester.runpytest("-p", "no:xdist", "--rdsiam-global-keys", "all")
    assert result.ret != 0


def test_an_explicit_default_image_is_honoured_over_the_environment(monkeypatch):
    """``--rdsiam-postgres-image postgres:16`` names an image: it is not "unset", so
    $RDSIAM_POSTGRES_IMAGE (the stand-in override) does not replace it."""
    from pytest_rdsiam.pool import BackendPool

    env = {"RDSIAM_POSTGRES_IMAGE": "stand-in/pg:1", "RDSIAM_MYSQL_IMAGE": "stand-in/my:1"}
    explicit = BackendPool(PluginSettings(postgres_image="postgres:16", mysql_image="mysql:8.0"))
    assert explicit.spec_for("postgres").resolved_image(env) == "postgres:16"
    assert explicit.spec_for("mysql").resolved_image(env) == "mysql:8.0"
    unset = BackendPool(PluginSettings())
    assert unset.spec_for("postgres").resolved_image(env) == "stand-in/pg:1"


def test_option_choices_agree_with_the_library():
    from typing import get_args

    from pytest_rdsiam import options
    from rdsiam_emulator.backends.spec import PROVIDERS
    from rdsiam_emulator.instances import Naming

    assert get_args(options.ProviderName) == PROVIDERS
    assert get_args(options.Naming) == get_args(Naming)
