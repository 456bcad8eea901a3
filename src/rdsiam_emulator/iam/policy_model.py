"""Policy documents as typed values.

Parsing is tolerant in one direction only: anything IAM would refuse becomes a ``PolicyParseError``
value (never an exception), so a broken document denies with a reason instead of crashing a login.
Parsed documents are cached by their text: the same few documents are evaluated on every login.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from rdsiam_emulator.iam.conditions import OPERATORS, parse_operator

Effect = Literal["Allow", "Deny"]
VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"


@dataclass(frozen=True, slots=True)
class ConditionClause:
    """One ``operator: {key: values}`` entry; ``operator`` as written (with IfExists/ForX:
    parts)."""

    operator: str
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Statement:
    """One parsed policy statement. ``index`` is its 0-based position; ``actions``/``resources``
    hold ``NotAction``/``NotResource`` values when ``not_action``/``not_resource`` is set.
    """
    index: int
    sid: str | None
    effect: Effect
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    conditions: tuple[ConditionClause, ...]

    @property
    def label(self) -> str:
        """``Sid 'x'`` when the statement has a Sid, else ``statement #n`` (1-based)."""
        return f"Sid {self.sid!r}" if self.sid else f"statement #{self.index + 1}"


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """A parsed policy: its ``Version`` and statements in document order."""
    version: str
    statements: tuple[Statement, ...]

    @property
    def variables_enabled(self) -> bool:
        """Policy variables work only in 2012-10-17 documents; older ones keep ``${…}``."""
        return self.version == VERSION_2012


@dataclass(frozen=True, slots=True)
class PolicyParseError:
    """Why a document could not be parsed (IAM would reject it); evaluation treats it as allowing
    nothing and explanations show ``message``.
    """
    message: str


ParsedPolicy = PolicyDocument | PolicyParseError


class _Invalid(Exception):
    pass


def parse_policy(document: str | Mapping[str, Any]) -> ParsedPolicy:
    """Parse a policy (JSON text or an already-decoded mapping); never raises."""
    if isinstance(document, str):
        return _parse_text(document)
    try:
        return _parse_text(json.dumps(document, sort_keys=True))
    except (TypeError, ValueError) as exc:
        return PolicyParseError(f"not JSON-serialisable: {exc}")


@lru_cache(maxsize=2048)
def _parse_text(text: str) -> ParsedPolicy:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return PolicyParseError(f"not valid JSON ({exc})")
    try:
        return _parse_document(data)
    except _Invalid as exc:
        return PolicyParseError(str(exc))
    except Exception as exc:  # defensive: a document must never take a login down
        return PolicyParseError(f"unreadable policy ({type(exc).__name__}: {exc})")


def _parse_document(data: object) -> PolicyDocument:
    if not isinstance(data, dict):
        raise _Invalid("the policy is not a JSON object")
    unknown = set(data) - {"Version", "Id", "Statement"}
    if unknown:
        raise _Invalid(f"unknown top-level element(s): {', '.join(sorted(unknown))}")
    version = data.get("Version", VERSION_2008)
    if version not in (VERSION_2012, VERSION_2008):
        raise _Invalid(f"Version must be {VERSION_2012} or {VERSION_2008}, not {version!r}")
    if "Statement" not in data:
        raise _Invalid("the policy has no Statement")
    raw = data["Statement"]
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise _Invalid("Statement is empty")
    statements = tuple(_parse_statement(i, item) for i, item in enumerate(items))
    sids = [s.sid for s in statements if s.sid]
    if len(sids) != len(set(sids)):
        raise _Invalid("statement ids (Sid) must be unique")
    return PolicyDocument(version, statements)


_STATEMENT_KEYS = {
    "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition",
    "Principal", "NotPrincipal",
}


def _parse_statement(index: int, item: object) -> Statement:
    where = f"statement #{index + 1}"
    if not isinstance(item, dict):
        raise _Invalid(f"{where} is not a JSON object")
    unknown = set(item) - _STATEMENT_KEYS
    if unknown:
        raise _Invalid(f"{where}: unknown element(s) {', '.join(sorted(unknown))}")
    if "Principal" in item or "NotPrincipal" in item:
        raise _Invalid(f"{where}: identity policies must not contain Principal/NotPrincipal")
    sid = item.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise _Invalid(f"{where}: Sid must be a string")
    effect = item.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise _Invalid(f"{where}: Effect must be \"Allow\" or \"Deny\", not {effect!r}")
    actions, not_action = _either(item, "Action", "NotAction", where)
    resources, not_resource = _either(item, "Resource", "NotResource", where)
    for action in actions:
        if action != "*" and ":" not in action:
            raise _Invalid(f"{where}: action {action!r} has no service prefix (service:action)")
    conditions = _parse_conditions(item.get("Condition"), where)
    return Statement(index, sid, effect, actions, not_action, resources, not_resource, conditions)


def _either(
    item: dict[str, Any], name: str, not_name: str, where: str
) -> tuple[tuple[str, ...], bool]:
    if (name in item) == (not_name in item):
        raise _Invalid(f"{where}: exactly one of {name} or {not_name} is required")
    key = name if name in item else not_name
    return _strings(item[key], f"{where}: {key}"), key == not_name


def _strings(value: object, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _Invalid(f"{where} is empty")
    if not all(isinstance(v, str) and v for v in items):
        raise _Invalid(f"{where} must be a non-empty string or a list of them")
    return tuple(str(v) for v in items)


def _parse_conditions(raw: object, where: str) -> tuple[ConditionClause, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _Invalid(f"{where}: Condition must be an object")
    clauses: list[ConditionClause] = []
    for operator, block in raw.items():
        if parse_operator(operator) is None:
            known = ", ".join(sorted(OPERATORS))
            raise _Invalid(f"{where}: unknown condition operator {operator!r} (known: {known})")
        if not isinstance(block, dict) or not block:
            raise _Invalid(f"{where}: {operator} must map condition keys to values")
        for key, values in block.items():
            items = values if isinstance(values, list) else [values]
            if not items:
                raise _Invalid(f"{where}: {operator} {key} has no values")
            texts: list[str] = []
            for v in items:
                if isinstance(v, bool):
                    texts.append("true" if v else "false")
                elif isinstance(v, int | float | str):
                    texts.append(str(v))
                else:
                    raise _Invalid(f"{where}: {operator} {key}: values must be scalars")
            clauses.append(ConditionClause(operator, key, tuple(texts)))
    return tuple(clauses)
