"""Events: the one stream of progress that the CLI prints and the TUI renders."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

# kinds, in the order a service normally passes through them
STARTING, HEALTHY, FAILED, UNAVAILABLE, STOPPING, STOPPED, INFO = (
    "starting", "healthy", "failed", "unavailable", "stopping", "stopped", "info")


@dataclass(frozen=True)
class Event:
    kind: str
    service: str = ""
    message: str = ""
    log_tail: tuple[str, ...] = ()
    time: float = field(default_factory=time.time)
