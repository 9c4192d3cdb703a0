"""Dask panel: workers, threads, memory, tasks processing and a sparkline of tasks finished per second."""
from __future__ import annotations

from rich.text import Text

from tui.source import DaskLoad
from tui.format import short_bytes, sparkline
from tui.widgets.panel import Panel


class DaskPanel(Panel):
    def __init__(self, **kwargs) -> None:
        super().__init__("dask", **kwargs)

    def lines(self, width: int) -> list[Text]:
        d: DaskLoad = self.data
        rate = d.rate[-1] if d.rate else 0.0
        mem = d.memory / d.memory_limit if d.memory_limit else None
        return [
            Text(f"{d.workers} worker{'s' * (d.workers != 1)} · {d.threads} thread{'s' * (d.threads != 1)}"),
            self.meter("mem", mem, f"{short_bytes(d.memory)}/{short_bytes(d.memory_limit)}", width),
            Text(f"{d.processing} task{'s' * (d.processing != 1)} processing"),
            Text().append(sparkline(d.rate, max(1, width - 8)), self.get_component_rich_style("panel--bar"))
            .append(f"{rate:>6.1f}/s"),
        ]
