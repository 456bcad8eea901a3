"""Every subcommand's --help says what it does and what each option means."""

import argparse
import subprocess
import sys

import pytest

from rdsiam_emulator.backends.spec import PROVIDERS
from rdsiam_emulator.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, path: str = "rdsiam-emulator"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


PARSERS = list(_parsers(build_parser()))


def test_every_command_is_covered() -> None:
    names = {path for path, _ in PARSERS}
    assert {"rdsiam-emulator demo", "rdsiam-emulator token explain",
            "rdsiam-emulator policy check"} <= names


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=[p for p, _ in PARSERS])
def test_help_has_a_description_and_every_option_a_meaning(path, parser) -> None:
    assert parser.description, f"{path} --help has no description"
    undocumented = [a.option_strings or [a.dest] for a in parser._actions
                    if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert undocumented == [], f"{path}: options without help: {undocumented}"


def test_demo_offers_every_backend_provider() -> None:
    out = subprocess.run([sys.executable, "-m", "rdsiam_emulator.cli", "demo", "--help"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "{" + ",".join(PROVIDERS) + "}" in out
    assert "external" in PROVIDERS and "--postgres-url URL" in out and "--mysql-url URL" in out


def test_demo_external_without_url_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "rdsiam_emulator.cli", "demo",
                           "--backend", "external", "--engine", "mysql"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "--backend external needs --mysql-url" in proc.stderr
