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

And, where it knows better than the defaults of ``Hooks``: ``adapt(fac)`` (the facility as this
place allows it, e.g. SLURM's sizes per node), ``host()`` (the host to size for, None: this one),
``place(ctx, specs)`` (the specs as they run here, e.g. one srun step for all workers) and
``status_extra(rec)`` (keys added to `status`, e.g. the SLURM job).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Protocol

from ..events import Event
from ..facility import Facility
from ..host import Host
from ..services.context import Context
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


class Hooks:
    """What `lifecycle` asks every backend; most places need nothing of it."""

    def adapt(self, fac: Facility) -> Facility:
        return fac

    def host(self) -> Host | None:
        return None

    def place(self, ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]:
        return specs

    def status_extra(self, rec: dict | None) -> dict:
        return {}


class Backend(Protocol):
    name: str

    def up(self, specs: list[ServiceSpec], timeout: float) -> Iterator[Event]: ...
    def down(self) -> Iterator[Event]: ...
    def running(self) -> bool: ...
    def status(self) -> list[ServiceStatus]: ...
    def log_path(self, name: str) -> Path: ...
    def restart(self, name: str) -> None: ...
    def update(self, specs: list[ServiceSpec], timeout: float) -> Iterator[Event]: ...
    def adapt(self, fac: Facility) -> Facility: ...
    def host(self) -> Host | None: ...
    def place(self, ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]: ...
    def status_extra(self, rec: dict | None) -> dict: ...
