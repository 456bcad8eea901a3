"""docs/pytest.md against the code: every documented factory argument, instance attribute and
option exists, and every factory argument and option is documented (issue #11: one name per
setting, everything documented). The suite also cites only public sources."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

from pytest_rdsiam.db import RdsIamDb
from rdsiam_emulator.instances import InstanceConfig

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "pytest.md").read_text()


def table_after(heading_cell: str) -> list[list[str]]:
    """Rows (cells) of the Markdown table whose header row starts with ``| heading_cell |``."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading_cell} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def names_in(cell: str) -> set[str]:
    """`a`, `b(x)` -> {"a", "b"}."""
    return {re.split(r"[(\s]", n, maxsplit=1)[0] for n in re.findall(r"`([^`]+)`", cell)}


def test_factory_arguments_are_the_instance_config_fields() -> None:
    documented = set().union(*(names_in(row[0]) for row in table_after("argument")))
    fields = {f.name for f in dataclasses.fields(InstanceConfig)}
    assert documented == fields


def test_documented_attributes_exist_on_the_fixture_object() -> None:
    documented = set().union(*(names_in(row[0]) for row in table_after("attribute / method")))
    missing = {n for n in documented if not hasattr(RdsIamDb, n)}
    # plain attributes are set in __init__: look them up in the source instead of on the class
    source = (ROOT / "pytest_plugin" / "pytest_rdsiam" / "db.py").read_text()
    missing = {n for n in missing if f"self.{n} =" not in source and f"def {n}" not in source}
    assert not missing, f"documented but not on RdsIamDb: {sorted(missing)}"


def test_every_option_is_documented_and_every_documented_option_exists() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "pytest_plugin").rglob("*.py"))
    options = set(re.findall(r"--rdsiam-[a-z-]+", source)) - {"--rdsiam-"}
    option_rows = {n for row in table_after("command line") for n in
                   re.findall(r"--rdsiam-[a-z-]+", row[0])}
    # most flags are built from a setting name ("--rdsiam-" + name): Option.flag gives them
    assert not (option_rows - options - _generated_options()), "documented, not defined"
    assert not ((options | _generated_options()) - option_rows), "defined, not in the table"


def _generated_options() -> set[str]:
    from pytest_rdsiam.options import OPTIONS

    return {o.flag for o in OPTIONS}


def test_the_suite_cites_public_sources_only() -> None:
    """RDS_BEHAVIOUR.md lives outside this repository; tests and docs cite AWS docs and SDK
    sources instead, so the suite stands on its own."""
    files = subprocess.run(["git", "ls-files", "src", "pytest_plugin", "tests", "docs", "bench"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    this = Path(__file__).resolve().relative_to(ROOT).as_posix()
    citing = [f for f in files if f != this and (ROOT / f).is_file()
              and "RDS_BEHAVIOUR" in (ROOT / f).read_text(errors="replace")]
    assert not citing
