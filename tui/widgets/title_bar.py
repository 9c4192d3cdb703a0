"""One line at the top: which facility, its profile and backend, and how it is doing."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from afbox.lifecycle import Status


def facility_title(status: Status) -> Text:
    text = Text(" afbox ", style="bold reverse")
    name = status.facility
    if status.down:
        return text.append(f"  facility {name!r} is down — u sets one up")
    rows = [r for r in status.services if r.state != "unavailable"]
    healthy = sum(r.health == "healthy" for r in rows)
    text.append(f"  {name} · {status.profile or '?'} profile · {status.backend or '?'} · ")
    text.append(status.state, style="bold" if status.state != "up" else "")
    text.append(f" · {healthy}/{len(rows)} healthy")
    left = (status.slurm or {}).get("time_left")
    if left is not None:  # a SLURM job's walltime: the facility ends with it
        text.append(f" · {int(left) // 3600}h{int(left) % 3600 // 60:02d}m left", style="bold" if left < 900 else "")
    return text


class TitleBar(Static):
    def __init__(self, text: str = "", **kwargs) -> None:
        self._shown = Text(" afbox ", style="bold reverse").append(f"  {text}" if text else "")
        super().__init__(self._shown, **kwargs)

    def _show(self, text: Text) -> None:
        if text != self._shown:  # the same title every second costs a redraw for nothing
            self._shown = text
            self.update(text, layout=False)  # one line, always: its height is set by the styles

    def show_status(self, status: Status) -> None:
        self._show(facility_title(status))

    def show_text(self, text: str) -> None:
        self._show(Text(" afbox ", style="bold reverse").append(f"  {text}"))
