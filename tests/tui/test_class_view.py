"""The console's Class view: offered on a facility running a class only, it shows each student's
server, kernels, Dask processes and memory from the class status (fixed data, no facility)."""
from __future__ import annotations

import asyncio
import dataclasses

from fakes import FakeSource, T0, GiB, MiB, overview, service
from tuitools import wait_for
from textual.widgets import DataTable, Label

from afbox.hub.status import ClassStatus, Student
from afbox.lifecycle import Status
from tui.app import AfboxApp
from tui.screens.klass import ClassScreen
from tui.screens.overview import OverviewScreen

CLASS = ClassStatus(facility="ci", hub="https://10.0.0.5:28010", isolation="users", limits="cgroup-v1",
                    free_memory=9 * GiB, admit_free=400 * MiB, students=[
                        Student("student01", "student", True, "ready", T0, kernels=1, dask=3, memory=612 * MiB),
                        Student("student02", "student", False),
                        Student("tutor", "tutor", True, "starting")])


class ClassSource(FakeSource):
    def __init__(self, with_hub: bool):
        view = overview()
        if with_hub:
            st = view.status.model_dump()
            st["services"].append(service("hub", {"https": 28010}, {"hub": "https://10.0.0.5:28010/hub/"}, 120))
            view = dataclasses.replace(view, status=Status.model_validate(st))
        super().__init__(view=view)
        self.asked = 0

    def class_status(self, name):
        self.asked += 1
        return CLASS


def run(src, script) -> None:
    async def main():
        async with AfboxApp(src).run_test(size=(110, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverviewScreen) and pilot.app.screen.overview,
                           5, "the overview")
            await script(pilot)
    asyncio.run(main())


def test_k_shows_the_students_of_a_running_class():
    src = ClassSource(with_hub=True)

    async def script(pilot):
        assert pilot.app.screen.check_action("klass", ())
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ClassScreen) and pilot.app.screen.status,
                       5, "the class view")
        table = pilot.app.screen.query_one(DataTable)
        cells = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)}
        assert cells["student01"][2:4] == ["set", "ready"] and cells["student01"][5:8] == ["1", "3", "612.0 MiB"]
        assert cells["student02"][2:4] == ["code", "stopped"] and cells["student02"][7] == "-"
        head = str(pilot.app.screen.query_one("#class-head", Label).render())
        assert "2 of 3 servers up" in head and "isolation users" in head
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverviewScreen), 5, "the overview again")
    run(src, script)
    assert src.asked >= 1


def test_no_class_view_without_a_class():
    src = ClassSource(with_hub=False)

    async def script(pilot):
        assert not pilot.app.screen.check_action("klass", ())
        await pilot.press("k")
        await pilot.pause(0.3)
        assert isinstance(pilot.app.screen, OverviewScreen)
    run(src, script)
    assert src.asked == 0
