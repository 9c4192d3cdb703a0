"""The sites this facility trusts: reachable, latency, workers, GPUs, cache fill and what each was
granted here, asked afresh when the view opens and every few seconds while it is open."""
from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from afbox.cli.render import SITE_COLUMNS, site_rows

from tui.screens.base import Deliver, deliver

EVERY = 5.0


class SitesScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,s", "dismiss", "Close")]

    def __init__(self, facility: str) -> None:
        super().__init__()
        self.facility = facility
        self.sites: dict | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"sites facility {self.facility!r} trusts", id="question")
            yield DataTable(id="sites", cursor_type="row", zebra_stripes=False)
            yield Label("asking each site…", id="sites-note", classes="detail")
            yield Label("afbox site add / remove / refresh change them  ·  esc closes", classes="detail")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*SITE_COLUMNS)
        self.ask()

    def on_deliver(self, message: Deliver) -> None:
        message.fn(*message.args)

    @work(thread=True, group="sites", exclusive=True)
    def ask(self) -> None:
        try:
            data = self.app.source.sites(self.facility)
        except Exception as e:  # noqa: BLE001 - shown, and asked again
            data = e
        deliver(self, self.show, data)

    def show(self, data) -> None:
        if not self.is_attached:
            return
        self.set_timer(EVERY, self.ask)
        note = self.query_one("#sites-note", Label)
        if isinstance(data, Exception):
            note.update(f"cannot ask: {data}")
            return
        self.sites = data
        table = self.query_one(DataTable)
        table.clear()
        for row in site_rows(data):
            table.add_row(*row)
        down = [f"{n}: {s.get('detail', 'unreachable')}" for n, s in sorted(data.items()) if not s.get("reachable")]
        note.update("\n".join(down) if down else ("no sites trusted (afbox site add URL --invite CODE)" if not data
                                                  else "every site answers"))
