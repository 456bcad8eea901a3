"""The no-silent-skips policy of tests/conftest.py, applied to a throw-away project."""

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.fixture
def policed(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())
    return pytester


def test_a_skip_off_the_allow_list_fails(policed: pytest.Pytester) -> None:
    policed.makepyfile(test_tools='''
import shutil
import pytest

def test_runtime_skip():
    pytest.skip(reason="the AWS CLI is not installed")

@pytest.mark.skipif(True, reason="node is not installed")
def test_marked_skip():
    pass
''')
    result = policed.runpytest("-p", "no:xdist")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*not on the allow-list*node is not installed*",
                                 "*not on the allow-list*the AWS CLI is not installed*"])


def test_allowed_skips_and_xfails_stay_what_they_are(policed: pytest.Pytester) -> None:
    policed.makepyfile(test_ok='''
import pytest

def test_allowed():
    pytest.skip(reason="mysql-connector C extension not loadable here")

@pytest.mark.xfail(reason="known")
def test_xfail():
    raise AssertionError

def test_passes():
    assert True
''')
    result = policed.runpytest("-p", "no:xdist")
    result.assert_outcomes(skipped=1, xfailed=1, passed=1)


def test_collection_time_skips_and_imperative_xfails_are_policed(policed: pytest.Pytester) -> None:
    """A module-level skip or importorskip skips before any test report exists, and
    pytest.xfail() in a test body is a skip by another name: the allow-list applies to both."""
    policed.makepyfile(
        test_modskip='''
import pytest
pytest.skip(reason="psql not installed", allow_module_level=True)

def test_never():
    pass
''',
        test_importorskip='''
import pytest
pytest.importorskip("no_such_oracle_module_here")

def test_never():
    pass
''',
        test_imperative_xfail='''
import pytest

def test_tool():
    pytest.xfail("aws cli not installed")

@pytest.mark.xfail(reason="a known bug, declared where the test is")
def test_declared():
    raise AssertionError
''',
    )
    # a collection error stops a real run at once; here the rest runs too, to see every verdict
    result = policed.runpytest("-p", "no:xdist", "--continue-on-collection-errors")
    result.assert_outcomes(failed=1, errors=2, xfailed=1)
    result.stdout.fnmatch_lines_random([
        "*not on the allow-list*psql not installed*",
        "*not on the allow-list*could not import 'no_such_oracle_module_here'*",
        "*not on the allow-list*aws cli not installed*",
    ])
