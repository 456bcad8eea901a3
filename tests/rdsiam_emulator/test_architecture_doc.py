"""docs/architecture.md's module table and the tree under src/rdsiam_emulator agree both ways."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "rdsiam_emulator"


def table_rows(doc: str) -> dict[str, str]:
    """First cell's name (``auth/``, ``clock``) → the row's text, from the module table."""
    section = doc.split("## Modules and what each owns", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            rows[re.findall(r"`([^`]+)`", first)[0]] = line
    return rows


def tree(pkg: Path) -> tuple[set[str], dict[str, set[str]]]:
    """Top-level modules, and each package directory (``protocols/mysql/``) → its modules."""
    top = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    packages = {
        d.relative_to(pkg).as_posix() + "/":
            {p.stem for p in d.glob("*.py") if p.stem != "__init__"}
        for d in pkg.rglob("*") if d.is_dir() and (d / "__init__.py").exists()
    }
    return top, packages


def mismatches(doc: str, pkg: Path) -> list[str]:
    rows = table_rows(doc)
    top, packages = tree(pkg)
    named = {n for n in rows if n != "pytest_rdsiam"}
    problems = [f"not in the table: {n}" for n in sorted((top | set(packages)) - named)]
    problems += [f"in the table, not in the tree: {n}" for n in sorted(named - top - set(packages))]
    for package, modules in packages.items():
        mentioned = set(re.findall(r"`([A-Za-z0-9_]+)", rows.get(package, "")))
        problems += [f"{package} row does not name {m}" for m in sorted(modules - mentioned)]
    return problems


def test_the_module_table_matches_the_tree() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    top, packages = tree(PKG)
    assert {"auth/", "aws/", "protocols/mysql/"} <= set(packages) and "reasons" in top
    assert mismatches(doc, PKG) == []


def test_the_check_sees_a_missing_row_and_a_stale_one(tmp_path: Path) -> None:
    pkg = tmp_path / "rdsiam_emulator"
    (pkg / "auth").mkdir(parents=True)
    for name in ("__init__.py", "clock.py", "auth/__init__.py", "auth/tokens.py", "auth/new.py"):
        (pkg / name).write_text("")
    doc = ("## Modules and what each owns\n\n| module | owns |\n|---|---|\n"
           "| `clock` | time |\n| `auth/` | `tokens` |\n| `gone` | nothing |\n\n## Next\n")
    assert mismatches(doc, pkg) == ["in the table, not in the tree: gone",
                                    "auth/ row does not name new"]
    (pkg / "extra.py").write_text("")
    assert "not in the table: extra" in mismatches(doc, pkg)
