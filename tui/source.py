"""What the console shows, typed, and the Source it gets it from: afbox's lifecycle API for the
facility (tui/live.py), or fixed figures in tests (tests/tui/fakes.py).

Every Source method may block (processes, files, HTTP), so screens call them from thread workers only.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from afbox.events import Event
from afbox.facility import Facility
from afbox.lifecycle import Status


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    cpus: int
    memory: int
    gpus: tuple[str, ...] = ()          # one line per usable device
    gpu_problems: tuple[str, ...] = ()
    tools: dict[str, bool] = field(default_factory=dict)
    slurm: str | None = None            # "job 123 on node[01-04]"


@dataclass(frozen=True)
class FormDefaults:
    origin: str
    workdir: str
    workers: int
    port_base: int


@dataclass(frozen=True)
class SetupInfo:
    host: HostFacts
    profiles: dict[str, str]
    defaults: dict[str, FormDefaults]
    profile: str = "laptop"


@dataclass(frozen=True)
class GpuLoad:
    label: str
    model: str
    utilization: float | None
    memory_used: int | None
    memory_total: int | None


@dataclass(frozen=True)
class HostLoad:
    cpus: int
    cpu_percent: float | None
    memory_used: int
    memory_total: int
    gpus: tuple[GpuLoad, ...] = ()
    gpu_note: str = ""                  # why there is no GPU line


@dataclass(frozen=True)
class DaskLoad:
    workers: int
    threads: int
    memory: int
    memory_limit: int
    processing: int
    rate: tuple[float, ...] = ()        # tasks finished per second, oldest first


@dataclass(frozen=True)
class Overview:
    status: Status                      # lifecycle.status(): the documented `status --json` contract
    procs: dict[str, tuple[float | None, int | None]] = field(default_factory=dict)  # CPU %, RSS
    host: HostLoad | None = None
    dask: DaskLoad | None = None
    cache: dict | None = None           # afbox.cache.stats()


class Log(Protocol):
    def read(self) -> list[str]: ...
    def close(self) -> None: ...


class Source(Protocol):
    """What the screens ask; LiveSource answers for the real facility, tests answer with fakes."""

    def facilities(self) -> list[str]: ...
    def running_facility(self) -> str | None: ...
    def setup_info(self) -> SetupInfo: ...
    def load(self, profile: str, overrides: dict) -> Facility: ...
    def up(self, fac: Facility) -> Iterator[Event]: ...
    def down(self, name: str) -> Iterator[Event]: ...
    def restart(self, name: str, service: str) -> None: ...
    def scale(self, name: str, workers: int) -> Iterator[Event]: ...
    def jupyter_url(self, name: str) -> str | None: ...
    def follow(self, path: str) -> Log: ...
    def stale(self) -> None: ...
    def overview(self, name: str) -> Overview: ...
    def class_status(self, name: str): ...  # afbox.hub.status.ClassStatus of a facility with a class
    def sites(self, name: str) -> dict: ...          # lifecycle.sites.probe: the trusted sites as seen now
