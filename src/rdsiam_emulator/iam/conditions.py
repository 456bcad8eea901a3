"""IAM condition operators over a request context.

The context maps lower-cased condition keys to a tuple of values (one for single-valued keys).
Rules,
as IAM documents them:
* several keys under one operator, and several operators, must all hold (AND); several values for
  one key are alternatives (OR); negated operators (``StringNotEquals``...) hold when *no* value
  matches;
* a key absent from the request: positive operators fail, negated ones hold, ``…IfExists`` holds,
  ``Null: true`` holds; ``ForAllValues:`` holds and ``ForAnyValue:`` fails;
* ``ForAnyValue:`` — some request value matches; ``ForAllValues:`` — every request value matches.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from rdsiam_emulator.iam.matching import arn_match, glob_match
from rdsiam_emulator.iam.variables import Piece, expand

Context = Mapping[str, tuple[str, ...]]
Matcher = Callable[[str, tuple[Piece, ...]], bool]


def _literal(pieces: tuple[Piece, ...]) -> str:
    return "".join(text for text, _ in pieces)


def _str_eq(value: str, pieces: tuple[Piece, ...]) -> bool:
    return value == _literal(pieces)


def _str_eq_ic(value: str, pieces: tuple[Piece, ...]) -> bool:
    return value.casefold() == _literal(pieces).casefold()


def _str_like(value: str, pieces: tuple[Piece, ...]) -> bool:
    return glob_match(pieces, value)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(compare: Callable[[float, float], bool]) -> Matcher:
    def match(value: str, pieces: tuple[Piece, ...]) -> bool:
        left, right = _number(value), _number(_literal(pieces))
        return left is not None and right is not None and compare(left, right)

    return match


@lru_cache(maxsize=1024)
def _date(text: str) -> datetime | None:
    text = text.strip()
    number = _number(text)
    if number is not None and text.replace(".", "", 1).isdigit():
        try:
            return datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _dates(compare: Callable[[datetime, datetime], bool]) -> Matcher:
    def match(value: str, pieces: tuple[Piece, ...]) -> bool:
        left, right = _date(value), _date(_literal(pieces))
        return left is not None and right is not None and compare(left, right)

    return match


def _bool(value: str, pieces: tuple[Piece, ...]) -> bool:
    return value.lower() == _literal(pieces).lower()


def _binary(value: str, pieces: tuple[Piece, ...]) -> bool:
    try:
        return base64.b64decode(value, validate=True) == base64.b64decode(
            _literal(pieces), validate=True
        )
    except (binascii.Error, ValueError):
        return False


def _ip(value: str, pieces: tuple[Piece, ...]) -> bool:
    try:
        address = ipaddress.ip_address(value)
        network = ipaddress.ip_network(_literal(pieces), strict=False)
    except ValueError:
        return False
    return address.version == network.version and address in network


def _arn(value: str, pieces: tuple[Piece, ...]) -> bool:
    return arn_match(pieces, value)


@dataclass(frozen=True, slots=True)
class BaseOperator:
    """One IAM condition operator without its ``IfExists``/set prefixes, e.g. ``StringLike``: its
    ``match`` function, whether it is a ``Not…`` operator and whether values may hold wildcards.
    See
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
    """
    name: str
    match: Matcher
    negated: bool
    wildcards: bool = False
    """Whether ``*``/``?`` in policy values are wildcards (Like and Arn operators)."""


def _ops() -> dict[str, BaseOperator]:
    table: list[BaseOperator] = [
        BaseOperator("StringEquals", _str_eq, False),
        BaseOperator("StringNotEquals", _str_eq, True),
        BaseOperator("StringEqualsIgnoreCase", _str_eq_ic, False),
        BaseOperator("StringNotEqualsIgnoreCase", _str_eq_ic, True),
        BaseOperator("StringLike", _str_like, False, True),
        BaseOperator("StringNotLike", _str_like, True, True),
        BaseOperator("NumericEquals", _numeric(lambda a, b: a == b), False),
        BaseOperator("NumericNotEquals", _numeric(lambda a, b: a == b), True),
        BaseOperator("NumericLessThan", _numeric(lambda a, b: a < b), False),
        BaseOperator("NumericLessThanEquals", _numeric(lambda a, b: a <= b), False),
        BaseOperator("NumericGreaterThan", _numeric(lambda a, b: a > b), False),
        BaseOperator("NumericGreaterThanEquals", _numeric(lambda a, b: a >= b), False),
        BaseOperator("DateEquals", _dates(lambda a, b: a == b), False),
        BaseOperator("DateNotEquals", _dates(lambda a, b: a == b), True),
        BaseOperator("DateLessThan", _dates(lambda a, b: a < b), False),
        BaseOperator("DateLessThanEquals", _dates(lambda a, b: a <= b), False),
        BaseOperator("DateGreaterThan", _dates(lambda a, b: a > b), False),
        BaseOperator("DateGreaterThanEquals", _dates(lambda a, b: a >= b), False),
        BaseOperator("Bool", _bool, False),
        BaseOperator("BinaryEquals", _binary, False),
        BaseOperator("IpAddress", _ip, False),
        BaseOperator("NotIpAddress", _ip, True),
        BaseOperator("ArnEquals", _arn, False, True),
        BaseOperator("ArnLike", _arn, False, True),
        BaseOperator("ArnNotEquals", _arn, True, True),
        BaseOperator("ArnNotLike", _arn, True, True),
        BaseOperator("Null", _bool, False),
    ]
    return {op.name.lower(): op for op in table}


OPERATORS_BY_LOWER = _ops()
OPERATORS: frozenset[str] = frozenset(op.name for op in OPERATORS_BY_LOWER.values())

FOR_ANY = "foranyvalue"
FOR_ALL = "forallvalues"


@dataclass(frozen=True, slots=True)
class Operator:
    """A full condition operator as written: the base operator, ``…IfExists`` and the
    ``ForAnyValue:``/``ForAllValues:`` set qualifier (None for single-valued).
    """
    base: BaseOperator
    if_exists: bool
    set_op: str | None  # FOR_ANY | FOR_ALL | None


@lru_cache(maxsize=512)
def parse_operator(text: str) -> Operator | None:
    """``ForAnyValue:StringLikeIfExists`` → Operator; None when IAM would not know it."""
    set_op: str | None = None
    name = text
    if ":" in text:
        prefix, name = text.split(":", 1)
        if prefix.lower() not in (FOR_ANY, FOR_ALL):
            return None
        set_op = prefix.lower()
    if_exists = name.lower().endswith("ifexists")
    if if_exists:
        name = name[: -len("IfExists")]
    base = OPERATORS_BY_LOWER.get(name.lower())
    if base is None or (base.name == "Null" and (if_exists or set_op)):
        return None
    return Operator(base, if_exists, set_op)


def clause_holds(
    operator_text: str,
    key: str,
    policy_values: tuple[str, ...],
    context: Context,
    *,
    variables: bool,
) -> bool:
    """Evaluate one ``operator: {key: values}`` entry against the request context."""
    op = parse_operator(operator_text)
    if op is None:  # parse_policy refuses these; a safe default for direct callers
        return False
    values = context.get(key.lower())
    base = op.base
    if base.name == "Null":
        want_absent = any(v.lower() == "true" for v in policy_values)
        want_present = any(v.lower() == "false" for v in policy_values)
        absent = not values
        return (want_absent and absent) or (want_present and not absent)
    if values is None:
        if op.if_exists or op.set_op == FOR_ALL:
            return True
        if op.set_op == FOR_ANY:
            return False
        return base.negated
    patterns = _patterns(policy_values, context, variables=variables, wildcards=base.wildcards)

    def matches_some(value: str) -> bool:
        return any(base.match(value, p) for p in patterns)

    if op.set_op == FOR_ALL:
        if base.negated:
            return all(not matches_some(v) for v in values)
        return all(matches_some(v) for v in values)
    if base.negated:
        if op.set_op == FOR_ANY:
            return any(not matches_some(v) for v in values)
        return not any(matches_some(v) for v in values)
    return any(matches_some(v) for v in values)


def _patterns(
    policy_values: tuple[str, ...], context: Context, *, variables: bool, wildcards: bool
) -> list[tuple[Piece, ...]]:
    out: list[tuple[Piece, ...]] = []
    for raw in policy_values:
        pieces = expand(raw, context) if variables else ((raw, True),)
        if pieces is None:
            continue  # an unset variable: this value can match nothing
        if not wildcards:
            pieces = ((_literal(pieces), False),)
        out.append(pieces)
    return out
