"""Finding planted secrets in captured output: the whole value, and the parts of a token that are
secret on their own (signature, session token), in the forms a renderer may write them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, unquote


def forms(secret: str) -> set[str]:
    """``secret`` as text, percent-encoded (as in a token) and JSON-escaped."""
    return {secret, quote(secret, safe=""), json.dumps(secret)[1:-1], unquote(secret)}


def token_secrets(token: str) -> dict[str, str]:
    """What of a token must never be written: the whole token, its signature, its session
    token."""
    out = {"whole token": token}
    for item in token.partition("?")[2].split("&"):
        key, _, value = item.partition("=")
        if key == "X-Amz-Signature":
            out["token signature"] = value
        elif key == "X-Amz-Security-Token":
            out["token session token"] = unquote(value)
    return out


def find_leaks(planted: dict[str, str], channels: dict[str, str]) -> list[str]:
    """``"<secret name> in <channel>"`` for every planted secret found in any channel."""
    found = []
    for name, secret in planted.items():
        assert len(secret) >= 8, f"{name} is too short to grep for meaningfully: {secret!r}"
        for channel, text in channels.items():
            if any(form in text for form in forms(secret)):
                found.append(f"{name} in {channel}")
    return found


def channel_text(parts: Iterable[str]) -> str:
    """Joined, for one channel."""
    return "\n".join(parts)
