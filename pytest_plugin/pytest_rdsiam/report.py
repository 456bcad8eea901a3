"""A section in pytest's failure report: the auth events of the failing test, with reasons and
hints. RDS never tells a client why a login failed; this is where the emulator does."""

from __future__ import annotations

import pytest

from pytest_rdsiam.plugin_state import EVENT_SOURCES

SECTION_TITLE = "rdsiam auth events"


def events_section(item: pytest.Item) -> str | None:
    """The auth events recorded for ``item``: one summary line each (plus the principal of a
    refusal), every instance it used, each event once; a placeholder line when no login reached
    the emulator, and None when the test used no instance.
    """
    sources = item.stash.get(EVENT_SOURCES, [])
    lines: list[str] = []
    seen: set[int] = set()
    for instance, cursor in sources:
        for event in instance.events_since(cursor):
            if event.seq in seen:
                continue
            seen.add(event.seq)
            lines.append(event.summary())
            if event.principal_arn and not event.ok:
                lines.append(f"    principal: {event.principal_arn}")
            lines.extend(f"    not evaluated: {part}" for part in event.not_evaluated)
    if not sources:
        return None
    return "\n".join(lines) if lines else "(no login attempts reached the emulator)"


def add_section(item: pytest.Item, report: pytest.TestReport) -> None:
    """Attach ``events_section`` to the report of a failed test phase (passed and skipped are left
    alone).
    """
    if report.passed or report.skipped:
        return
    text = events_section(item)
    if text is not None:
        report.sections.append((SECTION_TITLE, text))
