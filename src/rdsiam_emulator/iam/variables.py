"""IAM policy variables (``${aws:username}``, ``${aws:PrincipalTag/team}``, ``${*}``...).

Expansion returns *pieces*: text from the policy keeps its wildcard meaning, text substituted from
the request context is literal (a user named ``a*`` must not become a wildcard). ``${*}``, ``${?}``
and ``${$}`` stand for the literal characters. A variable whose key is absent (and has no ``,
'default'``) makes the element unusable, as in IAM: the statement then does not match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

Piece = tuple[str, bool]
"""(text, is_pattern): pattern text keeps ``*``/``?`` wildcards, literal text does not."""

_VAR = re.compile(r"\$\{([^}]*)\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}
_DEFAULT = re.compile(r"^\s*([^,]+?)\s*,\s*'([^']*)'\s*$")


def has_variables(text: str) -> bool:
    """True when ``text`` contains a ``${`` policy variable opener."""
    return "${" in text


def expand(text: str, context: Mapping[str, tuple[str, ...]]) -> tuple[Piece, ...] | None:
    """Split ``text`` into pattern/literal pieces with variables substituted; None if one is unset.

    ``context`` maps lower-cased condition keys to their values; a multi-valued key cannot be used
    as a variable (IAM rejects that too), so it counts as unset.
    """
    pieces: list[Piece] = []
    pos = 0
    for match in _VAR.finditer(text):
        if match.start() > pos:
            pieces.append((text[pos : match.start()], True))
        inner = match.group(1)
        value = _resolve(inner, context)
        if value is None:
            return None
        pieces.append((value, False))
        pos = match.end()
    if pos < len(text):
        pieces.append((text[pos:], True))
    return tuple(pieces)


def expand_literal(text: str, context: Mapping[str, tuple[str, ...]]) -> str | None:
    """The expanded text as one string (for operators without wildcards)."""
    pieces = expand(text, context)
    if pieces is None:
        return None
    return "".join(piece for piece, _ in pieces)


def _resolve(inner: str, context: Mapping[str, tuple[str, ...]]) -> str | None:
    if inner in _SPECIAL:
        return _SPECIAL[inner]
    default: str | None = None
    match = _DEFAULT.match(inner)
    key = inner.strip()
    if match is not None:
        key, default = match.group(1), match.group(2)
    values = context.get(key.lower())
    if values is None or len(values) != 1:
        return default
    return values[0]
