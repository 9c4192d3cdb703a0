"""XCache panel: cache fill against its watermarks, files, and hits/misses (by accesses and by bytes)."""
from __future__ import annotations

from rich.text import Text

from tui.format import short_bytes
from tui.widgets.panel import Panel


class XCachePanel(Panel):
    def __init__(self, **kwargs) -> None:
        super().__init__("xcache", **kwargs)

    def lines(self, width: int) -> list[Text]:
        c: dict = self.data
        high = c["high_watermark"]
        marks = (c["low_watermark"] / high, c["nominal_watermark"] / high) if high else ()
        hits, misses = c.get("hits"), c.get("misses")
        if hits is None or misses is None:
            ratio = "hit/miss: not reported"
        else:
            ratio = f"hits {hits} · misses {misses}" + (f" ({hits / (hits + misses):.0%})" if hits + misses else "")
            if c.get("hit_rate_bytes") is not None:
                ratio += f" · bytes {c['hit_rate_bytes']:.0%}"
        return [
            self.meter("fill", c["fill"], f"{c['fill']:.0%}", width, marks),
            Text(f"{short_bytes(c['bytes'])} of {short_bytes(high)} · {c['files']} file{'s' * (c['files'] != 1)}"),
            Text(f"kept within {short_bytes(c['low_watermark'])}–{short_bytes(high)}"),
            Text(ratio),
        ]
