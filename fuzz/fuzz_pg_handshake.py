"""Fuzz target ``pg_handshake``: see ``checks.check_pg_frontend`` (docs/fuzzing.md).

    uv run --frozen python fuzz/fuzz_pg_handshake.py -atheris_runs=1000000
"""

from _runner import fuzz

if __name__ == "__main__":
    fuzz("pg_handshake")
