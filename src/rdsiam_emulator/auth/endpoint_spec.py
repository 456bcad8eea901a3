"""What a token must be bound to: the endpoint the client connected to.

Kept apart from the asyncio endpoint (``endpoint/``): this is a plain value the pure verifier uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rdsiam_emulator.auth.tokens import split_host_port


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An emulated instance's address as tokens must name it.

    ``host`` is the RDS-style endpoint name; ``aliases`` are further names the same endpoint answers
    to (cluster/reader/proxy endpoints, or ``127.0.0.1`` for tests), each ``host`` or ``host:port``.
    Host names compare case-insensitively; the port is always required.
    """

    host: str
    port: int
    region: str
    aliases: tuple[str, ...] = ()
    account_id: str | None = None
    resource_id: str | None = None
    """The DbiResourceId (``db-…``), cluster id (``cluster-…``) or proxy id (``prx-…``)."""
    instance_id: str | None = None
    cluster_id: str | None = None
    """An Aurora cluster member's cluster identifier (``resource_id`` is then the cluster's)."""
    cluster_host: str | None = None
    """The cluster (writer) endpoint name of a member, for hints."""
    member_resource_ids: tuple[str, ...] = ()
    """A cluster's members' DbiResourceIds (``db-…``): policies naming them are near misses."""
    _names: frozenset[tuple[str, int]] = field(
        init=False, repr=False, compare=False, default=frozenset()
    )
    _host_ports: frozenset[str] = field(
        init=False, repr=False, compare=False, default=frozenset()
    )

    def __post_init__(self) -> None:
        names = {(_norm(self.host), self.port)}
        for alias in self.aliases:
            host, port = split_host_port(alias) if not _bare_ipv6(alias) else (alias, None)
            names.add((_norm(host), port if port is not None else self.port))
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_host_ports", frozenset(f"{h}:{p}" for h, p in names))

    def accepts(self, host: str, port: int) -> bool:
        """True when ``host`` (any case, trailing dot allowed) with ``port`` names this endpoint or
        one of its aliases. RDS binds a token to the endpoint the client connected to; a custom
        DNS name is not accepted:
        https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.Connecting.html
        """
        return (_norm(host), port) in self._names

    def accepts_host_port(self, host_port: str) -> bool:
        """True when ``host_port`` (``name:port``, lower-case, no trailing dot, port without
        leading zeros) is one of this endpoint's addresses: the verifier's one-lookup fast check.
        False is not a verdict (other spellings may still be accepted by ``accepts``)."""
        return host_port in self._host_ports

    def hosts(self) -> tuple[str, ...]:
        """Every host name, RDS-style name first (for certificates and messages)."""
        seen = [self.host]
        for alias in self.aliases:
            host = alias if _bare_ipv6(alias) else split_host_port(alias)[0]
            if host not in seen:
                seen.append(host)
        return tuple(seen)

    @property
    def address(self) -> str:
        """``host:port`` as tokens for this endpoint are generated."""
        return f"{self.host}:{self.port}"

    def db_user_arn(self, db_user: str) -> str | None:
        """``arn:aws:rds-db:<region>:<account>:dbuser:<resource id>/<db_user>``, the resource that
        ``rds-db:connect`` policies name, or None while the account or resource id is unknown.
        See
        https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.IAMPolicy.html
        """
        if self.account_id is None or self.resource_id is None:
            return None
        return (
            f"arn:aws:rds-db:{self.region}:{self.account_id}:dbuser:{self.resource_id}/{db_user}"
        )


def _norm(host: str) -> str:
    return host.lower().rstrip(".")


def _bare_ipv6(text: str) -> bool:
    return text.count(":") > 1 and not text.startswith("[")
