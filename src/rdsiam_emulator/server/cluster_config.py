"""``[[clusters]]`` in the serve config: emulated Aurora clusters started at boot (docs/server.md).

Keys follow ``[[instances]]`` where they mean the same (``iam_enabled``, ``iam_db_users``,
``dbname``, ``master_username``, ``master_password``, ``version``); a cluster adds ``name`` (the
DBClusterIdentifier), ``engine`` (``aurora-postgresql`` | ``aurora-mysql``) and ``readers``.
Problems raise ``ConfigError`` (``clusters[0].readers: …``), as every other key does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rdsiam_emulator.server.config import (
    _DB_USER,
    _IDENTIFIER,
    ConfigError,
    InstanceSpec,
    ServerConfig,
    _bool,
    _int,
    _only,
    _str,
    _str_list,
)

CLUSTER_ENGINES = {"aurora-postgresql": "postgres", "aurora-mysql": "mysql"}
"""RDS engine of a cluster → the engine its members' servers run."""
MAX_READERS = 15
"""Aurora's limit of Aurora Replicas per cluster."""
_KEYS = {"name", "engine", "readers", "iam_enabled", "iam_db_users", "dbname",
         "master_username", "master_password", "version"}


@dataclass(frozen=True)
class ClusterSpec:
    """One ``[[clusters]]`` entry: an Aurora cluster (a writer and ``readers`` replicas)."""

    name: str
    """The DBClusterIdentifier (lower case)."""
    engine: Literal["aurora-postgresql", "aurora-mysql"]
    readers: int = 1
    iam_enabled: bool = True
    iam_db_users: tuple[str, ...] = ()
    dbname: str = "app"
    master_username: str | None = None
    master_password: str | None = None
    version: str | None = None
    """Local PostgreSQL major version (aurora-postgresql only); None: the newest installed."""

    @property
    def server_engine(self) -> Literal["postgres", "mysql"]:
        """``postgres`` or ``mysql``: what the members' servers run."""
        return "postgres" if self.engine == "aurora-postgresql" else "mysql"

    @property
    def member_ids(self) -> tuple[str, ...]:
        """The members' identifiers, writer first (``<name>-instance-1`` …, as the console)."""
        return tuple(f"{self.name}-instance-{i}" for i in range(1, self.readers + 2))


def parse_clusters(data: Mapping[str, Any], instances: tuple[InstanceSpec, ...],
                   server: ServerConfig) -> tuple[ClusterSpec, ...]:
    """The ``clusters`` array of the parsed TOML ``data``, checked against the ``instances``
    (identifiers) and ``server.max_instances`` (every member counts, as on RDS). Raises
    ``ConfigError``."""
    raw = data.get("clusters", [])
    if not isinstance(raw, list):
        raise ConfigError("clusters", "must be an array of tables ([[clusters]])")
    specs = tuple(_cluster(i, entry) for i, entry in enumerate(raw))
    if specs and server.create_listen_host != "loopback":
        raise ConfigError("clusters", f"clusters listen on loopback addresses only (one per "
                          f"endpoint name); with server.create_listen_host = "
                          f"{server.create_listen_host!r} (a container) clients outside could "
                          "not reach them: not done yet (docs/aurora.md)")
    max_instances = server.max_instances
    taken = {inst.identifier: f"instances[{i}]" for i, inst in enumerate(instances)}
    names: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in names:
            raise ConfigError(f"clusters[{i}].name", f"{spec.name!r} is already used by "
                              f"clusters[{names[spec.name]}]")
        names[spec.name] = i
        for member in spec.member_ids:
            if member in taken:
                raise ConfigError(f"clusters[{i}].name", f"its member {member!r} is already "
                                  f"used by {taken[member]}")
        taken.update((m, f"clusters[{i}]") for m in spec.member_ids)
    total = len(instances) + sum(s.readers + 1 for s in specs)
    if specs and total > max_instances:
        raise ConfigError("clusters", f"{len(instances)} instances and "
                          f"{total - len(instances)} cluster members are more than "
                          f"server.max_instances ({max_instances}, RDS's quota)")
    return specs


def _cluster(i: int, raw: Any) -> ClusterSpec:
    key = f"clusters[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a table")
    _only(raw, key, _KEYS)
    if "name" not in raw:
        raise ConfigError(f"{key}.name", "is required")
    name = _str(raw, key, "name", "")
    # the members are <name>-instance-N, which must stay an identifier (63 characters)
    if not _IDENTIFIER.match(name) or len(name) > 50:
        raise ConfigError(f"{key}.name", f"{name!r} is not a DB cluster identifier (a letter, "
                          "then up to 49 letters, digits or single hyphens)")
    if name != name.lower():
        raise ConfigError(f"{key}.name", f"{name!r}: RDS stores DB cluster identifiers in "
                          f"lower case; write {name.lower()!r}")
    if "engine" not in raw:
        raise ConfigError(f"{key}.engine", "is required (aurora-postgresql or aurora-mysql)")
    engine = _str(raw, key, "engine", "")
    if engine not in CLUSTER_ENGINES:
        raise ConfigError(f"{key}.engine", f"must be aurora-postgresql or aurora-mysql, "
                          f"got {engine!r}")
    readers = _int(raw, key, "readers", 1, 0, MAX_READERS)
    users = _str_list(raw, key, "iam_db_users")
    for j, user in enumerate(users):
        if not _DB_USER.match(user):
            raise ConfigError(f"{key}.iam_db_users[{j}]", f"{user!r} is not a plain database "
                              "user name (letters, digits, _ and $; at most 63)")
    version = raw.get("version")
    if version is not None and not isinstance(version, str):
        raise ConfigError(f"{key}.version", 'must be a string, e.g. "15"')
    if version is not None and engine != "aurora-postgresql":
        raise ConfigError(f"{key}.version", "is only for aurora-postgresql (aurora-mysql runs "
                          "the local MariaDB)")
    optional: dict[str, str | None] = {}
    for field_name in ("master_username", "master_password"):
        value = raw.get(field_name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{key}.{field_name}", "must be a non-empty string")
        optional[field_name] = value
    return ClusterSpec(
        name=name, engine=engine,  # type: ignore[arg-type]
        readers=readers, iam_enabled=_bool(raw, key, "iam_enabled", True), iam_db_users=users,
        dbname=_str(raw, key, "dbname", "app"), master_username=optional["master_username"],
        master_password=optional["master_password"], version=version)
