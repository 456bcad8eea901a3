"""Loading the plugin while not activated: cheap, no moto, stand-ins that skip with a how-to."""

import inspect

import pytest

from pytest_rdsiam import fixtures, inactive

NOT_IMPORTED_WHEN_INACTIVE = ("moto", "boto3", "botocore", "psycopg", "pymysql",
                              "rdsiam_emulator.instances", "pytest_rdsiam.fixtures")


def test_inactive_run_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=f'''
import sys

def test_nothing_heavy_loaded():
    assert "pytest_rdsiam.plugin" in sys.modules   # the entry point did load
    loaded = [m for m in {NOT_IMPORTED_WHEN_INACTIVE!r} if m in sys.modules]
    assert loaded == []
''')
    # a subprocess: this process already imported all of them. pytest-postgresql (dev group,
    # only a benchmark baseline) imports psycopg when its entry point loads: not ours to judge
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:cacheprovider",
                                           "-p", "no:pytest_postgresql")
    result.assert_outcomes(passed=1)


def test_stand_ins_cover_every_fixture_with_its_scope() -> None:
    real = {
        (marker.name or attr): (marker.scope or "function")
        for attr, obj in inspect.getmembers(fixtures)
        if (marker := getattr(obj, "_fixture_function_marker", None)) is not None
    }
    assert real == inactive.FIXTURE_SCOPES
