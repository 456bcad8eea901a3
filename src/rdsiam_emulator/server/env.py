"""Environment variables that override the common ``[server]`` knobs (docs/server.md lists them).

Applied to the parsed TOML before validation, so a bad value is reported like a bad key, but
named by its variable (``RDSIAM_PORT: must be an integer``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONFIG_VAR = "RDSIAM_CONFIG"
"""Path of the TOML file when ``--config`` is not given."""

OVERRIDES: dict[str, tuple[str, type]] = {
    "RDSIAM_PORT": ("port", int),
    "RDSIAM_HOST": ("host", str),
    "RDSIAM_REGION": ("region", str),
    "RDSIAM_ACCOUNT_ID": ("account_id", str),
    "RDSIAM_DNS_LABEL": ("dns_label", str),
    "RDSIAM_STATE_DIR": ("state_dir", str),
    "RDSIAM_CREATE_LISTEN_HOST": ("create_listen_host", str),
    "RDSIAM_MAX_INSTANCES": ("max_instances", int),
}
"""variable → (``[server]`` key, type). An empty variable counts as unset."""


def apply(data: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``data`` with the set variables written into its ``[server]`` table.

    Raises ``config.ConfigError`` (naming the variable) for a value of the wrong type.
    """
    from rdsiam_emulator.server.config import ConfigError

    out = dict(data)
    server = out.get("server", {})
    if not isinstance(server, dict):
        return out  # parse() reports the bad table
    server = dict(server)
    for var, (key, kind) in OVERRIDES.items():
        text = environ.get(var, "").strip()
        if not text:
            continue
        if kind is int:
            try:  # a sign is fine here: the range check (naming the variable) follows
                if not text.lstrip("+-").isascii():  # int() takes "１４５６６" too
                    raise ValueError(text)
                server[key] = int(text)
            except ValueError:
                raise ConfigError(var, f"must be an integer, got {text!r}") from None
        else:
            server[key] = text
    out["server"] = server
    return out


def variable_for(key: str, environ: Mapping[str, str]) -> str | None:
    """The variable that set config key ``key`` (``server.port`` → ``RDSIAM_PORT``), or None
    when the value came from the file (or the default)."""
    for var, (name, _) in OVERRIDES.items():
        if key == f"server.{name}" and environ.get(var, "").strip():
            return var
    return None
