"""``rdsiam-emulator`` command line: a thin dispatcher over ``rdsiam_emulator.commands.*``.

Each subcommand module exposes ``register(subparsers)`` and sets ``func`` on its parser; the
function takes the parsed namespace and returns an exit code. Business logic stays in the library.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "rdsiam_emulator.commands.demo",
    "rdsiam_emulator.commands.policy",
    "rdsiam_emulator.commands.serve",
    "rdsiam_emulator.commands.token",
)
"""Add a module here to add a subcommand."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdsiam-emulator",
        description="Offline emulator for Amazon RDS IAM database authentication.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


EXIT_USAGE = 2
"""Usage errors (argparse's code), for every command."""
EXIT_ENVIRONMENT = 4
"""The command could not get what it needs from this machine: no database server could be
started or reached (``BackendUnavailable``, ``BackendError``). Commands' own codes stay below."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return func(args)
    except Exception as exc:
        # expected failures are one message, not a traceback; anything else is a bug: re-raise
        from rdsiam_emulator.backends.errors import BackendError

        if not isinstance(exc, BackendError):
            raise
        sys.stderr.write(f"rdsiam-emulator {args.command}: {exc}\n")
        return EXIT_ENVIRONMENT


if __name__ == "__main__":
    raise SystemExit(main())
