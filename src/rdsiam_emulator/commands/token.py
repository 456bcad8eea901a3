"""``rdsiam-emulator token explain``: why would RDS accept or reject this token?

Thin argparse glue over ``rdsiam_emulator.auth.explain``. Exit status: 0 PASS (no check failed and
the signature was verified), 1 FAIL (a check failed), 2 usage error, 3 UNVERIFIED (no check
failed but the signature was not checked).

Extension point (for the IAM package's policy check): ``EXPLAIN_HOOK_MODULES`` names optional
modules; each that imports may define ``add_explain_arguments(parser)`` to add options and
``explain_inputs(args, endpoint) -> ExplainInputs | None`` to supply a credential lookup and/or an
authorizer. Programmatic callers can use ``register_explain_hook`` instead. The first hook that
returns a credential lookup wins over the static ``--secret-access-key`` options.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from rdsiam_emulator.auth.credentials import CredentialLookup, StaticCredentials
from rdsiam_emulator.auth.endpoint_spec import Endpoint
from rdsiam_emulator.auth.explain import (
    FAIL,
    PASS,
    UNVERIFIED,
    ExplainInputs,
    explain_token,
    region_from_host,
    render_text,
)
from rdsiam_emulator.auth.tokens import TokenFormatError, parse_token, split_host_port
from rdsiam_emulator.auth.verifier import Authorizer, VerifierSettings
from rdsiam_emulator.clock import SystemClock
from rdsiam_emulator.engines import ENGINE_NAMES


class ExplainHook(Protocol):
    """A provider of extra ``token explain`` inputs (e.g. ``commands.explain_hook``: credentials and
    an authorizer read from a moto server); modules with both functions qualify.
    """
    def add_explain_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the hook's options to the ``token explain`` parser."""

    def explain_inputs(
        self, args: argparse.Namespace, endpoint: Endpoint | None
    ) -> ExplainInputs | None:
        """Inputs from the parsed options (``endpoint`` is the ``--endpoint`` given, or None), or
        None when the hook has nothing to add.
        """


EXPLAIN_HOOK_MODULES: tuple[str, ...] = ("rdsiam_emulator.commands.explain_hook",)
"""Optional modules providing ``add_explain_arguments`` / ``explain_inputs`` (absent = skipped)."""

_HOOKS: list[ExplainHook] = []


def register_explain_hook(hook: ExplainHook) -> None:
    """Add a hook (before ``build_parser`` runs, so its options exist)."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)


def _load_hooks() -> list[ExplainHook]:
    hooks = list(_HOOKS)
    for name in EXPLAIN_HOOK_MODULES:
        try:
            module: Any = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # the optional module does not exist (yet)
            raise
        if hasattr(module, "add_explain_arguments") and hasattr(module, "explain_inputs"):
            hooks.append(module)
    return hooks


def register(sub: Any) -> None:
    """Add ``token explain`` to the ``rdsiam-emulator`` subparsers ``sub``."""
    parser = sub.add_parser("token", help="inspect RDS IAM tokens",
                            description="Inspect RDS IAM authentication tokens.")
    inner = parser.add_subparsers(dest="token_command", metavar="SUBCOMMAND")
    explain = inner.add_parser(
        "explain",
        help="decode a token and run every RDS check it has inputs for",
        description="Decode an RDS IAM token (secrets redacted), show the canonical request and "
        "string to sign, and run every check the given inputs allow. Exit 0 PASS, 1 FAIL, "
        "2 usage error, 3 UNVERIFIED (nothing failed, signature not checked).",
    )
    explain.add_argument("token", metavar="TOKEN", help="the token, or '-' to read it from stdin")
    explain.add_argument("--at", metavar="ISO8601",
                         help="check as of this time (default: now), e.g. 2024-05-01T12:00:30Z")
    explain.add_argument("--endpoint", metavar="HOST:PORT",
                         help="the endpoint the client connects to (enables host binding)")
    explain.add_argument("--alias", action="append", default=[], metavar="HOST[:PORT]",
                         help="further names of the endpoint (cluster/reader/proxy)")
    explain.add_argument("--region", help="the instance's region (enables the scope region check)")
    explain.add_argument("--db-user", help="the login user name")
    explain.add_argument("--access-key-id", help="default: the token's access key id")
    explain.add_argument("--secret-access-key", help="enables the signature check")
    explain.add_argument("--session-token", help="for temporary (ASIA…) credentials")
    explain.add_argument("--max-skew", type=float, default=300.0, metavar="SECONDS",
                         help="tolerated future clock skew (default 300)")
    explain.add_argument("--engine", choices=ENGINE_NAMES,
                         help="show only this engine's client error")
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    for hook in _load_hooks():
        hook.add_explain_arguments(explain)
    explain.set_defaults(func=run_explain)
    parser.set_defaults(func=lambda _args: (parser.print_help(sys.stderr), 2)[1])


class UsageError(ValueError):
    """Bad options: exit status 2."""


def _fail(message: str) -> int:
    print(f"token explain: {message}", file=sys.stderr)
    return 2


def parse_at(text: str) -> datetime:
    """ISO 8601; a time without an offset is UTC. Also accepts the token's own YYYYMMDDTHHMMSSZ."""
    value = text.strip()
    try:
        if len(value) == 16 and value[8] == "T" and value.endswith("Z") and value[:8].isdigit():
            when = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        else:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--at {text!r} is not an ISO 8601 time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _endpoint(args: argparse.Namespace, token_region: str | None) -> Endpoint | None:
    if args.endpoint is None:
        if args.alias:
            raise UsageError("--alias needs --endpoint")
        return None
    try:
        host, port = split_host_port(args.endpoint)
    except TokenFormatError as exc:
        raise UsageError(f"--endpoint {args.endpoint!r}: {exc.detail}") from exc
    if port is None:
        raise UsageError("--endpoint needs HOST:PORT")
    try:
        region = args.region or region_from_host(host) or token_region or ""
        return Endpoint(host, port, region, tuple(args.alias))
    except TokenFormatError as exc:
        raise UsageError(f"--alias: {exc.detail}") from exc


