"""Command-line and ini options, resolved as: factory argument > command line > ini > default.

Each option is declared once (``OPTIONS``); ``resolve`` turns pytest's config into a typed
``PluginSettings`` so fixtures never read raw option strings.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

import pytest

from rdsiam_emulator.engines import ENGINES, Engine

# Spelled here, not imported: the backends package loads the drivers, and an inactive plugin
# must not (test_options checks they agree with backends.spec.ProviderName / instances.Naming).
ProviderName = Literal["auto", "docker", "local", "external"]
MysqlFlavour = Literal["auto", "mysql", "mariadb"]
Naming = Literal["rds", "loopback"]
EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
GlobalKeys = Literal["documented", "none"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """Everything the plugin's fixtures need to know, already typed."""

    enabled: bool = False
    backend: ProviderName = "auto"
    postgres_image: str | None = None
    """None: the engine's default (``$RDSIAM_POSTGRES_IMAGE``, else ``postgres:16``)."""
    mysql_image: str | None = None
    """None: the engine's default (``$RDSIAM_MYSQL_IMAGE``, else ``mysql:8.0``)."""
    postgres_version: str | None = None
    mysql_version: str | None = None
    postgres_url: str | None = None
    mysql_url: str | None = None
    mysql_flavour: MysqlFlavour = "auto"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    naming: Naming = "rds"
    reuse: bool = False
    future_skew: float = 300.0
    require_tls: bool = True
    throttling: bool = False
    events_file: str | None = None
    event_loop: EventLoopChoice = "auto"
    global_keys: GlobalKeys = "documented"

    def override(self, **changes: Any) -> PluginSettings:
        """Factory arguments win over everything; ``None`` means "not given"."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown rds_iam_db setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def for_engine(self, engine: Engine) -> EngineSettings:
        """The per-engine options (``<engine>_image``, ``_version``, ``_url``) of ``engine``."""
        return EngineSettings(image=getattr(self, f"{engine.name}_image"),
                              version=getattr(self, f"{engine.name}_version"),
                              url=getattr(self, f"{engine.name}_url"))


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """One engine's backend options; None: not given."""

    image: str | None
    version: str | None
    url: str | None


