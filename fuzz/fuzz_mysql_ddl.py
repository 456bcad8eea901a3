"""Fuzz target ``mysql_ddl``: see ``checks.check_mysql_ddl`` (docs/fuzzing.md).

    uv run --frozen python fuzz/fuzz_mysql_ddl.py -atheris_runs=1000000
"""

from _runner import fuzz

if __name__ == "__main__":
    fuzz("mysql_ddl")
