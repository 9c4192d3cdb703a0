"""Which facility a command means when none is named."""
from __future__ import annotations

from .errors import AfboxError
from .state import known_facilities


def resolve_name(name: str | None) -> str:
    """The named facility; else the one running; else 'default'. Several running: ask which."""
    if name:
        return name
    running = known_facilities()
    if len(running) > 1:
        raise AfboxError(f"{len(running)} facilities are running: {', '.join(running)}",
                         hint="say which one with --name NAME")
    return running[0] if running else "default"
