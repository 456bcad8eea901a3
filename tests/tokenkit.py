"""Test helpers: build RDS IAM tokens by hand in each SDK's surface form (sources below).

The signature always comes from ``sigv4.presign`` over the canonical request an SDK would sign;
only the *text* (parameter order, ``/`` before ``?``, host case, ``:443``) differs per form. Real
generators (botocore, @aws-sdk/rds-signer) are exercised separately in test_sdk_forms.py.

Sources of each form (public SDK code; AWS docs for the signing itself):
* signing: AWS SigV4 presigned requests,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html, and
  https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.Connecting.html;
* botocore: boto/botocore ``botocore/signers.py`` (``generate_db_auth_token``); AWS CLI:
  aws/aws-cli ``awscli/customizations/rds.py``;
* JS v2: aws/aws-sdk-js ``lib/rds/signer.js``; JS v3: aws/aws-sdk-js-v3
  ``packages/rds-signer/src/Signer.ts``;
* Go v1: aws/aws-sdk-go ``service/rds/rdsutils/connect.go``; Go v2: aws/aws-sdk-go-v2
  ``feature/rds/auth/connect.go``;
* Ruby: aws/aws-sdk-ruby
  ``gems/aws-sdk-rds/lib/aws-sdk-rds/customizations/auth_token_generator.rb``;
* Java v2: aws/aws-sdk-java-v2
  ``services/rds/src/main/java/software/amazon/awssdk/services/rds/DefaultRdsUtilities.java``.
Rust and paws (R) are modelled without a source path cited here yet (a gap, not a source).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rdsiam_emulator.auth import sigv4
from rdsiam_emulator.auth.credentials import ResolvedCredential, StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.iam.api_source import StaticPolicySource
from rdsiam_emulator.iam.authorizer import IamAuthorizer
from rdsiam_emulator.iam.evaluator import PolicyRef
from rdsiam_emulator.iam.principals import MotoCredential
from rdsiam_emulator.iam.principals import Principal as IamPrincipal

HOST = "mydb.c0abcdefghij.us-east-1.rds.amazonaws.com"
PORT = 5432
REGION = "us-east-1"
AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
"""The signing time every hand-built token uses unless told otherwise."""


@dataclass(frozen=True)
class Principal:
    access_key_id: str
    secret: str
    session_token: str | None = None

    def resolved(self, **overrides: object) -> ResolvedCredential:
        fields: dict[str, object] = {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret,
            "session_token": self.session_token,
        }
        fields.update(overrides)
        return ResolvedCredential(**fields)  # type: ignore[arg-type]


ALICE = Principal("AKIAALICEEXAMPLE0001", "alice/secret+key=0123456789abcdefghijklm")
BOB = Principal("AKIABOBEXAMPLE000002", "bob-secret-0123456789abcdefghijklmnopqrs")
TEMP = Principal(
    "ASIATEMPEXAMPLE00003",
    "temp-secret-0123456789abcdefghijklmnopq",
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJGMEQCIFake+Session/Token==",
)


def endpoint(**kwargs: object) -> Endpoint:
    fields: dict[str, object] = {"host": HOST, "port": PORT, "region": REGION}
    fields.update(kwargs)
    return Endpoint(**fields)  # type: ignore[arg-type]


def lookup(*principals: Principal) -> StaticCredentials:
    return StaticCredentials(
        {p.access_key_id: (p.secret, p.session_token) for p in principals or (ALICE, BOB, TEMP)}
    )


FORMS = ("botocore", "cli", "paws", "js_v2", "js_v3", "go", "ruby", "java", "rust")
"""The SDK surface forms (module docstring: sources); Go v1 and v2 share one form."""


def _order(form: str, names: list[str]) -> list[str]:
    """Parameter order of each SDK's token text (the signature is added by the caller's rule)."""
    if form in ("js_v2", "js_v3"):
        return sorted(names)  # fully sorted: Signature lands before SignedHeaders
    if form in ("go", "ruby"):
        return [*sorted(n for n in names if n != "X-Amz-Signature"), "X-Amz-Signature"]
    if form == "java":
        first = ["DBUser", "Action", "X-Amz-Algorithm", "X-Amz-Date", "X-Amz-SignedHeaders",
                 "X-Amz-Expires", "X-Amz-Credential", "X-Amz-Security-Token", "X-Amz-Signature"]
        return [n for n in first if n in names] + [n for n in names if n not in first]
    return names  # botocore, cli, paws, rust: insertion order, signature last


def build_token(
    *,
    principal: Principal = ALICE,
    host: str = HOST,
    port: int | None = PORT,
    db_user: str = "app_user",
    region: str = REGION,
    at: datetime = AT,
    expires: int | str = 900,
    form: str = "botocore",
    service: str = "rds-db",
    scope_date: str | None = None,
    action: str = "connect",
    algorithm: str = "AWS4-HMAC-SHA256",
    session_token: str | None = None,
    include_session_token: bool = True,
    signed_host: str | None = None,
    secret: str | None = None,
) -> str:
    """A token as the named SDK would print it, signed so that it verifies for that SDK's rules.

    ``signed_host`` and ``secret`` override what gets signed (to build deliberately wrong tokens);
    ``session_token`` overrides the principal's (``""`` for an empty parameter).
    """
    amz_date = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    scope_date = scope_date if scope_date is not None else amz_date[:8]
    token_session = session_token if session_token is not None else principal.session_token
    text_host = host.lower() if form == "js_v2" else host
    if form == "ruby" and port == 443:
        host_text = text_host
    else:
        host_text = text_host if port is None else f"{text_host}:{port}"
    if signed_host is None:
        signed_host = _signed_host(form, host, port, host_text)

    params: list[tuple[str, str]] = [
        ("Action", action),
        ("DBUser", db_user),
        ("X-Amz-Algorithm", algorithm),
        (
            "X-Amz-Credential",
            f"{principal.access_key_id}/{scope_date}/{region}/{service}/aws4_request",
        ),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if token_session is not None and include_session_token:
        params.append(("X-Amz-Security-Token", token_session))
    signature = sigv4.presign(
        host_text=host_text,
        params=params,
        secret=secret if secret is not None else principal.secret,
        amz_date=amz_date,
        scope_date=scope_date,
        region=region,
        service=service,
        signed_host=signed_host,
    )
    values = dict(params)
    values["X-Amz-Signature"] = signature
    names = _order(form, list(values))
    query = "&".join(f"{sigv4.uri_encode(n)}={sigv4.uri_encode(values[n])}" for n in names)
    slash = "" if form == "go" else "/"
    return f"{host_text}{slash}?{query}"


def _signed_host(form: str, host: str, port: int | None, host_text: str) -> str:
    """The Host value each SDK signs: host case and :443 rules, from the SDK sources above."""
    if form in ("botocore", "cli", "paws"):
        signed = host.lower()
        return signed if port in (None, 443) else f"{signed}:{port}"
    if form == "go":
        return host if port in (None, 443) else f"{host}:{port}"
    if form == "js_v2":
        return host_text  # already lower-cased; keeps :443
    return host_text  # js_v3, ruby (443 already dropped), java, rust: as written


def replace_param(token: str, name: str, raw_value: str | None) -> str:
    """Replace (or with None remove) one raw ``name=value`` item, keeping everything else."""
    head, _, query = token.partition("?")
    items = []
    for item in query.split("&"):
        key = item.partition("=")[0]
        if key == name:
            if raw_value is None:
                continue
            item = f"{key}={raw_value}"
        items.append(item)
    return head + "?" + "&".join(items)


def get_param(token: str, name: str) -> str:
    for item in token.partition("?")[2].split("&"):
        key, _, value = item.partition("=")
        if key == name:
            return value
    raise KeyError(name)


# ------------------------------------------------------------------ IAM: principals and policies

ACCOUNT = "123456789012"
RESOURCE_ID = "db-TOKENKITEXAMPLE000000000A"
"""The DbiResourceId of ``iam_endpoint()``: its dbuser ARNs are ``dbuser_arn(user)``."""


def iam_endpoint(**kwargs: object) -> Endpoint:
    """``endpoint()`` with the account and resource id the IAM authorizer needs."""
    return endpoint(account_id=ACCOUNT, resource_id=RESOURCE_ID, **kwargs)


def dbuser_arn(user: str) -> str:
    return f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{RESOURCE_ID}/{user}"


def iam_lookup() -> StaticCredentials:
    """ALICE and BOB as IAM users, TEMP as a role session: credentials that name their principal
    (what ``IamAuthorizer`` evaluates), with the same secrets as ``lookup()``."""
    principals = {
        ALICE: IamPrincipal("User", f"arn:aws:iam::{ACCOUNT}:user/alice", ACCOUNT,
                            user_name="alice"),
        BOB: IamPrincipal("User", f"arn:aws:iam::{ACCOUNT}:user/bob", ACCOUNT, user_name="bob"),
        TEMP: IamPrincipal("AssumedRole", f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s1", ACCOUNT,
                           role_arn=f"arn:aws:iam::{ACCOUNT}:role/app", session_name="s1",
                           source="sts:AssumeRole"),
    }
    return StaticCredentials({
        p.access_key_id: MotoCredential(p.access_key_id, p.secret, p.session_token,
                                        principal_arn=who.arn, account_id=ACCOUNT, principal=who)
        for p, who in principals.items()
    })


def iam_authorizer(*statements: dict[str, Any]) -> IamAuthorizer:
    """The real IAM authorizer over one fixed identity policy (the same for every principal)."""
    doc = {"Version": "2012-10-17", "Statement": list(statements)}
    return IamAuthorizer(StaticPolicySource((PolicyRef("tokenkit policy", doc),)))


def allow_users(*users: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "rds-db:connect",
            "Resource": [dbuser_arn(u) for u in users]}


DENY_ALL: dict[str, Any] = {"Effect": "Deny", "Action": "*", "Resource": "*"}
ALLOW_ALL: dict[str, Any] = {"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"}
