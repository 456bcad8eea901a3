"""Every example in docs/examples runs as a user's test file, so the docs cannot drift."""

from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[2] / "docs" / "examples").glob("test_*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_passes(pytester, example):
    pytester.makepyfile(**{example.stem: example.read_text()})
    result = pytester.runpytest("--rdsiam-emulator", "--rdsiam-backend", "local",
                                "-p", "no:xdist", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert not {"failed", "errors", "skipped", "error"} & outcomes.keys(), result.stdout.str()


def test_examples_exist():
    assert len(EXAMPLES) >= 5
