"""The class on this facility as the tutor sees it (afbox class status, refreshed): each student's
server, kernels, Dask processes and memory, and the memory the box has left for new servers."""
from __future__ import annotations

import time
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Label

from afbox.units import human_bytes

from tui.screens.base import BaseScreen, deliver, error_text

EVERY = 3.0
COLUMNS = ("student", "role", "password", "server", "idle", "kernels", "dask", "memory", "oom")


def rows(st) -> list[tuple[str, ...]]:
    """One row per account of a hub.status.ClassStatus, as `afbox class status` prints them."""
    now = time.time()
    out = []
    for s in st.students:
        idle = None if s.last_activity is None else now - s.last_activity
        out.append((s.name, s.role, "set" if s.logged_in else "code", s.server,
                    f"{idle / 60:.0f}m" if idle is not None else "-", str(s.kernels), str(s.dask),
                    human_bytes(s.memory) if s.memory else "-", str(s.oom_kills or "")))
    return out


def headline(st) -> str:
    active = sum(s.server != "stopped" for s in st.students)
    return (f"class {st.facility!r}: {active} of {len(st.students)} servers up · isolation {st.isolation} · "
            f"limits {st.limits} · free {human_bytes(st.free_memory)} (servers start above "
            f"{human_bytes(st.admit_free)})" + (f" · {st.error}" if st.error else ""))


class ClassScreen(BaseScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,k", "app.pop_screen", "Back")]

    def __init__(self, facility: str) -> None:
        super().__init__()
        self.facility = facility
        self.status = None

    def compose(self) -> ComposeResult:
        yield Label(f"class on facility {self.facility!r}: reading…", id="class-head", markup=False)
        yield DataTable(id="students", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.fetch()
        self.set_interval(EVERY, self.fetch)

    @work(thread=True, group="class", exclusive=True)
    def fetch(self) -> None:
        try:
            deliver(self, self.show, self.app.source.class_status(self.facility))
        except Exception as e:  # shown, and asked again on the next tick
            deliver(self, self.show_error, e)

    def show(self, st) -> None:
        self.status = st
        self.query_one("#class-head", Label).update(headline(st))
        table = self.query_one(DataTable)
        table.clear()
        for r in rows(st):
            table.add_row(*r, key=r[0])

    def show_error(self, err: BaseException) -> None:
        self.query_one("#class-head", Label).update(error_text(err))
