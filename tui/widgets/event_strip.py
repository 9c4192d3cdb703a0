"""The last few events (from up/down/scale, actions, and state changes seen between refreshes)."""
from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widget import Widget

from afbox import events as ev
from afbox.events import Event
from afbox.cli.render import event_line

from tui.format import clock

TROUBLE = (ev.FAILED,)


def event_text(e: Event) -> Text:
    text = Text(f"{clock(e.time)} ", style="dim", no_wrap=True, overflow="ellipsis")
    text.append(event_line(e), style="bold" if e.kind in TROUBLE else "")
    return text


class EventStrip(Widget):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "events"
        self.events: list[Event] = []

    def show(self, events: Iterable[Event]) -> None:
        self.events = list(events)
        self.refresh()

    def render(self) -> Text:
        shown = self.events[-max(1, self.content_region.height):]
        if not shown:
            return Text("nothing yet", style="dim")
        text = Text("\n").join(event_text(e) for e in shown)
        text.no_wrap, text.overflow = True, "ellipsis"
        return text
