"""Overview of a running facility: services, host, Dask, XCache and events, refreshed about once a second."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer

from afbox import events as ev
from afbox.lifecycle import Status
from afbox.services.dask import WORKER

from tui.source import Overview
from tui.widgets.dask_panel import DaskPanel
from tui.widgets.event_strip import EventStrip
from tui.widgets.host_panel import HostPanel
from tui.widgets.services_table import ServicesTable
from tui.widgets.title_bar import TitleBar
from tui.widgets.xcache_panel import XCachePanel
from tui.screens.base import BaseScreen, deliver
from tui.screens.confirm import ConfirmScreen
from tui.screens.jupyter import JupyterScreen

MIN_INTERVAL = 1.0
DUTY = 3.0  # wait at least 3x as long as a refresh took, so a slow host is not kept busy by us


def workers_of(status: Status) -> list[str]:
    return [r.name for r in status.services if r.name.startswith(f"{WORKER}-")]


def transitions(before: Status, after: Status) -> list[ev.Event]:
    """State or health changes between two refreshes, as events for the strip."""
    old = {r.name: (r.state, r.health) for r in before.services}
    out = []
    for r in after.services:
        was = old.get(r.name)
        if was and was != (r.state, r.health):
            out.append(ev.Event(ev.INFO, r.name, f"{was[0]}/{was[1]} → {r.state}/{r.health}"))
    if not before.down and after.down:
        out.append(ev.Event(ev.INFO, "", f"facility {after.facility!r} is down"))
    return out


class OverviewScreen(BaseScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "up", "Up"), Binding("d", "down", "Down"), Binding("r", "restart", "Restart"),
        Binding("plus,equals_sign", "scale(1)", "Workers", key_display="+/-"),
        Binding("minus", "scale(-1)", "Fewer workers", show=False),
        Binding("l", "logs", "Logs"), Binding("j", "jupyter", "Jupyter"), Binding("k", "klass", "Class"),
        Binding("s", "sites", "Sites"),
        Binding("c", "copy_url", "Copy URL", show=False), Binding("question_mark", "app.help", "Help", key_display="?"),
        Binding("n", "next_facility", "Next facility"), Binding("q", "app.quit", "Quit", show=False),
    ]

    def __init__(self, facility: str) -> None:
        super().__init__()
        self.facility = facility
        self.others: list[str] = []  # every facility with state here, this one included
        self.overview: Overview | None = None
        self.busy: str | None = None   # the action running now; one at a time
        self._polling = False
        self._panels_height = 0

    def compose(self) -> ComposeResult:
        yield TitleBar(f"facility {self.facility!r}", id="title")
        yield ServicesTable(id="services")
        with Horizontal(id="panels"):
            yield HostPanel(id="host")
            yield DaskPanel(id="dask")
            yield XCachePanel(id="xcache")
        yield EventStrip(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(EventStrip).show(self.app.journal)
        self.query_one(ServicesTable).focus()
        self.poll()

    @property
    def is_down(self) -> bool:
        return bool(self.overview) and self.overview.status.down

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The footer offers what makes sense now: `up` only when the facility is down."""
        if action == "up":
            return self.is_down
        if action == "next_facility":
            return len(self.others) > 1
        if action == "klass":  # offered only on a facility running a class
            return bool(self.overview) and not self.is_down and self.overview.status.row("hub") is not None
        if action in ("down", "restart", "scale", "logs", "jupyter", "copy_url"):
            return not self.is_down
        return True

    # -- refreshing -------------------------------------------------------------------------
    def poll(self) -> None:
        if not self._polling:
            self._polling = True
            self.fetch()

    @work(thread=True, group="poll")
    def fetch(self) -> None:
        t0 = time.monotonic()
        others: list[str] = []
        try:
            data = self.app.source.overview(self.facility)
            others = self.app.source.facilities()
        except Exception as e:  # noqa: BLE001  (a failed refresh is retried, not fatal)
            data = e
        deliver(self, self.show, data, time.monotonic() - t0, others)

    def show(self, data: Overview | Exception, took: float, others: list[str]) -> None:
        self._polling = False
        if self.is_attached:
            self.set_timer(max(MIN_INTERVAL, DUTY * took), self.poll)
        if isinstance(data, Exception):
            self.query_one(TitleBar).show_text(f"facility {self.facility!r}: cannot read its status ({data})")
            return
        if self.overview is not None:
            for e in transitions(self.overview.status, data.status):
                self.app.note(e)
        if (len(others) > 1) != (len(self.others) > 1):
            self.call_after_refresh(self.refresh_bindings)
        self.others = others
        self.render_overview(data)

    def render_overview(self, data: Overview) -> None:
        was_down = self.is_down
        self.overview = data
        if self.is_down != was_down:
            self.refresh_bindings()
        self.app.left_running = None if self.is_down else self.facility
        st = data.status
        self.query_one(TitleBar).show_status(st)
        self.query_one(ServicesTable).show(st.services, data.procs)
        self.query_one(HostPanel).show(data.host or "reading…")
        self.query_one(DaskPanel).show(data.dask or ("not running" if st.down or not (st.urls or {}).get(
            "dashboard") else "scheduler not answering"))
        self.query_one(XCachePanel).show(data.cache or self._xcache_note(st))
        panels = self.query_one("#panels")
        for p in panels.children:  # the services table and the events keep some room on a small terminal
            p.set_max_lines(max(4, self.size.height * 2 // 5 - 2))
        height = 2 + max(p.height_needed() for p in panels.children)
        if height != self._panels_height:  # a new height is a new layout: only when it changed
            self._panels_height = panels.styles.height = height

    @staticmethod
    def _xcache_note(st: Status) -> str:
        row = st.row("xcache")
        if row is None:
            return "not part of this facility"
        return f"unavailable: {row.detail}" if row.state == "unavailable" else "reading…"

    # -- actions ----------------------------------------------------------------------------
    @property
    def selected(self) -> str | None:
        return self.query_one(ServicesTable).selected

    def act(self, what: str, fn: Callable[[], Iterator[ev.Event] | None], then: Callable[[], None] | None = None
            ) -> None:
        if self.busy:
            self.notify(f"wait: {self.busy} is still running", timeout=3)
            return
        self.busy = what
        self.app.note(ev.Event(ev.INFO, "", f"{what}…"))
        self.perform(what, fn, then)

    @work(thread=True, group="action")
    def perform(self, what: str, fn, then) -> None:
        try:
            for e in fn() or ():
                deliver(self, self.app.note, e)
        except Exception as e:  # noqa: BLE001
            deliver(self, self.act_failed, e)
            return
        deliver(self, self.acted, what, then)

    def acted(self, what: str, then) -> None:
        self.busy = None
        self.app.source.stale()
        self.app.note(ev.Event(ev.INFO, "", f"{what}: done"))
        self.poll()
        if then:
            then()

    def act_failed(self, err: Exception) -> None:
        self.busy = None
        self.app.source.stale()
        self.fail(err)

    def action_next_facility(self) -> None:
        if len(self.others) > 1:
            i = self.others.index(self.facility) if self.facility in self.others else -1
            self.app.show_overview(self.others[(i + 1) % len(self.others)])

    def action_up(self) -> None:
        self.app.show_setup()

    def action_down(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.act(f"down {self.facility}", lambda: self.app.source.down(self.facility), self.app.show_setup)
        self.app.push_screen(ConfirmScreen(
            f"Stop every service of facility {self.facility!r}?",
            "Notebooks, outputs and the data cache are kept."), confirmed)

    def action_restart(self) -> None:
        svc = self.selected
        if svc:
            self.act(f"restart {svc}", lambda: self.app.source.restart(self.facility, svc))

    def action_scale(self, step: int) -> None:
        if not self.overview:
            return
        n = len(workers_of(self.overview.status))
        target = n + step
        if target < 1:
            self.notify("the last worker stays; d stops the whole facility", timeout=4)
            return
        self.act(f"scale to {target} workers", lambda: self.app.source.scale(self.facility, target))

    def on_data_table_row_selected(self) -> None:
        self.action_logs()

    def action_logs(self) -> None:
        svc = self.selected
        row = self.overview.status.row(svc) if self.overview and svc else None
        if row and row.log:
            self.app.show_logs(svc, row.log)

    def jupyter_url(self) -> str | None:
        url = self.app.source.jupyter_url(self.facility)
        if not url:
            self.notify("this facility runs no JupyterLab", timeout=4)
        return url

    def action_klass(self) -> None:
        from tui.screens.klass import ClassScreen
        self.app.push_screen(ClassScreen(self.facility))

    def action_jupyter(self) -> None:
        if url := self.jupyter_url():
            self.app.push_screen(JupyterScreen(url))

    def action_sites(self) -> None:
        from tui.screens.sites import SitesScreen
        self.app.push_screen(SitesScreen(self.facility))

    def action_copy_url(self) -> None:
        if url := self.jupyter_url():
            self.app.copy_to_clipboard(url)
            self.notify("Jupyter URL (with its token) copied to the clipboard", timeout=4)
