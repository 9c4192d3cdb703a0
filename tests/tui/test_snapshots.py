"""The setup, overview and log screens drawn from fixed data, at 80x24 (an ssh session) and 120x40."""
from __future__ import annotations

import pytest
from fakes import EVENTS, FakeSource
from tuitools import wait_for

from tui.app import AfboxApp
from tui.screens.logs import LogScreen
from tui.screens.overview import OverviewScreen
from tui.screens.setup import SetupScreen

SIZES = [(80, 24), (120, 40)]


def app_with(running: str | None) -> AfboxApp:
    app = AfboxApp(FakeSource(running))
    app.journal.extend(EVENTS)
    return app


async def overview_ready(pilot) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverviewScreen) and pilot.app.screen.overview,
                   5, "the overview")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_setup(snap_compare, size):
    async def ready(pilot):
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SetupScreen) and pilot.app.screen.info,
                       5, "host facts")
    assert snap_compare(app_with(None), terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview(snap_compare, size):
    assert snap_compare(app_with("ci"), terminal_size=size, run_before=overview_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_log_with_search(snap_compare, size):
    async def open_log(pilot):
        await overview_ready(pilot)
        await pilot.press("down", "l")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogScreen) and pilot.app.screen.query_one(
            "#log").lines, 5, "log lines")
        await pilot.press("slash", *"unresponsive", "enter", "n")
    assert snap_compare(app_with("ci"), terminal_size=size, run_before=open_log)
