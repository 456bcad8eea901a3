"""Wildcard and ARN matching as IAM does it.

* ``*`` matches any run of characters, ``?`` exactly one; everything else is literal.
* Actions compare case-insensitively (``RDS-DB:Connect`` is ``rds-db:connect``).
* ARNs compare per segment (``arn:partition:service:region:account:resource``), case-sensitively: a
  wildcard in the region segment never swallows the account. The resource part (everything after the
  fifth colon) is one segment, so ``dbuser:*`` covers ``dbuser:db-ABC/alice``.
Compiled patterns are cached: the same few policy strings are matched on every login.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rdsiam_emulator.iam.variables import Piece

ARN_SEGMENTS = 6


@lru_cache(maxsize=8192)
def _compile(pieces: tuple[Piece, ...], ignore_case: bool) -> re.Pattern[str]:
    out: list[str] = []
    for text, is_pattern in pieces:
        if not is_pattern:
            out.append(re.escape(text))
            continue
        for char in text:
            if char == "*":
                out.append(".*")
            elif char == "?":
                out.append(".")
            else:
                out.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(out), flags)


def glob_match(pieces: tuple[Piece, ...], value: str, *, ignore_case: bool = False) -> bool:
    """Match ``value`` against pattern pieces (see ``variables.expand``)."""
    if len(pieces) == 1 and pieces[0] == ("*", True):
        return True
    return _compile(pieces, ignore_case).fullmatch(value) is not None


def simple_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Match a pattern without policy variables."""
    return glob_match(((pattern, True),), value, ignore_case=ignore_case)


def action_match(pattern: str, action: str) -> bool:
    """True when the IAM action ``pattern`` (``*``/``?`` wildcards) matches ``action``,
    case-insensitively as IAM compares actions.
    """
    return simple_match(pattern, action, ignore_case=True)


def split_pieces(pieces: tuple[Piece, ...], sep: str, maxsplit: int) -> list[tuple[Piece, ...]]:
    """Split pieces on ``sep`` in *pattern* text (substituted literals never split)."""
    parts: list[list[Piece]] = [[]]
    for text, is_pattern in pieces:
        if not is_pattern:
            parts[-1].append((text, False))
            continue
        chunks = text.split(sep)
        for i, chunk in enumerate(chunks):
            if i > 0:
                if len(parts) <= maxsplit:
                    parts.append([])
                else:
                    parts[-1].append((sep, True))
            if chunk:
                parts[-1].append((chunk, True))
    return [tuple(part) for part in parts]


@lru_cache(maxsize=8192)
def _arn_pattern_parts(pieces: tuple[Piece, ...]) -> list[tuple[Piece, ...]]:
    return split_pieces(pieces, ":", ARN_SEGMENTS - 1)


def arn_match(pieces: tuple[Piece, ...], arn: str) -> bool:
    """IAM's ARN match: ``*`` alone matches everything; otherwise segment by segment.

    A pattern with fewer than six segments is matched as a whole (wildcards may then cross colons);
    IAM would refuse such a policy at creation, so this only matters for session policies
    *(inferred)*.
    """
    if len(pieces) == 1 and pieces[0] == ("*", True):
        return True
    value_parts = arn.split(":", ARN_SEGMENTS - 1)
    pattern_parts = _arn_pattern_parts(pieces)
    if len(pattern_parts) != ARN_SEGMENTS or len(value_parts) != ARN_SEGMENTS:
        return glob_match(pieces, arn)
    return all(
        glob_match(p, v) if p else v == ""
        for p, v in zip(pattern_parts, value_parts, strict=True)
    )


def arn_segments(arn: str) -> list[str] | None:
    """The six segments of an ARN, or None if it does not have them."""
    parts = arn.split(":", ARN_SEGMENTS - 1)
    return parts if len(parts) == ARN_SEGMENTS and parts[0] == "arn" else None
