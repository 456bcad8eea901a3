"""Fuzz target ``token``: see ``checks.check_token`` (docs/fuzzing.md).

    uv run --frozen python fuzz/fuzz_token.py -atheris_runs=1000000
"""

from _runner import fuzz

if __name__ == "__main__":
    fuzz("token")
