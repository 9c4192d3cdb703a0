"""One service's log: the last lines, then new ones as they come (follow), with search."""
from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Input, Static
from textual.worker import get_current_worker

from tui.widgets.log_view import LogView
from tui.widgets.title_bar import TitleBar
from tui.screens.base import BaseScreen, deliver

INTERVAL = 0.5


class LogScreen(BaseScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back"), Binding("f", "follow", "Follow"),
        Binding("slash", "search", "Search", key_display="/"), Binding("n", "next(True)", "Next"),
        Binding("N", "next(False)", "Prev"), Binding("g", "top", "Top", show=False),
        Binding("G", "bottom", "End", show=False),
    ]

    def __init__(self, service: str, path: str) -> None:
        super().__init__()
        self.service, self.path = service, path
        self.found: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        yield TitleBar(f"log of {self.service}  {self.path}", id="title")
        yield LogView(id="log")
        yield Input(id="search", placeholder="search (enter: find, esc: close)", compact=True)
        yield Static(id="log-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#search").display = False
        self.query_one(LogView).focus()
        self.show_status()
        self.tail()

    @work(thread=True, group="tail")
    def tail(self) -> None:
        worker = get_current_worker()
        follower = self.app.source.follow(self.path)
        try:
            while not worker.is_cancelled:
                lines = follower.read()
                if lines:
                    deliver(self, self.add_lines, lines)
                time.sleep(INTERVAL)
        finally:
            follower.close()

    def add_lines(self, lines: list[str]) -> None:
        self.query_one(LogView).append(lines)
        self.show_status()

    def show_status(self) -> None:
        log = self.query_one(LogView)
        text = Text(f" {len(log.lines)} lines · ")
        text.append("following" if log.follow else "paused (f or end: follow)", style="bold" if log.follow else "")
        if log.term:
            where = f"{self.found[0]} of {self.found[1]}" if self.found else "no match"
            text.append(f" · /{log.term}: {where}")
        self.query_one("#log-status", Static).update(text)

    def on_key(self) -> None:
        self.call_after_refresh(self.show_status)  # scrolling keys change follow

    def action_back(self) -> None:
        box = self.query_one("#search", Input)
        if box.display:
            box.display = False
            self.query_one(LogView).focus()
        else:
            self.dismiss()

    def action_follow(self) -> None:
        log = self.query_one(LogView)
        log.follow = not log.follow
        if log.follow:
            log.scroll_end(animate=False)
        self.show_status()

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#search")
    def _find(self, event: Input.Submitted) -> None:
        log = self.query_one(LogView)
        log.current = None
        self.found = log.search(event.value) if event.value else None
        if not event.value:
            log.term = ""
            log.refresh()
        event.input.display = False
        log.focus()
        self.show_status()

    def action_next(self, forward: bool) -> None:
        log = self.query_one(LogView)
        if log.term:
            self.found = log.search(log.term, forward)
            self.show_status()

    def action_top(self) -> None:
        self.query_one(LogView).action_scroll_home()
        self.show_status()

    def action_bottom(self) -> None:
        self.query_one(LogView).action_scroll_end()
        self.show_status()
