"""Helpers for pilot tests: wait for the UI to reach a state, read what it shows."""
from __future__ import annotations

import time

from textual.pilot import Pilot


async def wait_for(pilot: Pilot, predicate, timeout: float = 30, what: str = "condition", step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        await pilot.pause(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; notifications: {notes(pilot.app)}")


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def table_rows(app) -> dict[str, list[str]]:
    """The services table as text: service -> its cells."""
    from tui.widgets.services_table import ServicesTable
    table = app.screen.query_one(ServicesTable)
    return {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)}


async def select_service(pilot: Pilot, name: str) -> None:
    from tui.widgets.services_table import ServicesTable
    table = pilot.app.screen.query_one(ServicesTable)
    table.focus()
    await pilot.press("ctrl+home")
    for _ in range(list(table_rows(pilot.app)).index(name)):
        await pilot.press("down")
    assert table.selected == name
