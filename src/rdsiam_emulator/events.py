"""Auth events: what happened at each login attempt and why, kept beside the wire.

Clients only ever see the engine's generic error; the event records the reason code, the RDS error
code, the detail and the hint. Events never hold secrets or whole tokens.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rdsiam_emulator.reasons import REASONS, Reason

log = logging.getLogger(__name__)

ALLOW = "allow"
DENY = "deny"

NAME_CAP = 256
"""Characters kept of a client-supplied name (user, database) in events and log lines."""
TEXT_CAP = 1024
"""Characters kept of a detail or hint (they quote client input such as a token's DBUser)."""


def clip(text: str, limit: int = NAME_CAP) -> str:
    """``text`` if at most ``limit`` characters, else its head plus a visible truncation mark,
    ``limit`` characters in all (so clipping twice changes nothing). ``limit`` >= 32."""
    if len(text) <= limit:
        return text
    mark = f"…[+{len(text)} chars total, truncated]"
    return text[:limit - len(mark)] + mark


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """One login attempt at an emulated endpoint."""

    time: datetime
    instance_id: str
    engine: str
    db_user: str
    method: str
    """``iam`` (token) or ``password`` (relayed to the real server)."""
    outcome: str
    """``allow`` or ``deny``."""
    reason: Reason | None = None
    """Set on every ``deny`` the emulator records (None on ``allow``)."""
    detail: str = ""
    hint: str | None = None
    """What to do about a ``deny``; every refusal the emulator records has one."""
    principal_arn: str | None = None
    access_key_id: str | None = None
    client_address: str | None = None
    client_port: int | None = None
    database: str | None = None
    tls: bool = False
    seq: int = field(default=0, compare=False)
    not_evaluated: tuple[str, ...] = ()
    """Parts of the IAM decision that could not be evaluated (``PrincipalPolicies.skipped``): an
    ``allow`` with any is not a full answer, AWS may decide otherwise."""

    def __post_init__(self) -> None:
        # Client input is unbounded (a 100,000-character user name is a valid wire message);
        # every copy of the event (JSON lines, summaries, RDS log lines) is capped here once.
        for name, limit in (("db_user", NAME_CAP), ("database", NAME_CAP),
                            ("detail", TEXT_CAP), ("hint", TEXT_CAP)):
            value = getattr(self, name)
            if isinstance(value, str) and len(value) > limit:
                object.__setattr__(self, name, clip(value, limit))
        if any(len(part) > TEXT_CAP for part in self.not_evaluated):
            object.__setattr__(self, "not_evaluated",
                               tuple(clip(part, TEXT_CAP) for part in self.not_evaluated))

    @property
    def ok(self) -> bool:
        """True when the attempt was allowed (``outcome == "allow"``)."""
        return self.outcome == ALLOW

    @property
    def rds_error_code(self) -> str | None:
        """The error code RDS would log for ``reason`` (``InvalidToken``, ``NotAuthorized``,
        ...).

        None when allowed or when the refusal is the engine's own (TLS, unknown user, ...): see
        docs/reason-codes.md.
        """
        return None if self.reason is None else REASONS[self.reason].rds_error_code

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values: ``time`` as ISO 8601 (UTC), ``reason`` as its string,
        plus ``rds_error_code``.
        """
        data = asdict(self)
        data["time"] = self.time.isoformat()
        data["reason"] = None if self.reason is None else str(self.reason)
        data["rds_error_code"] = self.rds_error_code
        data["not_evaluated"] = list(self.not_evaluated)
        return data

    def to_json(self) -> str:
        """``to_dict()`` as one line of JSON with sorted keys (the JSON-lines file format)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def rds_log_line(self) -> str | None:
        """The line RDS would write to its ``iam-db-auth-error`` log for this attempt, if any."""
        if self.outcome == ALLOW or self.reason is None:
            return None
        info = REASONS[self.reason]
        if info.rds_error_code is None:
            return None
        user = self.db_user
        if info.rds_error_code == "NotAuthorized":
            return (
                f"[ERROR] Failed to authorize the connection request for user {user} because the "
                f"IAM policy assumed by the caller '{self.principal_arn or 'unknown'}' is not "
                "authorized to perform rds-db:connect on the DB instance. "
                f"(Status Code: {info.http_status}, Error Code: {info.rds_error_code})"
            )
        if info.rds_error_code == "ExpiredToken":
            why = "the token age is longer than 15 minutes"
        elif info.rds_error_code == "ThrottlingException":
            why = "the request rate is too high"
        elif info.rds_error_code == "InternalError":
            why = "of an internal error"
        else:
            why = "the provided token is malformed or otherwise invalid"
        return (
            f"[ERROR] Failed to authenticate the connection request for user {user} because {why}. "
            f"(Status Code: {info.http_status}, Error Code: {info.rds_error_code})"
        )

    def summary(self) -> str:
        """One line for humans (pytest report sections, logs)."""
        who = f"{self.db_user}@{self.instance_id}"
        if self.ok:
            via = f" as {self.principal_arn}" if self.principal_arn else ""
            skipped = (f" (not evaluated: {'; '.join(self.not_evaluated)})"
                       if self.not_evaluated else "")
            return f"{self.time:%H:%M:%S} ALLOW {self.method} {who}{via}{skipped}"
        text = f"{self.time:%H:%M:%S} DENY  {self.method} {who}: {self.reason} "
        text += f"[{self.rds_error_code or 'engine'}] {self.detail}"
        if self.hint:
            text += f" — hint: {self.hint}"
        return text


METRIC_BY_CODE = {
    "InvalidToken": "IamDbAuthConnectionFailureInvalidToken",
    "ExpiredToken": "IamDbAuthConnectionFailureInvalidToken",
    "NotAuthorized": "IamDbAuthConnectionFailureInsufficientPermissions",
    "ThrottlingException": "IamDbAuthConnectionFailureThrottling",
    "InternalError": "IamDbAuthConnectionFailureServerError",
}


class EventLog:
    """A bounded, thread-safe, in-memory log of auth events, optionally mirrored to JSON lines.

    Endpoints write from their event-loop threads while tests read from the main thread. The JSON
    lines file is a best-effort copy: a failed write (disk full, directory removed) is logged once
    per run of failures and never reaches the login that produced the event; check the path up
    front with ``check_jsonl_path``.
    """

    def __init__(self, *, maxlen: int = 10_000, jsonl_path: Path | None = None) -> None:
        self._events: deque[AuthEvent] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._seq = 0
        self._jsonl_path = jsonl_path
        self._jsonl_failing = False
        self._listeners: list[Callable[[AuthEvent], None]] = []

    def record(self, event: AuthEvent) -> AuthEvent:
        """Stamp ``event`` with the next sequence number, keep it, mirror it to the JSON-lines file
        and call the listeners (on this thread, outside the lock). Returns the stamped copy.

        A listener's exception propagates to the caller; a failing file write does not.
        """
        with self._lock:
            self._seq += 1
            stamped = _with_seq(event, self._seq)
            self._events.append(stamped)
            listeners = list(self._listeners)
            if self._jsonl_path is not None:
                self._write_jsonl(self._jsonl_path, stamped)
        for listener in listeners:
            listener(stamped)
        return stamped

    def _write_jsonl(self, path: Path, event: AuthEvent) -> None:
        """Append ``event`` to ``path``; called with the lock held."""
        try:
            with path.open("a", encoding="utf-8") as fh:
                fh.write(event.to_json() + "\n")
        except Exception as exc:  # the sink must never fail the login that produced the event
            if not self._jsonl_failing:
                self._jsonl_failing = True
                log.warning("auth events file %s: cannot write (%s: %s); logins go on, events are "
                            "kept in memory only until writing works again", path,
                            type(exc).__name__, exc)
            return
        if self._jsonl_failing:
            self._jsonl_failing = False
            log.warning("auth events file %s: writing works again", path)

    def mark(self) -> int:
        """A cursor: pass it to ``since`` to get only the events recorded after this call."""
        with self._lock:
            return self._seq

    def since(self, cursor: int = 0, *, instance_id: str | None = None) -> list[AuthEvent]:
        """Events recorded after ``cursor`` (a ``mark()``), oldest first, optionally of one
        instance.

        Only events still held (the log keeps the last ``maxlen``) are returned.
        """
        with self._lock:
            events = [e for e in self._events if e.seq > cursor]
        if instance_id is not None:
            events = [e for e in events if e.instance_id == instance_id]
        return events

    def all(self) -> list[AuthEvent]:
        """Every event still held, oldest first."""
        return self.since(0)

    def subscribe(self, listener: Callable[[AuthEvent], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for each event recorded from now on; returns a function that
        unsubscribes (safe to call twice).
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def clear(self) -> None:
        """Drop the events held; sequence numbers keep counting, so older cursors stay valid."""
        with self._lock:
            self._events.clear()


def check_jsonl_path(path: Path) -> None:
    """Make sure events can be appended to ``path`` (creating the file, not its directory).

    Raises ``OSError`` saying why not (missing directory, permissions, a directory at ``path``).
    """
    with path.open("a", encoding="utf-8"):
        pass


def iam_metrics(events: Iterable[AuthEvent]) -> dict[str, int]:
    """The CloudWatch metrics RDS publishes for IAM DB auth, computed from IAM events."""
    names = ["IamDbAuthConnectionRequests", "IamDbAuthConnectionSuccess",
             "IamDbAuthConnectionFailure", *sorted(set(METRIC_BY_CODE.values()))]
    counts = dict.fromkeys(names, 0)
    for event in events:
        if event.method != "iam" or (event.rds_error_code is None and not event.ok):
            continue
        counts["IamDbAuthConnectionRequests"] += 1
        if event.ok:
            counts["IamDbAuthConnectionSuccess"] += 1
        else:
            counts["IamDbAuthConnectionFailure"] += 1
            assert event.rds_error_code is not None
            counts[METRIC_BY_CODE[event.rds_error_code]] += 1
    return counts


def _with_seq(event: AuthEvent, seq: int) -> AuthEvent:
    data = {f: getattr(event, f) for f in event.__dataclass_fields__}
    data["seq"] = seq
    return AuthEvent(**data)
