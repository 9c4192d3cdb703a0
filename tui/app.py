"""The facility console: `afbox` with no arguments, or `afbox tui`."""
from __future__ import annotations

from collections import deque
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from afbox.events import Event

from tui.live import LiveSource
from tui.source import Source
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.logs import LogScreen
from tui.screens.overview import OverviewScreen
from tui.screens.setup import SetupScreen
from tui.widgets.event_strip import EventStrip

JOURNAL = 200


class AfboxApp(App):
    CSS_PATH = "afbox.tcss"
    TITLE = "afbox"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, source: Source | None = None, facility: str | None = None) -> None:
        super().__init__()
        self.source = source or LiveSource()
        self.facility = facility
        self.journal: deque[Event] = deque(maxlen=JOURNAL)
        self.left_running: str | None = None   # the facility the overview last saw up

    def on_mount(self) -> None:
        name = self.facility or self.source.running_facility()
        self.push_screen(OverviewScreen(name) if name else SetupScreen())

    def note(self, event: Event) -> None:
        """Add to the events every screen's strip shows."""
        self.journal.append(event)
        for strip in self.screen.query(EventStrip):
            strip.show(self.journal)

    def show_overview(self, name: str) -> None:
        self.switch_screen(OverviewScreen(name))

    def show_setup(self) -> None:
        self.left_running = None
        self.switch_screen(SetupScreen())

    def show_logs(self, service: str, path: str) -> None:
        self.push_screen(LogScreen(service, path))

    async def action_quit(self) -> None:
        if getattr(self.screen, "starting", False):
            def confirmed(yes: bool | None) -> None:
                if yes:
                    self.exit()
            self.push_screen(ConfirmScreen("A facility is starting. Quit and stop what has started so far?",
                                           "Leaving takes a moment while the started services stop."), confirmed)
            return
        self.exit()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def run(facility: str | None = None) -> None:
    app = AfboxApp(facility=facility)
    app.run()
    if app.left_running:
        print(f"afbox: facility {app.left_running!r} keeps running (afbox status; afbox down stops it)")
