"""The ``serve`` configuration: TOML → typed, frozen dataclasses, checked before anything starts.

Every problem raises ``ConfigError`` naming the key (``instances[1].listen``) and what is wrong,
so ``serve`` can exit 2 with one message. Environment overrides are applied by ``env.py`` on the
parsed TOML before validation, so a bad override is reported the same way. See docs/server.md.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rdsiam_emulator.server.cluster_config import ClusterSpec
    from rdsiam_emulator.server.proxy_config import ProxySpec

from rdsiam_emulator.regions import region_problem

DEFAULT_PORT = 4566
DEFAULT_MAX_INSTANCES = 40
"""RDS's default quota of DB instances per account and region."""
WILDCARDS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - names them, binds nothing
"""Listen addresses meaning "every interface"."""
ENGINE_PORTS = {"postgres": 5432, "mysql": 3306}
_IDENTIFIER = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{0,62}(?<!-)$")
"""RDS DB instance identifiers: a letter, then letters/digits/hyphens, no ``--``, no trailing -."""
_DB_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]{1,63}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_IAM_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ACCESS_KEY = re.compile(r"^[A-Z0-9]{16,128}$")

Backend = Literal["local", "external"]


class ConfigError(ValueError):
    """A configuration problem; ``str()`` is one line: ``<key>: <what is wrong>``."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class ServerConfig:
    """The ``[server]`` table: the HTTP port and the account/region the instances live in."""
    port: int = DEFAULT_PORT
    """The HTTP port (AWS APIs + ``/_rdsiam/``)."""
    host: str = "127.0.0.1"
    """Address the HTTP port binds to (a container sets ``0.0.0.0``)."""
    region: str = "us-east-1"
    account_id: str = "123456789012"
    dns_label: str | None = None
    """The account/region label of RDS-style names (``c`` + 11 lower-case letters or digits, e.g.
    ``c1rdsiamdemo1``); None: a random one per start."""
    state_dir: Path | None = None
    """Where CA and server data live; None: a temporary directory removed at exit."""
    create_listen_host: str = "loopback"
    """Where instances made by ``create_db_instance`` listen: ``loopback`` (the next free
    127.0.0.x, engine's standard port) or an address (engine's standard port)."""
    max_instances: int = DEFAULT_MAX_INSTANCES
    """DB instances the account may have in this server (configured + API-created), as RDS's
    default quota; ``create_db_instance`` beyond it fails with ``InstanceQuotaExceeded``."""
    throttling: bool = False
    """RDS's IAM connection throttling on every instance and cluster member (opt-in: more than
    200 new connections/s with distinct tokens, or 20/s from distinct identities, refused)."""


@dataclass(frozen=True)
class InstanceSpec:
    """One ``[[instances]]`` entry: an RDS instance to start at boot."""
    identifier: str
    engine: Literal["postgres", "mysql"]
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    """0: a free port."""
    iam_db_users: tuple[str, ...] = ()
    iam_enabled: bool = True
    aliases: tuple[str, ...] = ()
    backend: Backend = "local"
    url: str | None = None
    """Admin URL of the server when ``backend = "external"``."""
    version: str | None = None
    """Local PostgreSQL major version to use (e.g. ``"15"``); None: the newest installed."""
    dbname: str = "app"
    master_username: str | None = None
    master_password: str | None = None


@dataclass(frozen=True)
class IamPolicy:
    """A named IAM policy of the seed (managed or inline)."""
    name: str
    document: str
    """The policy JSON text."""


@dataclass(frozen=True)
class IamAccessKey:
    """A fixed access key pair of a seeded IAM user (so ``.env`` files keep working)."""
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class IamPrincipal:
    """A user or a role of the IAM seed."""

    name: str
    policies: tuple[str, ...] = ()
    """Managed policies: names from ``[[iam.policies]]`` or ARNs."""
    inline_policies: tuple[IamPolicy, ...] = ()
    groups: tuple[str, ...] = ()
    """Users only."""
    access_keys: tuple[IamAccessKey, ...] = ()
    """Users only."""
    trust_policy: str | None = None
    """Roles only; None: trust this account's root."""


