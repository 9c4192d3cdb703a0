"""Live progress of `up`: one line per service, updated in place from the event stream, and the
error (with a failed service's log tail) below it."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from afbox import events as ev
from afbox.events import Event
from afbox.cli.render import event_line

STYLE = {ev.HEALTHY: "", ev.STARTING: "italic", ev.STOPPING: "italic", ev.FAILED: "bold",
         ev.UNAVAILABLE: "dim", ev.STOPPED: "", ev.INFO: "dim"}


class StartProgress(VerticalScroll, can_focus=False):
    def __init__(self, hint: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.hint = hint
        self.lines: dict[str, Text] = {}
        self.error = ""
        self.border_title = "progress"

    def compose(self) -> ComposeResult:
        yield Static(self.hint, classes="steps")
        yield Static(classes="error", markup=False)

    @property
    def text(self) -> str:
        return "\n".join([*(t.plain for t in self.lines.values()), self.error]).strip()

    def reset(self, heading: str) -> None:
        self.lines, self.error = {"": Text(heading)}, ""
        self._draw()

    def add(self, e: Event) -> None:
        key = e.service or f"info-{len(self.lines)}"
        self.lines[key] = Text(event_line(e), style=STYLE.get(e.kind, ""))
        self._draw()

    def fail(self, rendered: str) -> None:
        """The error as the CLI prints it (a failed service's log tail included)."""
        self.error = rendered
        self._draw()

    def _draw(self) -> None:
        if self.lines:
            self.query_one(".steps", Static).update(Text("\n").join(self.lines.values()))
        self.query_one(".error", Static).update(self.error)
        self.scroll_end(animate=False)
