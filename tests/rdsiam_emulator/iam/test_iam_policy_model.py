"""Parsing policy documents: typed statements; malformed input is a value, never an exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdsiam_emulator.iam.policy_model import PolicyDocument, PolicyParseError, parse_policy


def test_parses_single_statement_object_and_scalars() -> None:
    doc = parse_policy(json.dumps({
        "Version": "2012-10-17",
        "Statement": {"Sid": "A", "Effect": "Allow", "Action": "rds-db:connect",
                      "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": True},
                                                     "NumericLessThan": {"k": 5}}},
    }))
    assert isinstance(doc, PolicyDocument)
    (stmt,) = doc.statements
    assert stmt.sid == "A" and stmt.actions == ("rds-db:connect",) and not stmt.not_action
    assert {(c.operator, c.key, c.values) for c in stmt.conditions} == {
        ("Bool", "aws:SecureTransport", ("true",)), ("NumericLessThan", "k", ("5",)),
    }
    assert doc.variables_enabled


def test_mapping_input_and_cache_give_equal_results() -> None:
    data = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "NotAction": ["s3:*"],
                                                    "NotResource": "arn:aws:s3:::b"}]}
    first, second = parse_policy(data), parse_policy(json.dumps(data, sort_keys=True))
    assert first == second
    assert isinstance(first, PolicyDocument) and first.statements[0].not_resource


def test_missing_version_disables_variables() -> None:
    doc = parse_policy({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    assert isinstance(doc, PolicyDocument) and not doc.variables_enabled


@pytest.mark.parametrize(("document", "fragment"), [
    ("{not json", "not valid JSON"),
    ("[]", "not a JSON object"),
    ('{"Version": "2012-10-17"}', "no Statement"),
    ('{"Version": "2020-01-01", "Statement": []}', "Version"),
    ('{"Statement": []}', "empty"),
    ('{"Statement": [{"Effect": "Allow", "Resource": "*"}]}', "Action or NotAction"),
    ('{"Statement": [{"Effect": "Allow", "Action": "a:b", "NotAction": "c:d", "Resource": "*"}]}',
     "exactly one"),
    ('{"Statement": [{"Effect": "Allow", "Action": "a:b"}]}', "Resource or NotResource"),
    ('{"Statement": [{"Effect": "allow", "Action": "a:b", "Resource": "*"}]}', "Effect"),
    ('{"Statement": [{"Effect": "Allow", "Action": "connect", "Resource": "*"}]}',
     "service prefix"),
    ('{"Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}', "empty"),
    ('{"Statement": [{"Effect": "Allow", "Action": [1], "Resource": "*"}]}', "string"),
    ('{"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*", "Principal": "*"}]}',
     "Principal"),
    ('{"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*", "Extra": 1}]}',
     "unknown element"),
    ('{"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*", '
     '"Condition": {"StringWhatever": {"k": "v"}}}]}', "unknown condition operator"),
    ('{"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*", '
     '"Condition": {"StringEquals": "v"}}]}', "must map"),
    ('{"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*", '
     '"Condition": {"StringEquals": {"k": {"x": 1}}}}]}', "scalars"),
    ('{"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*", '
     '"Condition": {"NullIfExists": {"k": "true"}}}]}', "unknown condition operator"),
    ('{"Statement": [{"Sid": "x", "Effect": "Allow", "Action": "a:b", "Resource": "*"},'
     '{"Sid": "x", "Effect": "Deny", "Action": "a:b", "Resource": "*"}]}', "unique"),
    ("[" * 5000 + "]" * 5000, ""),
])
def test_malformed_documents_are_values(document: str, fragment: str) -> None:
    result = parse_policy(document)
    assert isinstance(result, PolicyParseError)
    assert fragment in result.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["Version", "Statement", "Effect", "Action", "Resource",
                                       "NotAction", "Condition", "StringLike", "Sid", "x"]),
                      children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(json_values)
def test_never_raises_on_arbitrary_json(value: object) -> None:
    result = parse_policy(json.dumps(value))
    assert isinstance(result, PolicyDocument | PolicyParseError)
