"""Which facility a command means when none is named."""
from __future__ import annotations

from .state import known_facilities


def resolve_name(name: str | None) -> str:
    if name:
        return name
    running = known_facilities()
    return running[0] if len(running) == 1 else "default"
