"""Fuzz target ``policy``: see ``checks.check_policy`` (docs/fuzzing.md).

    uv run --frozen python fuzz/fuzz_policy.py -atheris_runs=1000000
"""

from _runner import fuzz

if __name__ == "__main__":
    fuzz("policy")
