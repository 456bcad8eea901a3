"""Option values a newcomer got wrong (#11): each is a usage error naming the option, and the
activation flag takes the same true/false forms as the other on/off options."""

import pytest

# cryptography's Rust bindings break if a pytester run is the first to import it and it is then
# re-imported: keep it imported by this process (pytester only drops what the inner run added)
import rdsiam_emulator.tls  # noqa: F401

PROBE = """
from pytest_rdsiam.plugin import settings_of

def test_probe(request):
    s = settings_of(request.config)
    print("SETTINGS", s.enabled, s.region, s.future_skew)
"""


def _settings_line(result):
    [line] = [out for out in result.outlines if "SETTINGS" in out]
    return line.split("SETTINGS", 1)[1].split()


def test_unknown_region_is_a_usage_error_naming_the_option(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-p", "no:xdist", "--rdsiam-emulator", "--rdsiam-region", "mars-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rdsiam-region/rdsiam_region: unknown AWS region 'mars-1'*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_regions_of_every_partition_are_accepted(pytester):
    pytester.makepyfile(PROBE)
    for region in ("eu-west-1", "cn-north-1", "us-gov-west-1"):
        result = pytester.runpytest("-s", "-p", "no:xdist", "--rdsiam-emulator",
                                    "--rdsiam-region", region)
        result.assert_outcomes(passed=1)
        assert _settings_line(result)[:2] == ["True", region]


def test_inactive_plugin_does_not_check_the_region(pytester):
    pytester.makeini("""
        [pytest]
        rdsiam_region = mars-1
    """)
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    assert _settings_line(result) == ["False", "mars-1", "300.0"]


@pytest.mark.parametrize("value", ["-5", "nan", "inf"])
def test_future_skew_must_be_seconds_not_negative(pytester, value):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-p", "no:xdist", "--rdsiam-emulator",
                                f"--rdsiam-future-skew={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--rdsiam-future-skew/rdsiam_future_skew: expected a number of seconds >= 0, "
         f"got '{value}'*"])


def test_zero_future_skew_is_allowed(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s", "-p", "no:xdist", "--rdsiam-emulator",
                                "--rdsiam-future-skew=0")
    result.assert_outcomes(passed=1)
    assert _settings_line(result)[2] == "0.0"


@pytest.mark.parametrize(("args", "enabled"), [
    (["--rdsiam-emulator=false"], "False"),
    (["--rdsiam-emulator", "off"], "False"),
    (["--rdsiam-emulator=true"], "True"),
    ([], "True"),
])
def test_command_line_can_switch_off_what_the_ini_switched_on(pytester, args, enabled):
    pytester.makeini("""
        [pytest]
        rdsiam_emulator = true
    """)
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s", "-p", "no:xdist", *args)
    result.assert_outcomes(passed=1)
    assert _settings_line(result)[0] == enabled


def test_bare_activation_flag_before_a_path_still_activates(pytester):
    pytester.makepyfile(test_probe_here=PROBE)
    result = pytester.runpytest("-s", "-p", "no:xdist", "--rdsiam-emulator", "test_probe_here.py")
    result.assert_outcomes(passed=1)
    assert _settings_line(result)[0] == "True"


def test_bad_activation_value_is_a_usage_error(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-p", "no:xdist", "--rdsiam-emulator=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rdsiam-emulator/rdsiam_emulator: expected true/false*"])


FACTORY_TESTS = """
import pytest

def test_bad_factory_values(rds_iam_db_factory):
    with pytest.raises(ValueError, match="region: unknown AWS region 'mars-1'"):
        rds_iam_db_factory(region="mars-1")
    with pytest.raises(ValueError, match="future_skew must be seconds >= 0, got -5"):
        rds_iam_db_factory(future_skew=-5)
"""


def test_factory_refuses_the_same_values(pytester):
    pytester.makepyfile(test_factory_values=FACTORY_TESTS)
    result = pytester.runpytest("-p", "no:xdist", "--rdsiam-emulator", "--rdsiam-backend", "local")
    result.assert_outcomes(passed=1)
