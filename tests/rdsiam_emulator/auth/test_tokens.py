"""The token parser: fields, surface-form neutrality, decoding, canonical reuse, redaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rdsiam_emulator.auth import sigv4
from rdsiam_emulator.auth.tokens import (
    MAX_TOKEN_LENGTH,
    ParsedToken,
    TokenFormatError,
    decode_component,
    parse_token,
    percent_decode,
    redact_token,
    redact_value,
    split_host_port,
)
from rdsiam_emulator.reasons import Reason
from tokenkit import AT, HOST, PORT, TEMP, build_token, get_param, replace_param


def test_fields_of_a_temporary_token() -> None:
    token = build_token(principal=TEMP, db_user="app user")
    p = parse_token(token)
    assert p.raw == token
    assert (p.host, p.port, p.host_text, p.path) == (HOST, PORT, f"{HOST}:{PORT}", "/")
    assert p.action == "connect" and p.algorithm == "AWS4-HMAC-SHA256"
    assert p.db_user == "app user"
    assert p.access_key_id == TEMP.access_key_id and p.region == "us-east-1"
    assert p.credential.scope == "20240501/us-east-1/rds-db/aws4_request"
    assert p.amz_date == "20240501T120000Z" and p.signed_at == AT
    assert p.signed_at.tzinfo is UTC
    assert p.expires == 900 and p.signed_headers == "host"
    assert p.signature == get_param(token, "X-Amz-Signature")
    assert p.security_token == TEMP.session_token and p.is_temporary
    assert [k for k, _ in p.params][:2] == ["Action", "DBUser"]


def test_long_term_token_has_no_session_token() -> None:
    p = parse_token(build_token())
    assert p.security_token is None and not p.is_temporary


def test_no_slash_before_question_mark() -> None:
    p = parse_token(build_token(form="go"))
    assert p.path == "" and p.port == PORT


def test_parameter_order_does_not_matter() -> None:
    a = parse_token(build_token(form="botocore"))
    b = parse_token(build_token(form="js_v3"))
    assert dict(a.params) == dict(b.params)
    assert a.params != b.params  # the original order is kept


def test_ipv6_host() -> None:
    token = build_token(host="[::1]", port=5432)
    p = parse_token(token)
    assert (p.host, p.port, p.host_text) == ("::1", 5432, "[::1]:5432")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("db.example.com:5432", ("db.example.com", 5432)),
     ("db.example.com", ("db.example.com", None)),
     ("[::1]:3306", ("::1", 3306)), ("[fe80::1]", ("fe80::1", None)), ("h:1", ("h", 1)),
     ("h:65535", ("h", 65535))],
)
def test_split_host_port(text: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["h:0", "h:65536", "h:", "h:5432x", "[::1", "[::1]x", "h:-1"])
def test_split_host_port_rejects(text: str) -> None:
    with pytest.raises(TokenFormatError) as info:
        split_host_port(text)
    assert info.value.reason is Reason.MALFORMED_TOKEN


def test_percent_decode() -> None:
    assert percent_decode("a%20b+c%2Fd") == "a b+c/d"  # '+' stays a plus
    assert percent_decode("%C3%A9") == "é"
    assert percent_decode("%c3%a9") == "é"
    assert percent_decode("plain") == "plain"
    for bad in ("%", "%2", "%zz", "a%g0", "%C3"):
        with pytest.raises(TokenFormatError):
            percent_decode(bad)


@pytest.mark.parametrize(
    ("raw", "decoded", "canonical"),
    [
        ("connect", "connect", "connect"),
        ("", "", ""),
        ("AKID%2F20240501%2Fus-east-1", "AKID/20240501/us-east-1", "AKID%2F20240501%2Fus-east-1"),
        ("a%2fb", "a/b", "a%2Fb"),  # lower-case hex is re-encoded upper-case
        ("%41BC", "ABC", "ABC"),  # an escaped unreserved character is unescaped
        ("a+b", "a+b", "a%2Bb"),  # a raw '+' is a literal plus, encoded %2B
        ("a*b", "a*b", "a%2Ab"),
        ("%C3%A9", "é", "%C3%A9"),  # non-ASCII goes the general way but is already canonical
        ("é", "é", "%C3%A9"),  # a raw non-ASCII character is encoded
        ("%7E", "~", "~"),
        ("%00", "\x00", "%00"),
    ],
)
def test_decode_component(raw: str, decoded: str, canonical: str) -> None:
    assert decode_component(raw) == (decoded, canonical)
    assert sigv4.uri_encode(decoded) == canonical


def test_canonical_text_is_reused_not_copied() -> None:
    token = build_token(principal=TEMP)
    p = parse_token(token)
    raw_pairs = [tuple(item.split("=", 1)) for item in token.split("?", 1)[1].split("&")]
    assert list(p.encoded_params) == raw_pairs
    assert p.canonical_encoded_params is p.encoded_params


def test_hand_built_parsed_token_computes_its_encoding() -> None:
    p = parse_token(build_token(db_user="a b"))
    fields = {name: getattr(p, name) for name in ParsedToken.__dataclass_fields__}
    fields["encoded_params"] = ()
    bare = ParsedToken(**fields)
    assert bare.canonical_encoded_params == p.encoded_params


def test_unknown_extra_parameters_are_kept() -> None:
    token = build_token() + "&X-Extra=%2A"
    p = parse_token(token)
    assert ("X-Extra", "*") in p.params and ("X-Extra", "%2A") in p.encoded_params


def test_amz_date_slicing_matches_strptime() -> None:
    for text in ("20240229T235959Z", "19991231T000000Z", "20240501T120000Z"):
        token = replace_param(build_token(), "X-Amz-Date", text)
        token = replace_param(
            token, "X-Amz-Credential", f"AKIAALICEEXAMPLE0001%2F{text[:8]}%2Fus-east-1%2Frds-db"
            "%2Faws4_request",
        )
        expected = datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert parse_token(token).signed_at == expected


@pytest.mark.parametrize("text", ["20240230T000000Z", "20241301T000000Z", "20240101T240000Z",
                                  "20240101T006000Z", "20240101T000060Z", "２０２４0101T000000Z"])
def test_impossible_dates_are_malformed(text: str) -> None:
    with pytest.raises(TokenFormatError):
        parse_token(replace_param(build_token(), "X-Amz-Date", text))


def test_token_length_limit() -> None:
    token = build_token()
    padded = token + "&X-Pad=" + "a" * (MAX_TOKEN_LENGTH - len(token) - 7)
    assert len(padded) == MAX_TOKEN_LENGTH
    assert parse_token(padded).db_user == "app_user"
    with pytest.raises(TokenFormatError, match="too long"):
        parse_token(padded + "a")


@pytest.mark.parametrize("where", ["DBUser", "X-Amz-Security-Token", "host"])
def test_lone_surrogates_are_malformed_not_a_crash(where: str) -> None:
    """Fuzzing found it (fuzz/checks.check_token): a str from argv or the environment carries
    undecodable bytes as lone surrogates, and encoding them for SigV4 raised UnicodeEncodeError
    out of parse_token/verify_token (``token explain`` printed a traceback)."""
    token = build_token(principal=TEMP)
    token = "\udcff" + token if where == "host" else replace_param(token, where, "a\udcffb")
    with pytest.raises(TokenFormatError, match="lone surrogates") as info:
        parse_token(token)
    assert info.value.reason is Reason.MALFORMED_TOKEN


def test_errors_carry_reason_detail_and_hint() -> None:
    with pytest.raises(TokenFormatError) as info:
        parse_token("https://" + build_token())
    assert info.value.reason is Reason.MALFORMED_TOKEN
    assert info.value.detail == str(info.value)
    assert info.value.hint is not None and "https://" in info.value.hint


# ------------------------------------------------------------------------------------ redaction


def test_redact_token_hides_secrets_and_keeps_the_rest() -> None:
    token = build_token(principal=TEMP)
    sig = get_param(token, "X-Amz-Signature")
    session = get_param(token, "X-Amz-Security-Token")
    red = redact_token(token)
    assert sig not in red and sig[:8] + "…" in red
    assert session not in red and f"<redacted {len(TEMP.session_token or '')} chars>" in red
    assert "DBUser=app_user" in red and TEMP.access_key_id in red and red.startswith(HOST)


@pytest.mark.parametrize("key", ["x-amz-security-token", "X-AMZ-SECURITY-TOKEN",
                                 "X-Amz-Security%2DToken", "x-amz-signature"])
def test_redact_token_matches_names_loosely(key: str) -> None:
    red = redact_token(f"h:1/?{key}=supersecretvaluethatislong")
    assert "supersecretvaluethatislong" not in red


def test_redact_token_does_not_echo_non_tokens() -> None:
    assert redact_token("hunter2") == "<7 characters, not a token>"


def test_redact_value() -> None:
    assert redact_value("X-Amz-Signature", "a" * 64) == "a" * 8 + "…"
    assert redact_value("X-Amz-Security-Token", "xyz") == "<redacted 3 chars>"
    assert redact_value("DBUser", "bob") == "bob"


def test_fast_construction_equals_the_dataclass() -> None:
    p = parse_token(build_token(principal=TEMP))
    assert type(p) is ParsedToken
    rebuilt = ParsedToken(**{name: getattr(p, name) for name in ParsedToken.__dataclass_fields__})
    assert rebuilt == p and hash(rebuilt) == hash(p)
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        p.db_user = "x"  # type: ignore[misc]
