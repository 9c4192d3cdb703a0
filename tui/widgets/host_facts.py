"""What detection found on this host, for the setup screen."""
from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.widgets import Static

from afbox.run import PROVIDERS

from tui.source import HostFacts
from tui.format import short_bytes


def gpu_summary(gpus: tuple[str, ...]) -> str:
    if not gpus:
        return "no GPU"
    models = Counter(g.split(" ", 1)[1] if " " in g else g for g in gpus)
    return ", ".join(f"{n} × {m}" if n > 1 else m for m, n in models.items())


def facts_text(h: HostFacts) -> Text:
    text = Text()
    text.append(f"{h.hostname} · {h.cpus} cores · {short_bytes(h.memory)} memory · {gpu_summary(h.gpus)}\n")
    for tool, found in h.tools.items():
        text.append(f"{tool} ")
        text.append("✓" if found else "✗", style="" if found else "bold")
        text.append("  ")
    text.append("· SLURM: " + (h.slurm or "no allocation"))
    if not h.tools.get("xrootd", True):
        text.append(f"\nno XCache without xrootd: {PROVIDERS['xrootd']}", style="dim")
    for p in h.gpu_problems[:2]:
        text.append(f"\n! {p}", style="dim")
    return text


class HostFactsView(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("detecting cores, memory, GPUs and tools…", **kwargs)
        self.border_title = "this host"

    def show(self, facts: HostFacts) -> None:
        self.update(facts_text(facts))
