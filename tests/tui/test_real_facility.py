"""The console against a real `ci` facility, started, scaled, restarted and stopped through its keys.

The tests run in file order and share the facility the first one starts.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from harness import shared_tmpdir
from tuitools import notes, select_service, table_rows, wait_for

from afbox import lifecycle
from tui.app import AfboxApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.logs import LogScreen
from tui.screens.overview import OverviewScreen
from tui.screens.setup import SetupScreen
from tui.widgets.dask_panel import DaskPanel
from tui.widgets.log_view import LogView

pytestmark = pytest.mark.integration
if not shutil.which("supervisord", path=str(Path(sys.executable).parent)):
    pytest.skip("supervisord not installed in this environment (pip install supervisor)", allow_module_level=True)

NAME, PORT_BASE = "ci", 22000
ISOLATE = ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "AFBOX_SCHEDULER")


@pytest.fixture(scope="module", autouse=True)
def isolated():
    base = shared_tmpdir("afbox-tui-")
    saved = {k: os.environ.get(k) for k in ISOLATE}
    os.environ.update(XDG_STATE_HOME=str(base / "state"), XDG_CACHE_HOME=str(base / "cache"),
                      XDG_DATA_HOME=str(base / "data"), XDG_RUNTIME_DIR=str(base / "runtime"))
    os.environ.pop("AFBOX_SCHEDULER", None)
    yield base
    try:
        for _ in lifecycle.down(NAME):
            pass
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(base, ignore_errors=True)


def drive(script, size=(100, 30)) -> AfboxApp:
    app = AfboxApp()

    async def main():
        async with app.run_test(size=size) as pilot:
            await script(pilot)
    asyncio.run(main())
    return app


async def overview_with(pilot, predicate, timeout=30, what="the overview"):
    return await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverviewScreen)
                          and pilot.app.screen.overview and predicate(pilot.app.screen.overview), timeout, what)


def all_healthy(ov) -> bool:
    rows = [r for r in ov.status.to_dict()["services"] if r["state"] != "unavailable"]
    return bool(rows) and all(r["health"] == "healthy" for r in rows)


def test_setup_start_then_overview_shows_every_service_healthy(isolated):
    async def script(pilot):
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SetupScreen) and pilot.app.screen.info,
                       20, "the setup form")
        screen = pilot.app.screen
        screen.query_one("#profiles").highlighted = list(screen.info.profiles).index("ci")
        await pilot.pause()
        screen.query_one("#port_base").value = str(PORT_BASE)
        screen.query_one("#workdir").value = str(isolated / "work")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.starting, 5, "the start")
        await overview_with(pilot, all_healthy, 120, "every service healthy")
        rows = table_rows(pilot.app)
        assert {"dask-scheduler", "dask-worker-1", "dask-worker-2", "jupyter"} <= set(rows)
        assert rows["dask-scheduler"][3] == str(PORT_BASE + 6)
        healthy = [e.service for e in pilot.app.journal if e.kind == "healthy"]
        assert {"dask-scheduler", "dask-worker-1", "jupyter"} <= set(healthy)   # the live event stream
        assert pilot.app.screen.query_one(DaskPanel).data.workers == 2
    drive(script)
    assert lifecycle.status(NAME).to_dict()["state"] == "up"


def append_line(path: Path, line: str) -> None:
    with path.open("a") as f:  # supervisord opens its logs for appending too
        f.write(line + "\n")


def test_log_viewer_shows_the_services_real_log_and_follows_it():
    log = Path(next(r["log"] for r in lifecycle.status(NAME).to_dict()["services"] if r["name"] == "dask-scheduler"))

    async def script(pilot):
        await overview_with(pilot, all_healthy)
        await select_service(pilot, "dask-scheduler")
        await pilot.press("l")
        view = await wait_for(pilot, lambda: isinstance(pilot.app.screen, LogScreen)
                              and pilot.app.screen.query_one(LogView), 10, "the log screen")
        await wait_for(pilot, lambda: view.lines, 10, "log lines")
        assert view.lines == log.read_text().splitlines()[-len(view.lines):]
        assert any("Scheduler at:" in ln for ln in view.lines)
        append_line(log, "marker line from the console test")
        await wait_for(pilot, lambda: view.lines[-1] == "marker line from the console test", 5, "the new line")
        await pilot.press("slash", *"Scheduler at", "enter")
        assert pilot.app.screen.found and view.term == "Scheduler at"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverviewScreen), 5, "the overview")
    drive(script)


def test_restart_of_the_selected_service():
    before = {r["name"]: r for r in lifecycle.status(NAME).to_dict()["services"]}["dask-worker-2"]

    async def script(pilot):
        await overview_with(pilot, all_healthy)
        await select_service(pilot, "dask-worker-2")
        await pilot.press("r")

        def restarted(ov):
            row = next(r for r in ov.status.to_dict()["services"] if r["name"] == "dask-worker-2")
            # a restart asked for is not a crash restart: the count stays
            return row["pid"] != before["pid"] and row["restarts"] == before["restarts"] \
                and row["health"] == "healthy"
        await overview_with(pilot, restarted, 60, "dask-worker-2 restarted and healthy")
        assert table_rows(pilot.app)["dask-worker-2"][4] == str(before["restarts"])
        assert not notes(pilot.app)
    drive(script)


def test_scale_plus_one_adds_a_worker_seen_in_the_dask_panel():
    pids = {r["name"]: r["pid"] for r in lifecycle.status(NAME).to_dict()["services"] if r["name"].startswith("dask-worker")}

    def third_healthy(ov) -> bool:
        return any(r["name"] == "dask-worker-3" and r["health"] == "healthy" for r in ov.status.to_dict()["services"])

    async def script(pilot):
        await overview_with(pilot, lambda ov: all_healthy(ov) and ov.dask and ov.dask.workers == 2)
        await pilot.press("plus")
        await overview_with(pilot, lambda ov: ov.dask and ov.dask.workers == 3, 90, "a third worker in the Dask panel")
        await overview_with(pilot, third_healthy, 30, "dask-worker-3 healthy in the services table")
        assert "3 workers" in str(pilot.app.screen.query_one(DaskPanel).render())
        assert not notes(pilot.app)
    drive(script)
    after = {r["name"]: r["pid"] for r in lifecycle.status(NAME).to_dict()["services"]}
    assert {n: after[n] for n in pids} == pids, "the running workers were restarted"


def test_down_asks_then_stops_everything_and_offers_setup():
    async def script(pilot):
        await overview_with(pilot, lambda ov: ov.status.to_dict()["state"] != "down")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), 5, "the question")
        await pilot.press("n")
        await pilot.pause(0.5)
        assert lifecycle.status(NAME).to_dict()["state"] != "down"
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), 5, "the question")
        t0 = time.monotonic()
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SetupScreen), 60, "the setup screen")
        assert time.monotonic() - t0 < 60
    drive(script)
    assert lifecycle.status(NAME).to_dict() == {"facility": NAME, "state": "down", "services": []}
