"""Where the time of `afbox up` goes: spans recorded while it runs, printed by `afbox up --timings`.

Code marks its steps with `with timeline.span("credentials"):`; nothing is kept unless a command
turned recording on (timeline.record()). Services' spans come from the events of `up`: from
"starting" to "healthy". render() is pure.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Iterator

from . import events as ev


@dataclass(frozen=True)
class Span:
    label: str
    start: float   # unix time
    end: float
    lane: str = "afbox"   # "afbox": this command's own steps; "service": a service starting


@dataclass
class Timeline:
    t0: float
    spans: list[Span] = field(default_factory=list)

    def add(self, label: str, start: float, end: float, lane: str = "afbox") -> None:
        self.spans.append(Span(label, start, end, lane))

    def events(self, stream: Iterator[ev.Event]) -> Iterator[ev.Event]:
        """Pass the events of `up` through, taking each service's start and healthy times."""
        started: dict[str, float] = {}
        for e in stream:
            if e.kind == ev.STARTING and e.service:
                started[e.service] = e.time
            elif e.kind in (ev.HEALTHY, ev.FAILED) and e.service in started:
                self.add(e.service, started.pop(e.service), e.time, "service")
            yield e


_current: Timeline | None = None


def record(t0: float) -> Timeline:
    """Start recording (t0: when the command started, e.g. its process' start time)."""
    global _current
    _current = Timeline(t0)
    return _current


@contextlib.contextmanager
def span(label: str) -> Iterator[None]:
    t = _current
    start = time.time()
    try:
        yield
    finally:
        if t is not None:
            t.add(label, start, time.time())


def render(t: Timeline, end: float, width: int = 50) -> list[str]:
    """One line per span: its label, start and length in seconds, and a bar on a common scale."""
    total = max(end - t.t0, 1e-6)
    rows = sorted(t.spans, key=lambda s: (s.start, s.end))
    label_w = max([len(s.label) for s in rows] + [5])
    out = [f"{'step':<{label_w}}  {'at':>6}  {'took':>6}  0{'':<{width - 6}}{total:5.1f}s"]
    for s in rows:
        a = int((s.start - t.t0) / total * width)
        b = max(a + 1, int(round((s.end - t.t0) / total * width)))
        mark = "=" if s.lane == "afbox" else "#"
        bar = " " * a + mark * (b - a)
        out.append(f"{s.label:<{label_w}}  {s.start - t.t0:6.2f}  {s.end - s.start:6.2f}  {bar}")
    busy = _covered([(s.start, s.end) for s in rows])
    out.append(f"{'(total)':<{label_w}}  {0:6.2f}  {total:6.2f}  = afbox's own steps, # a service from start to "
               f"healthy; {total - busy:.2f}s in none of them")
    return out


def _covered(intervals: list[tuple[float, float]]) -> float:
    total, last = 0.0, None
    for a, b in sorted(intervals):
        if last is None or a > last[1]:
            if last:
                total += last[1] - last[0]
            last = [a, b]
        else:
            last[1] = max(last[1], b)
    return total + (last[1] - last[0] if last else 0.0)
