"""Host panel: CPU and memory of the machine, utilisation and memory of each GPU."""
from __future__ import annotations

from rich.text import Text

from tui.source import GpuLoad, HostLoad
from tui.format import bar, percent, short_bytes
from tui.widgets.panel import LABEL, VALUE, Panel

ROOMY = 2  # up to this many GPUs get a line for utilisation and one for memory; more share one line


def _frac(used: float | None, total: float | None) -> float | None:
    return used / total if used is not None and total else None


class HostPanel(Panel):
    def __init__(self, **kwargs) -> None:
        super().__init__("host", **kwargs)

    def lines(self, width: int) -> list[Text]:
        h: HostLoad = self.data
        cpu = None if h.cpu_percent is None else h.cpu_percent / 100
        out = [self.meter("cpu", cpu, f"{percent(h.cpu_percent)} {h.cpus}c", width),
               self.meter("mem", _frac(h.memory_used, h.memory_total),
                          f"{short_bytes(h.memory_used)}/{short_bytes(h.memory_total)}", width)]
        if len(h.gpus) > ROOMY:
            out.append(Text(f"{'':<{LABEL}}util · memory", style=self.get_component_rich_style("panel--note")))
        for g in h.gpus:
            out += self.gpu_lines(g, width, len(h.gpus) > ROOMY)
        if not h.gpus and h.gpu_note:
            out.append(Text(h.gpu_note, style=self.get_component_rich_style("panel--note")))
        return out

    def gpu_lines(self, g: GpuLoad, width: int, one_line: bool) -> list[Text]:
        util = None if g.utilization is None else g.utilization / 100
        mem = _frac(g.memory_used, g.memory_total)
        if not one_line:
            return [self.meter(g.label, util, percent(g.utilization), width),
                    self.meter(" mem", mem, f"{short_bytes(g.memory_used)}/{short_bytes(g.memory_total)}", width)]
        half = max(2, (width - LABEL - VALUE - 1) // 2)
        text = Text(f"{g.label:<{LABEL}.{LABEL - 1}}")
        text.append(bar(util, half), self.style_for(util)).append(" ").append(bar(mem, half), self.style_for(mem))
        return [text.append(f"{percent(g.utilization):>{VALUE}}")]