def run_explain(args: argparse.Namespace) -> int:
    """Decode the token (argument, or stdin for ``-``), run every check the options give inputs for
    and print the explanation. Returns 0 PASS, 1 FAIL, 2 usage error, 3 UNVERIFIED (nothing
    failed, but the signature was not checked).
    """
    # judged exactly as read: a client that sends the trailing newline is refused by RDS too
    token = sys.stdin.read() if args.token == "-" else args.token
    if not token.strip():
        return _fail("no token given (empty argument or stdin)")
    try:
        now = parse_at(args.at) if args.at else SystemClock().now()
        token_region: str | None
        token_akid: str | None
        try:
            # only for defaults (key id, region): the verdict judges the token as given
            parsed = parse_token(token.strip())
            token_region, token_akid = parsed.region, parsed.access_key_id
        except TokenFormatError:
            token_region = token_akid = None
        endpoint = _endpoint(args, token_region)
        if not math.isfinite(args.max_skew) or args.max_skew < 0:
            raise UsageError(f"--max-skew must be a finite number of seconds, 0 or more "
                             f"(got {args.max_skew})")
    except UsageError as exc:
        return _fail(str(exc))

    credentials: CredentialLookup | None = None
    authorizer: Authorizer | None = None
    unused_secret = False
    for hook in _load_hooks():
        inputs = hook.explain_inputs(args, endpoint)
        if inputs is None:
            continue
        credentials = credentials or inputs.credentials
        authorizer = authorizer or inputs.authorizer
    if credentials is None and args.secret_access_key is not None:
        akid = args.access_key_id or token_akid
        if akid is None:  # an unreadable token: its verdict is FAIL (malformed_token) anyway
            unused_secret = True
        else:
            credentials = StaticCredentials({akid: (args.secret_access_key, args.session_token)})
    elif credentials is None and (args.access_key_id or args.session_token):
        return _fail("--access-key-id/--session-token need --secret-access-key")

    inferred_region = None if endpoint is None else region_from_host(endpoint.host)
    settings = VerifierSettings(max_future_skew=timedelta(seconds=args.max_skew))
    explanation = explain_token(
        token,
        now=now,
        endpoint=endpoint,
        region=args.region if endpoint is None else None,
        region_unknown=inferred_region is None and args.region is None and endpoint is not None,
        db_user=args.db_user,
        credentials=credentials,
        authorizer=authorizer,
        settings=settings,
    )
    if inferred_region is not None and args.region is None:
        explanation.notes.append(
            f"region {inferred_region} taken from the endpoint host name (--region overrides)")
    explanation.notes.extend(_whitespace_notes(token))
    if unused_secret:
        explanation.notes.append("--secret-access-key was not used: the token names no readable "
                                 "access key id (pass --access-key-id to check a signature anyway)")
    if args.json:
        print(_writable(json.dumps(explanation.to_dict(), indent=2, ensure_ascii=False)))
    else:
        sys.stdout.write(_writable(render_text(explanation, engine=args.engine)))
    return EXIT_CODES[explanation.verdict]


def _writable(text: str) -> str:
    """``text`` with lone surrogates (undecodable argv/stdin bytes) as ``\\udcff`` escapes, so
    writing it to a UTF-8 stream cannot fail."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


EXIT_CODES = {PASS: 0, FAIL: 1, UNVERIFIED: 3}
"""Exit status by verdict; 2 is usage errors (argparse's own code)."""


def _whitespace_notes(token: str) -> list[str]:
    """Say why a token with surrounding white space fails: usually a shell or file artefact."""
    if token == token.strip():
        return []
    where = "ends with a newline" if token.endswith("\n") else "has white space around it"
    return [f"the token as given {where}; a client sending it like this is refused "
            "(malformed_token). If the newline comes from echo or a file, the client must send "
            "the token without it (printf '%s', $(...) strips it)"]