@dataclass(frozen=True, slots=True)
class Option:
    """One plugin setting as it appears on the command line and in the ini file.

    ``kind`` is ``"str"``, ``"bool"``, ``"float"`` or ``"choice"`` (then ``choices`` lists the
    accepted values); ``help`` is the text ``--help`` shows.
    """
    name: str
    """The PluginSettings field."""
    help: str
    kind: str = "str"  # str | bool | float | choice
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--rdsiam-postgres-image`` for ``postgres_image``."""
        return "--rdsiam-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        """The ini key, e.g. ``rdsiam_postgres_image`` for ``postgres_image``."""
        return "rdsiam_" + self.name


OPTIONS: tuple[Option, ...] = (
    Option("backend", "where the real servers come from", "choice", get_args(ProviderName)),
    Option("postgres_image", "container image for PostgreSQL (docker backend)"),
    Option("mysql_image", "container image for MySQL/MariaDB (docker backend)"),
    Option("postgres_version", "PostgreSQL major version (local binaries; image tag otherwise)"),
    Option("mysql_version", "MySQL/MariaDB version (image tag when no image is configured)"),
    Option("postgres_url", "admin URL of an existing PostgreSQL (external backend)"),
    Option("mysql_url", "admin URL of an existing MySQL/MariaDB (external backend)"),
    Option("mysql_flavour", "which MySQL-family server 'mysql' means", "choice",
           get_args(MysqlFlavour)),
    Option("region", "region of the emulated instances"),
    Option("account_id", "AWS account id of the emulated instances and of the principals the "
           "tests create (default: $MOTO_ACCOUNT_ID, else moto's 123456789012)"),
    Option("naming", "endpoint host names: RDS-style names or plain loopback", "choice",
           get_args(Naming)),
    Option("reuse", "keep backends running and reuse them between runs", "bool"),
    Option("future_skew", "seconds a token may be dated in the future", "float"),
    Option("require_tls", "refuse IAM logins without TLS, as RDS does", "bool"),
    Option("throttling", "emulate RDS's IAM connection throttling", "bool"),
    Option("events_file", "also write every auth event to this JSON-lines file"),
    Option("event_loop", "event loop of the endpoints (auto: uvloop when installed)", "choice",
           get_args(EventLoopChoice)),
    Option("global_keys", "global condition keys in a login's IAM request context: as RDS "
           "documents them, or none (the older guide's stricter reading)", "choice",
           get_args(GlobalKeys)),
)
_DEFAULT_IMAGES = {f"{e.name}_image": e.default_image for e in ENGINES.values()}
"""What an unset image option means (shown in --help)."""


def add_options(parser: pytest.Parser) -> None:
    """Register ``--rdsiam-emulator`` and one flag plus one ini key per entry of ``OPTIONS``.

    Flags default to None so that an unset flag falls back to the ini value; ``--help`` shows the
    effective default. Called from the plugin's ``pytest_addoption`` hook.
    """
    group = parser.getgroup("rdsiam-emulator", "RDS IAM authentication emulator")
    # same forms as the other on/off options, so the command line can switch off what the ini
    # switched on (--rdsiam-emulator=false)
    group.addoption("--rdsiam-emulator", default=None, nargs="?", const="true",
                    metavar="true|false", dest="rdsiam_emulator",
                    help="activate the emulator fixtures (default: false; ini rdsiam_emulator)")
    parser.addini("rdsiam_emulator", "activate the emulator fixtures", type="bool", default=False)
    defaults = PluginSettings()
    for opt in OPTIONS:
        default = _DEFAULT_IMAGES.get(opt.name) or getattr(defaults, opt.name)
        parser.addini(opt.ini, opt.help, default=None)
        if opt.kind == "bool":
            # the bare flag means "true" (pytest convention); a value is still accepted
            group.addoption(opt.flag, dest="rdsiam_" + opt.name, default=None, nargs="?",
                            const="true", metavar="true|false",
                            help=f"{opt.help} (default: {_word(default)}; ini {opt.ini})")
            continue
        choices = f"one of {', '.join(opt.choices)}; " if opt.choices else ""
        group.addoption(opt.flag, dest="rdsiam_" + opt.name, default=None,
                        choices=list(opt.choices) or None,
                        help=f"{opt.help} ({choices}default: {default}; ini {opt.ini})")


def _word(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


ACCOUNT_ID = re.compile(r"\d{12}")
MOTO_ACCOUNT_ENV = "MOTO_ACCOUNT_ID"
"""moto puts every request in this account when set (before the access key's own account)."""


def _convert(opt: Option, raw: str) -> Any:
    text = str(raw).strip()
    if opt.kind == "bool":
        lowered = text.lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        # a bare flag followed by a path takes the path as its value: say how to avoid that
        raise pytest.UsageError(
            f"{opt.flag}/{opt.ini}: expected true/false, got {raw!r} (a bare {opt.flag} takes "
            f"the next argument as its value: write {opt.flag}=true or put it after the paths)")
    if opt.kind == "float":
        try:
            number = float(text)
        except ValueError:
            raise pytest.UsageError(
                f"{opt.flag}/{opt.ini}: expected a number, got {raw!r}"
            ) from None
        if not math.isfinite(number) or number < 0:
            raise pytest.UsageError(
                f"{opt.flag}/{opt.ini}: expected a number of seconds >= 0, got {raw!r}")
        return number
    if opt.kind == "choice" and text not in opt.choices:
        raise pytest.UsageError(
            f"{opt.flag}/{opt.ini}: expected one of {', '.join(opt.choices)}, got {raw!r}"
        )
    if opt.name == "account_id" and not ACCOUNT_ID.fullmatch(text):
        raise pytest.UsageError(f"{opt.flag}/{opt.ini}: expected 12 digits, got {raw!r}")
    return text


def resolve(config: pytest.Config) -> PluginSettings:
    """Command line over ini over defaults; an unset account id follows $MOTO_ACCOUNT_ID, so the
    instances and moto's default account agree."""
    values: dict[str, Any] = {}
    cli_enabled = config.getoption("rdsiam_emulator", default=None)
    values["enabled"] = (bool(config.getini("rdsiam_emulator")) if cli_enabled is None
                         else _convert(ACTIVATION, cli_enabled))
    for opt in OPTIONS:
        raw = config.getoption("rdsiam_" + opt.name, default=None)
        if raw is None:
            raw = config.getini(opt.ini)
        if raw is None or raw in ("", []):
            continue
        values[opt.name] = _convert(opt, raw)
    if values["enabled"] and "region" in values:
        # only when active: neither the library nor botocore is for an inactive plugin to load
        from rdsiam_emulator.regions import region_problem

        problem = region_problem(values["region"])
        if problem:
            opt = _OPTIONS_BY_NAME["region"]
            raise pytest.UsageError(f"{opt.flag}/{opt.ini}: {problem}")
    moto_account = os.environ.get(MOTO_ACCOUNT_ENV)
    if "account_id" not in values and moto_account:
        values["account_id"] = _convert(_OPTIONS_BY_NAME["account_id"], moto_account)
    return PluginSettings(**values)


_OPTIONS_BY_NAME = {opt.name: opt for opt in OPTIONS}
ACTIVATION = Option("emulator", "activate the emulator fixtures", "bool")


def bare_activation_to_explicit(args: list[str]) -> bool:
    """Rewrite, in place, a bare ``--rdsiam-emulator`` that is followed by something other than
    a true/false word (a path, usually) to ``--rdsiam-emulator=true``; True if anything changed."""
    changed = False
    for i, arg in enumerate(args):
        if arg != ACTIVATION.flag or i + 1 >= len(args):
            continue
        following = args[i + 1]
        if following.startswith("-") or following.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            continue
        args[i] = f"{ACTIVATION.flag}=true"
        changed = True
    return changed
