"""Pure text helpers for the console: compact sizes, durations, bars and sparklines."""
from __future__ import annotations

import time

from afbox.units import human_bytes, human_duration

BLOCKS = " ▏▎▍▌▋▊▉█"
SPARKS = "▁▂▃▄▅▆▇█"

__all__ = ["bar", "clock", "duration", "percent", "short_bytes", "sparkline"]

duration = human_duration


def short_bytes(n: float | None) -> str:
    """1536 -> '1.5K'; fits panels where '1.5 KiB' does not."""
    return human_bytes(n, compact=True)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def bar(fraction: float | None, width: int, marks: tuple[float, ...] = ()) -> str:
    """A horizontal bar in eighths of a cell; marks (fractions) are drawn as '|' on the empty part."""
    if width <= 0:
        return ""
    if fraction is None:
        return "·" * width
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    cells = ["█"] * full + ([BLOCKS[part]] if part and full < width else [])
    cells += ["░"] * (width - len(cells))
    for m in marks:
        i = min(width - 1, int(m * width))
        if cells[i] == "░":
            cells[i] = "|"
    return "".join(cells)


def sparkline(values: list[float] | tuple[float, ...], width: int) -> str:
    """The last `width` values scaled to the largest; zeros stay at the baseline."""
    tail = list(values)[-width:] if width > 0 else []
    top = max(tail, default=0.0)
    if top <= 0:
        return (" " * (width - len(tail))) + SPARKS[0] * len(tail)
    chars = [SPARKS[min(7, int(v / top * 7.999))] if v > 0 else SPARKS[0] for v in tail]
    return " " * (width - len(tail)) + "".join(chars)


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))
