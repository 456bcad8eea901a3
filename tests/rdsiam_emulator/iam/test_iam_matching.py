"""Wildcards, ARN segments and policy variables, as IAM matches them."""

from __future__ import annotations

import pytest

from rdsiam_emulator.iam.matching import action_match, arn_match, glob_match, simple_match
from rdsiam_emulator.iam.variables import expand, expand_literal

ARN = "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/app"


def p(text: str) -> tuple[tuple[str, bool], ...]:
    return ((text, True),)


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("rds-db:connect", "RDS-DB:CONNECT", True),
    ("rds-db:*", "rds-db:connect", True),
    ("rds-db:c?nnect", "rds-db:connect", True),
    ("rds-db:c?nnect", "rds-db:cnnect", False),
    ("rds:*", "rds-db:connect", False),
    ("*", "anything:at-all", True),
    ("rds-db:connect.", "rds-db:connectX", False),  # regex metacharacters are literal
])
def test_actions(pattern: str, value: str, expected: bool) -> None:
    assert action_match(pattern, value) is expected


@pytest.mark.parametrize(("pattern", "expected"), [
    ("*", True),
    (ARN, True),
    (ARN.replace("/app", "/APP"), False),  # resource part is case-sensitive
    ("arn:aws:rds-db:*:*:dbuser:*/*", True),
    ("arn:aws:rds-db:*:123456789012:dbuser:*", True),  # the resource segment spans '/'
    ("arn:aws:rds-db:*:dbuser:*/app", False),  # a region * cannot swallow the account
    ("arn:aws:rds-db:us-east-?:123456789012:dbuser:db-*/app", True),
    ("arn:aws:rds-db::123456789012:dbuser:*/app", False),  # empty segment matches only empty
    ("arn:aws:rds:us-east-1:123456789012:dbuser:*/app", False),
    ("arn:aws:rds-db:*", True),  # fewer than six segments: matched as a whole (inferred)
])
def test_arns(pattern: str, expected: bool) -> None:
    assert arn_match(p(pattern), ARN) is expected


def test_empty_segment_matches_empty() -> None:
    assert arn_match(p("arn:aws:s3:::bucket/*"), "arn:aws:s3:::bucket/key")
    assert not arn_match(p("arn:aws:s3:::bucket/*"), "arn:aws:s3:us-east-1::bucket/key")


CTX = {"aws:username": ("al*ce",), "aws:principaltag/team": ("db",), "multi": ("a", "b")}


def test_variables_become_literal_pieces() -> None:
    pieces = expand("user/${aws:username}/*", CTX)
    assert pieces == (("user/", True), ("al*ce", False), ("/*", True))
    assert pieces is not None
    assert glob_match(pieces, "user/al*ce/anything")
    assert not glob_match(pieces, "user/alice/anything")  # the * from the value is literal


@pytest.mark.parametrize(("text", "expected"), [
    ("${aws:PrincipalTag/team}", "db"),
    ("${AWS:PRINCIPALTAG/TEAM}", "db"),  # key names are case-insensitive
    ("${aws:PrincipalTag/none, 'fallback'}", "fallback"),
    ("${aws:PrincipalTag/team, 'fallback'}", "db"),
    ("${*}${?}${$}", "*?$"),
    ("${aws:PrincipalTag/none}", None),
    ("${multi}", None),  # multi-valued keys cannot be variables
    ("plain", "plain"),
])
def test_expand_literal(text: str, expected: str | None) -> None:
    assert expand_literal(text, CTX) == expected


def test_special_variables_are_literal() -> None:
    pieces = expand("db/${*}", {})
    assert pieces is not None
    assert glob_match(pieces, "db/*")
    assert not glob_match(pieces, "db/app")


def test_simple_match_without_variables() -> None:
    assert simple_match("a*c", "abbbc")
    assert not simple_match("a*c", "ABC")
    assert simple_match("a*c", "ABC", ignore_case=True)
