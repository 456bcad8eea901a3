"""Condition operators, absent keys, IfExists and the set operators."""

from __future__ import annotations

import pytest

from rdsiam_emulator.iam.conditions import OPERATORS, clause_holds, parse_operator

CTX: dict[str, tuple[str, ...]] = {
    "s": ("Hello",),
    "n": ("10",),
    "d": ("2026-06-01T12:00:00Z",),
    "e": ("1780000000",),
    "b": ("true",),
    "ip": ("10.1.2.3",),
    "ip6": ("2001:db8::1",),
    "arn": ("arn:aws:iam::123456789012:role/app",),
    "bin": ("aGVsbG8=",),
    "tags": ("team", "env"),
    "empty": (),
    "var": ("alice",),
}


@pytest.mark.parametrize(("op", "key", "values", "expected"), [
    ("StringEquals", "s", ["Hello"], True),
    ("StringEquals", "s", ["hello"], False),
    ("StringEquals", "s", ["H*"], False),  # no wildcards in StringEquals
    ("StringNotEquals", "s", ["x", "y"], True),
    ("StringNotEquals", "s", ["x", "Hello"], False),
    ("StringEqualsIgnoreCase", "s", ["HELLO"], True),
    ("StringNotEqualsIgnoreCase", "s", ["HELLO"], False),
    ("StringLike", "s", ["H?l*"], True),
    ("StringNotLike", "s", ["H?l*"], False),
    ("NumericEquals", "n", ["10.0"], True),
    ("NumericNotEquals", "n", ["10"], False),
    ("NumericLessThan", "n", ["11"], True),
    ("NumericLessThanEquals", "n", ["10"], True),
    ("NumericGreaterThan", "n", ["10"], False),
    ("NumericGreaterThanEquals", "n", ["10"], True),
    ("NumericEquals", "s", ["10"], False),  # unparsable request value
    ("DateEquals", "d", ["2026-06-01T12:00:00+00:00"], True),
    ("DateNotEquals", "d", ["2026-06-01T12:00:00Z"], False),
    ("DateLessThan", "d", ["2026-06-02"], True),
    ("DateLessThanEquals", "d", ["2026-06-01T12:00:00Z"], True),
    ("DateGreaterThan", "d", ["1780000000"], True),  # epoch seconds are dates too
    ("DateGreaterThanEquals", "e", ["2026-06-01T12:00:00Z"], False),
    ("DateLessThan", "d", ["not a date"], False),
    ("Bool", "b", ["TRUE"], True),
    ("Bool", "b", ["false"], False),
    ("BinaryEquals", "bin", ["aGVsbG8="], True),
    ("BinaryEquals", "bin", ["!!"], False),
    ("IpAddress", "ip", ["10.0.0.0/8"], True),
    ("IpAddress", "ip", ["192.168.0.0/16", "10.1.2.3/32"], True),
    ("NotIpAddress", "ip", ["10.0.0.0/8"], False),
    ("IpAddress", "ip6", ["2001:db8::/32"], True),
    ("IpAddress", "ip6", ["10.0.0.0/8"], False),
    ("IpAddress", "ip", ["garbage"], False),
    ("ArnEquals", "arn", ["arn:aws:iam::123456789012:role/app"], True),
    ("ArnLike", "arn", ["arn:aws:iam::*:role/*"], True),
    ("ArnLike", "arn", ["arn:aws:iam::*:ROLE/*"], False),
    ("ArnNotLike", "arn", ["arn:aws:iam::*:user/*"], True),
    ("ArnNotEquals", "arn", ["arn:aws:iam::123456789012:role/app"], False),
])
def test_operators(op: str, key: str, values: list[str], expected: bool) -> None:
    assert clause_holds(op, key, tuple(values), CTX, variables=True) is expected


@pytest.mark.parametrize(("op", "expected"), [
    ("StringEquals", False), ("StringNotEquals", True), ("StringLike", False),
    ("StringNotLike", True), ("NumericLessThan", False), ("NumericNotEquals", True),
    ("DateLessThan", False), ("Bool", False), ("IpAddress", False), ("NotIpAddress", True),
    ("ArnLike", False), ("ArnNotLike", True),
    ("StringEqualsIfExists", True), ("StringNotEqualsIfExists", True),
    ("ForAnyValue:StringEquals", False), ("ForAllValues:StringEquals", True),
    ("ForAnyValue:StringNotEquals", False), ("ForAllValues:StringNotLike", True),
])
def test_absent_key(op: str, expected: bool) -> None:
    assert clause_holds(op, "missing", ("x",), CTX, variables=True) is expected


def test_null_operator() -> None:
    assert clause_holds("Null", "missing", ("true",), CTX, variables=True)
    assert not clause_holds("Null", "s", ("true",), CTX, variables=True)
    assert clause_holds("Null", "s", ("false",), CTX, variables=True)
    assert clause_holds("Null", "empty", ("true",), CTX, variables=True)


@pytest.mark.parametrize(("op", "values", "expected"), [
    ("ForAnyValue:StringEquals", ["team"], True),
    ("ForAnyValue:StringEquals", ["nope"], False),
    ("ForAllValues:StringEquals", ["team", "env", "x"], True),
    ("ForAllValues:StringEquals", ["team"], False),
    ("ForAnyValue:StringNotEquals", ["team"], True),  # env is not 'team'
    ("ForAllValues:StringNotEquals", ["x"], True),
    ("ForAllValues:StringNotEquals", ["team"], False),
    ("ForAnyValue:StringLike", ["t*"], True),
    ("StringEquals", ["env"], True),  # multi-valued key without a set operator: any value
])
def test_set_operators(op: str, values: list[str], expected: bool) -> None:
    assert clause_holds(op, "tags", tuple(values), CTX, variables=True) is expected


def test_for_all_values_on_empty_set_holds() -> None:
    assert clause_holds("ForAllValues:StringEquals", "empty", ("x",), CTX, variables=True)
    assert not clause_holds("ForAnyValue:StringEquals", "empty", ("x",), CTX, variables=True)


def test_variables_in_values_only_when_enabled() -> None:
    assert clause_holds("StringEquals", "var", ("${var}",), CTX, variables=True)
    assert not clause_holds("StringEquals", "var", ("${var}",), CTX, variables=False)
    assert not clause_holds("StringEquals", "var", ("${unset}",), CTX, variables=True)


def test_key_names_are_case_insensitive_but_context_is_lower_case() -> None:
    assert clause_holds("StringEquals", "S", ("Hello",), CTX, variables=True)


def test_operator_parsing() -> None:
    op = parse_operator("ForAnyValue:StringLikeIfExists")
    assert op is not None and op.if_exists and op.set_op == "foranyvalue"
    assert op.base.name == "StringLike"
    assert parse_operator("Sometimes:StringLike") is None
    assert parse_operator("NullIfExists") is None
    assert parse_operator("stringequals") is not None
    assert {"StringEquals", "ArnLike", "IpAddress", "Null", "BinaryEquals"} <= OPERATORS
    assert not clause_holds("Bogus", "s", ("x",), CTX, variables=True)