@dataclass(frozen=True)
class IamGroup:
    """An IAM group of the seed with its managed and inline policies."""
    name: str
    policies: tuple[str, ...] = ()
    inline_policies: tuple[IamPolicy, ...] = ()


@dataclass(frozen=True)
class IamSeed:
    """The ``[iam]`` seed applied to moto at start-up: policies, groups, users, roles."""
    policies: tuple[IamPolicy, ...] = ()
    groups: tuple[IamGroup, ...] = ()
    users: tuple[IamPrincipal, ...] = ()
    roles: tuple[IamPrincipal, ...] = ()


@dataclass(frozen=True)
class Config:
    """A whole validated server config (immutable)."""
    server: ServerConfig = field(default_factory=ServerConfig)
    instances: tuple[InstanceSpec, ...] = ()
    iam: IamSeed = field(default_factory=IamSeed)
    proxies: tuple[ProxySpec, ...] = ()
    """``[[proxies]]``: ``proxy_config.ProxySpec`` entries (RDS Proxies made at start-up)."""
    clusters: tuple[ClusterSpec, ...] = ()
    """``[[clusters]]``: ``cluster_config.ClusterSpec`` entries (Aurora clusters made at boot)."""


MAX_CONFIG_BYTES = 1024 * 1024
"""A config file larger than this (1 MiB) is refused."""


