"""Every example in docs/examples runs as a user's test file, so the docs cannot drift."""

import os
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[2] / "docs" / "examples").glob("test_*.py"))


def run_as_user(pytester):
    """In a child process: an in-process run unloads the modules it imported (pytester restores
    sys.modules), so a later import in this process re-registers SQLAlchemy's dialect functions
    and warns (SAWarning: GenericFunction … is already registered)."""
    return pytester.runpytest_subprocess("--rdsiam-emulator", "--rdsiam-backend", "local",
                                         "-p", "no:xdist", "-p", "no:cacheprovider")


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_passes(pytester, example):
    pytester.makepyfile(**{example.stem: example.read_text()})
    result = run_as_user(pytester)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert not {"failed", "errors", "skipped", "error"} & outcomes.keys(), result.stdout.str()


def test_examples_run_outside_this_process(pytester):
    pytester.makepyfile(test_probe="import os\n\ndef test_pid():\n"
                                   "    open('pid', 'w').write(str(os.getpid()))\n")
    result = run_as_user(pytester)
    result.assert_outcomes(passed=1)
    assert int((pytester.path / "pid").read_text()) != os.getpid()


def test_examples_exist():
    assert len(EXAMPLES) >= 5
