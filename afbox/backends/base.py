"""The Backend protocol. A backend implements exactly:

- ``up(specs, timeout)``: start every spec not marked unavailable, each once its ``needs`` are
  healthy, independent ones in parallel; yield Events as services start, become healthy or fail.
  On a failure: stop everything it started, then raise ServiceFailed (name + log tail).
- ``down()``: stop everything of this facility, leaving no process behind; yield Events.
- ``running()``: whether this facility's services are placed right now.
- ``status()``: one ServiceStatus per service.
- ``log_path(name)``: the service's log file.
- ``restart(name)``: stop and start one service.
- ``update(specs, timeout)``: make the running facility match a new set of specs (scaling), leaving
  unchanged services running; yield Events as ``up`` does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Protocol

from ..events import Event
from ..spec import ServiceSpec


@dataclass
class ServiceStatus:
    name: str
    state: str                 # running, starting, backoff, stopped, exited, fatal, unavailable
    pid: int | None = None
    restarts: int = 0
    uptime: float | None = None  # seconds
    health: str = "unknown"      # healthy, unhealthy, unknown, n/a
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class Backend(Protocol):
    name: str

    def up(self, specs: list[ServiceSpec], timeout: float) -> Iterator[Event]: ...
    def down(self) -> Iterator[Event]: ...
    def running(self) -> bool: ...
    def status(self) -> list[ServiceStatus]: ...
    def log_path(self, name: str) -> Path: ...
    def restart(self, name: str) -> None: ...
    def update(self, specs: list[ServiceSpec], timeout: float) -> Iterator[Event]: ...
