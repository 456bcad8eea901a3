"""Fuzz target ``mysql_handshake``: see ``checks.check_mysql_handshake`` (docs/fuzzing.md).

    uv run --frozen python fuzz/fuzz_mysql_handshake.py -atheris_runs=1000000
"""

from _runner import fuzz

if __name__ == "__main__":
    fuzz("mysql_handshake")
