"""Fuzz target ``config``: see ``checks.check_config`` (docs/fuzzing.md).

    uv run --frozen python fuzz/fuzz_config.py -atheris_runs=1000000
"""

from _runner import fuzz

if __name__ == "__main__":
    fuzz("config")
