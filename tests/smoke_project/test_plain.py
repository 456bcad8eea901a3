import sys


def test_unrelated_code_runs_with_the_plugin_installed_but_not_activated():
    assert "pytest_rdsiam.plugin" in sys.modules  # the installed entry point was loaded
    heavy = [m for m in ("moto", "boto3", "psycopg", "pymysql", "rdsiam_emulator.instances")
             if m in sys.modules]
    assert heavy == []
    assert sum(range(4)) == 6