def load(path: Path | None, environ: Mapping[str, str]) -> Config:
    """Read ``path`` (None: no file, defaults only), apply the environment overrides, validate.

    Raises ``ConfigError`` for an unreadable file, bad TOML or any bad value.
    """
    from rdsiam_emulator.server import env

    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:  # bounded: /dev/zero or a huge file is refused, not read
                raw = fh.read(MAX_CONFIG_BYTES + 1)
            if len(raw) > MAX_CONFIG_BYTES:
                raise ConfigError("--config", f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
            data = tomllib.loads(raw.decode("utf-8"))
        except RecursionError:
            raise ConfigError("--config", f"{path} nests tables or arrays too deeply") from None
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError("--config", f"{path} is not UTF-8 text") from None
    try:
        return parse(env.apply(data, environ))
    except ConfigError as exc:
        var = env.variable_for(exc.key, environ)
        if var is None:
            raise
        # the user typed the variable, not the file key: name what they can find
        raise ConfigError(var, exc.problem) from None


def parse(data: Mapping[str, Any]) -> Config:
    """Validate parsed TOML. Raises ``ConfigError``."""
    _only(data, "", {"server", "instances", "iam", "proxies", "clusters"})
    server = _server(_table(data, "server"))
    raw_instances = data.get("instances", [])
    if not isinstance(raw_instances, list):
        raise ConfigError("instances", "must be an array of tables ([[instances]])")
    instances = tuple(_instance(i, raw) for i, raw in enumerate(raw_instances))
    if len(instances) > server.max_instances:
        raise ConfigError("instances", f"{len(instances)} instances are more than "
                          f"server.max_instances ({server.max_instances}, RDS's quota)")
    seen: dict[str, int] = {}
    listens: dict[tuple[str, int], int] = {}
    for i, inst in enumerate(instances):
        if inst.identifier in seen:
            raise ConfigError(f"instances[{i}].identifier", f"{inst.identifier!r} is already "
                              f"used by instances[{seen[inst.identifier]}]")
        seen[inst.identifier] = i
        if inst.listen_port:
            where = (inst.listen_host, inst.listen_port)
            if where in listens:
                raise ConfigError(f"instances[{i}].listen",
                                  f"{inst.listen_host}:{inst.listen_port} is already used by "
                                  f"instances[{listens[where]}]")
            listens[where] = i
        if inst.listen_port == server.port and (inst.listen_host in WILDCARDS
                                                or server.host in WILDCARDS
                                                or inst.listen_host == server.host):
            raise ConfigError(f"instances[{i}].listen", f"port {server.port} is the HTTP port")
    from rdsiam_emulator.server.cluster_config import parse_clusters
    from rdsiam_emulator.server.proxy_config import parse_proxies

    clusters = parse_clusters(data, instances, server)
    return Config(server=server, instances=instances, iam=_iam(_table(data, "iam")),
                  proxies=parse_proxies(data, instances, clusters=(c.name for c in clusters)),
                  clusters=clusters)


# -- pieces --------------------------------------------------------------------------------------
def _server(raw: Mapping[str, Any]) -> ServerConfig:
    _only(raw, "server", {"port", "host", "region", "account_id", "dns_label", "state_dir",
                          "create_listen_host", "max_instances", "throttling"})
    port = _int(raw, "server", "port", DEFAULT_PORT, 1, 65535)
    host = _address(_str(raw, "server", "host", "127.0.0.1"), "server.host")
    region = _str(raw, "server", "region", "us-east-1")
    problem = region_problem(region)
    if problem:
        raise ConfigError("server.region", problem)
    account = _str(raw, "server", "account_id", "123456789012")
    if not _ACCOUNT.match(account):
        raise ConfigError("server.account_id", f"must be 12 digits, got {account!r}")
    label = raw.get("dns_label")
    if label is not None and (not isinstance(label, str) or not _DNS_LABEL.match(label)):
        raise ConfigError("server.dns_label", f"must be lower-case letters and digits (like "
                          f"RDS's c1a2b3c4d5e6), got {label!r}")
    state = raw.get("state_dir")
    if state is not None and not isinstance(state, str):
        raise ConfigError("server.state_dir", "must be a string (a directory path)")
    create = _str(raw, "server", "create_listen_host", "loopback")
    if create != "loopback":
        try:
            ipaddress.ip_address(create)
        except ValueError:
            raise ConfigError("server.create_listen_host", f"must be an IP address or "
                              f"\"loopback\", got {create!r}") from None
    max_instances = _int(raw, "server", "max_instances", DEFAULT_MAX_INSTANCES, 1, 1000)
    return ServerConfig(port=port, host=host, region=region, account_id=account,
                        dns_label=label, state_dir=Path(state) if state else None,
                        create_listen_host=create, max_instances=max_instances,
                        throttling=_bool(raw, "server", "throttling", False))


def _instance(i: int, raw: Any) -> InstanceSpec:
    key = f"instances[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a table")
    _only(raw, key, {"identifier", "engine", "listen", "iam_db_users", "iam_enabled", "aliases",
                     "backend", "url", "version", "dbname", "master_username",
                     "master_password"})
    if "identifier" not in raw:
        raise ConfigError(f"{key}.identifier", "is required")
    ident = _str(raw, key, "identifier", "")
    if not _IDENTIFIER.match(ident):
        raise ConfigError(f"{key}.identifier", f"{ident!r} is not an RDS DB instance identifier "
                          "(a letter, then up to 62 letters, digits or single hyphens)")
    if ident != ident.lower():  # RDS stores identifiers in lower case: ORDERS is orders
        raise ConfigError(f"{key}.identifier", f"{ident!r}: RDS stores DB instance identifiers "
                          f"in lower case; write {ident.lower()!r}")
    engine = _str(raw, key, "engine", "postgres")
    if engine == "mariadb":
        engine = "mysql"
    if engine not in ENGINE_PORTS:
        raise ConfigError(f"{key}.engine", f"must be postgres or mysql (mariadb: mysql), "
                          f"got {engine!r}")
    host, port = "127.0.0.1", 0
    if "listen" in raw:
        host, port = _listen(_str(raw, key, "listen", ""), f"{key}.listen")
    users = _str_list(raw, key, "iam_db_users")
    for j, user in enumerate(users):
        if not _DB_USER.match(user):
            raise ConfigError(f"{key}.iam_db_users[{j}]", f"{user!r} is not a plain database "
                              "user name (letters, digits, _ and $; at most 63)")
    backend = _str(raw, key, "backend", "local")
    if backend not in ("local", "external"):
        raise ConfigError(f"{key}.backend", f"must be local or external, got {backend!r}")
    url = raw.get("url")
    if backend == "external":
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{key}.url", 'is required with backend = "external" (the '
                              "server's admin URL, e.g. postgresql://postgres:pw@db:5432/postgres)")
        from rdsiam_emulator.backends.external import parse_admin_url

        try:
            parse_admin_url(url, engine)
        except ValueError as exc:
            raise ConfigError(f"{key}.url", str(exc)) from None
    elif url is not None:
        raise ConfigError(f"{key}.url", 'is only for backend = "external"')
    version = raw.get("version")
    if version is not None and not isinstance(version, str):
        raise ConfigError(f"{key}.version", 'must be a string, e.g. "15"')
    optional: dict[str, str | None] = {}
    for name in ("master_username", "master_password"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{key}.{name}", "must be a non-empty string")
        optional[name] = value
    return InstanceSpec(
        identifier=ident, engine=engine,  # type: ignore[arg-type]
        listen_host=host, listen_port=port, iam_db_users=users,
        iam_enabled=_bool(raw, key, "iam_enabled", True),
        aliases=_str_list(raw, key, "aliases"), backend=backend,  # type: ignore[arg-type]
        url=url, version=version, dbname=_str(raw, key, "dbname", "app"),
        master_username=optional["master_username"], master_password=optional["master_password"],
    )


def _iam(raw: Mapping[str, Any]) -> IamSeed:
    _only(raw, "iam", {"policies", "groups", "users", "roles"})
    policies = tuple(_named_policy(f"iam.policies[{i}]", p)
                     for i, p in enumerate(_tables(raw, "iam", "policies")))
    groups: list[IamGroup] = []
    for i, g in enumerate(_tables(raw, "iam", "groups")):
        key = f"iam.groups[{i}]"
        _only(g, key, {"name", "policies", "inline_policies"})
        groups.append(IamGroup(name=_iam_name(g, key), policies=_str_list(g, key, "policies"),
                               inline_policies=_inline(g, key)))
    users: list[IamPrincipal] = []
    for i, u in enumerate(_tables(raw, "iam", "users")):
        key = f"iam.users[{i}]"
        _only(u, key, {"name", "policies", "inline_policies", "groups", "access_keys"})
        keys: list[IamAccessKey] = []
        for j, k in enumerate(_tables(u, key, "access_keys")):
            kkey = f"{key}.access_keys[{j}]"
            _only(k, kkey, {"access_key_id", "secret_access_key"})
            akid = _str(k, kkey, "access_key_id", "")
            if not _ACCESS_KEY.match(akid):
                raise ConfigError(f"{kkey}.access_key_id", "must be 16-128 upper-case letters "
                                  "and digits (e.g. AKIA followed by 16)")
            secret = _str(k, kkey, "secret_access_key", "")
            if len(secret) < 8:
                raise ConfigError(f"{kkey}.secret_access_key", "must be at least 8 characters")
            keys.append(IamAccessKey(akid, secret))
        users.append(IamPrincipal(name=_iam_name(u, key), policies=_str_list(u, key, "policies"),
                                  inline_policies=_inline(u, key),
                                  groups=_str_list(u, key, "groups"), access_keys=tuple(keys)))
    roles: list[IamPrincipal] = []
    for i, r in enumerate(_tables(raw, "iam", "roles")):
        key = f"iam.roles[{i}]"
        _only(r, key, {"name", "policies", "inline_policies", "trust_policy"})
        trust = _document(r["trust_policy"], f"{key}.trust_policy") if "trust_policy" in r else None
        roles.append(IamPrincipal(name=_iam_name(r, key), policies=_str_list(r, key, "policies"),
                                  inline_policies=_inline(r, key), trust_policy=trust))
    known = {p.name for p in policies}
    refs: list[tuple[str, list[tuple[str, ...]]]] = [
        ("groups", [g.policies for g in groups]), ("users", [u.policies for u in users]),
        ("roles", [r.policies for r in roles])]
    for kind, lists in refs:
        for i, names in enumerate(lists):
            for j, ref in enumerate(names):
                if ref not in known and not ref.startswith("arn:"):
                    raise ConfigError(f"iam.{kind}[{i}].policies[{j}]",
                                      f"{ref!r} is neither a policy in [[iam.policies]] nor an ARN")
    group_names = {g.name for g in groups}
    for i, user in enumerate(users):
        for j, group in enumerate(user.groups):
            if group not in group_names:
                raise ConfigError(f"iam.users[{i}].groups[{j}]",
                                  f"{group!r} is not a group in [[iam.groups]]")
    akids: set[str] = set()
    for i, user in enumerate(users):
        for j, made in enumerate(user.access_keys):
            if made.access_key_id in akids:
                raise ConfigError(f"iam.users[{i}].access_keys[{j}].access_key_id",
                                  "is used twice")
            akids.add(made.access_key_id)
    return IamSeed(policies=policies, groups=tuple(groups), users=tuple(users),
                   roles=tuple(roles))


def _named_policy(key: str, raw: Mapping[str, Any]) -> IamPolicy:
    _only(raw, key, {"name", "document"})
    if "document" not in raw:
        raise ConfigError(f"{key}.document", "is required")
    return IamPolicy(_iam_name(raw, key), _document(raw["document"], f"{key}.document"))


def _inline(raw: Mapping[str, Any], key: str) -> tuple[IamPolicy, ...]:
    table = raw.get("inline_policies", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{key}.inline_policies", "must be a table: policy name = document")
    out = []
    for name, doc in table.items():
        if not _IAM_NAME.match(name):
            raise ConfigError(f"{key}.inline_policies.{name}", "is not a valid policy name")
        out.append(IamPolicy(name, _document(doc, f"{key}.inline_policies.{name}")))
    return tuple(out)


def _document(value: Any, key: str) -> str:
    """A policy document: a JSON string or a TOML table; returned as JSON text."""
    if isinstance(value, dict):
        doc = value
    elif isinstance(value, str):
        try:
            doc = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(key, f"is not valid JSON: {exc}") from None
    else:
        raise ConfigError(key, "must be a JSON string or a table")
    if not isinstance(doc, dict) or "Statement" not in doc:
        raise ConfigError(key, "must be a policy document (an object with a Statement)")
    return json.dumps(doc)


def _iam_name(raw: Mapping[str, Any], key: str) -> str:
    if "name" not in raw:
        raise ConfigError(f"{key}.name", "is required")
    name = _str(raw, key, "name", "")
    if not _IAM_NAME.match(name):
        raise ConfigError(f"{key}.name", f"{name!r} is not a valid IAM name (1-64 of "
                          "letters, digits and +=,.@_-)")
    return name


def _listen(value: str, key: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not (port_text.isascii() and port_text.isdigit()):
        raise ConfigError(key, f'must be "address:port" (e.g. "127.0.0.2:5432"), got {value!r}')
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(key, f"port {port} is out of range")
    return _address(host.strip("[]"), key), port


def _address(value: str, key: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(key, f"{value!r} is not an IP address") from None
    return value


def _only(raw: Mapping[str, Any], key: str, allowed: set[str]) -> None:
    for name in raw:
        if name not in allowed:
            where = f"{key}.{name}" if key else name
            raise ConfigError(where, f"unknown key (known: {', '.join(sorted(allowed))})")


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _tables(raw: Mapping[str, Any], key: str, name: str) -> list[dict[str, Any]]:
    value = raw.get(name, [])
    where = f"{key}.{name}"
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(where, f"must be an array of tables ([[{where}]])")
    return value


def _str(raw: Mapping[str, Any], key: str, name: str, default: str) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str):
        raise ConfigError(f"{key}.{name}", f"must be a string, got {type(value).__name__}")
    return value


def _int(raw: Mapping[str, Any], key: str, name: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}.{name}", f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ConfigError(f"{key}.{name}", f"must be between {lo} and {hi}, got {value}")
    return value


def _bool(raw: Mapping[str, Any], key: str, name: str, default: bool) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}.{name}", "must be true or false")
    return value


def _str_list(raw: Mapping[str, Any], key: str, name: str) -> tuple[str, ...]:
    value = raw.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key}.{name}", "must be an array of non-empty strings")
    return tuple(value)
