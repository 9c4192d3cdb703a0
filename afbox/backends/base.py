"""The Backend protocol: how a place runs a facility's ServiceSpecs. A backend never asks which
service a spec is; everything it needs is in the spec (afbox.spec).

`lifecycle.up` asks, in this order:

- ``site(facility) -> Site``: what only this place knows, found once: the facility as the place
  allows it (the address other nodes reach, GPUs off where a scheduler hands them out), the host
  to size for, and facts to keep (``facts``, JSON: a SLURM allocation). Nothing is kept on
  ``self``: the facts travel in the Context (``ctx.site``) and the record.
- ``view(ctx) -> Context``: the Context services render for, as they see the world there (k3s:
  paths and addresses inside pods). Default: ``ctx``.
- ``place(ctx, specs) -> specs``: pure; the specs as they run here (SLURM: one srun step for all
  workers; k3s: addresses of other services by their DNS names, URLs through the ingress).
- ``preflight(ctx, specs)``: refuse to start what cannot start (default: ports taken on this host,
  dirs it cannot write, a filesystem too small for a service: afbox.preconditions).
- ``up(ctx, specs)``: write each spec's files and dirs, start every spec not marked unavailable,
  each once its ``needs`` are healthy (or started), independent ones in parallel; yield Events as
  services start, become healthy or fail. On a failure: stop everything it started, raise
  ServiceFailed (name + log tail).

Then, on a running facility:

- ``update(ctx, specs)``: make it match a new set of specs (scaling, named clusters), leaving
  unchanged services running; yield Events as ``up`` does.
- ``down()``: stop everything of this facility, leaving no process behind; yield Events.
- ``running()``, ``status() -> [ServiceStatus]``, ``log_path(name)``, ``restart(name)``.
- ``orphans() -> [ServiceStatus]``: services of the facility still running while whatever
  supervised them is gone (state "unsupervised"); ``reap()`` stops them, yielding Events (`up
  --force`; `down` stops them too). Default: none.
- ``status_extra(rec) -> dict``: keys added to `status` (SLURM: the job). Default: none.
- ``check_environment(ctx, name, python_argv)``: refuse a named cluster's environment that cannot
  run where its workers would (SLURM: on every node), yielding Events as it checks. Default: none.
- ``named_clusters``: whether this place runs named clusters (afbox cluster up).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from .. import host as hostmod
from .. import preconditions
from ..errors import AfboxError, MissingBinary
from ..events import Event
from ..facility import Facility
from ..host import Host
from ..ports import SPAN
from ..run import PROVIDERS, which
from ..services.context import Context
from ..spec import ServiceSpec


@dataclass
class ServiceStatus:
    name: str
    state: str                 # running, starting, backoff, stopped, exited, fatal, unavailable, unsupervised
    pid: int | None = None
    restarts: int = 0
    uptime: float | None = None  # seconds
    health: str = "unknown"      # healthy, unhealthy, unknown, n/a
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Site:
    """Where the facility runs, as the backend found it."""
    facility: Facility
    host: Host
    facts: dict[str, Any] = field(default_factory=dict)


class Hooks:
    """The defaults: a facility on this host, as the user described it."""
    named_clusters = True

    def site(self, fac: Facility) -> Site:
        return Site(fac, hostmod.detect())

    def view(self, ctx: Context) -> Context:
        return ctx

    def place(self, ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]:
        return specs

    def preflight(self, ctx: Context, specs: list[ServiceSpec]) -> None:
        programs_found(specs)
        ports_free(ctx, specs)
        filesystems_fit(specs)

    def status_extra(self, rec) -> dict:
        return {}

    def orphans(self) -> list[ServiceStatus]:
        return []

    def reap(self) -> Iterator[Event]:
        return iter(())

    def check_environment(self, ctx: Context, name: str, python_argv: tuple[str, ...]) -> Iterator[Event]:
        return iter(())


def programs_found(specs: list[ServiceSpec]) -> None:
    """Every program the specs start is on this host (a container runtime included), before any starts;
    else which one, for which service, and what provides it."""
    for s in specs:
        exe = s.argv[0] if s.argv and not s.unavailable else None
        if exe is None:
            continue
        found = (os.path.isfile(exe) and os.access(exe, os.X_OK)) if os.sep in exe else which(exe) is not None
        if not found:
            what = "does not exist or is not executable" if os.sep in exe else "is not installed (not on PATH)"
            raise MissingBinary(f"`{exe}` {what}; service {s.name} runs it",
                                hint=f"it is provided by: {PROVIDERS.get(os.path.basename(exe), 'its package')}")


def ports_free(ctx: Context, specs: list[ServiceSpec]) -> None:
    """Every port the specs listen on is free on this host; else which port, by what, and the flag."""
    taken = []
    for s in specs:
        for label, port in s.ports if not s.unavailable else ():
            if not hostmod.port_free(port, ctx.bind):
                owner = hostmod.port_owner(port) or "another process"
                taken.append(f"port {port} ({s.name} {label}) is in use by {owner}")
    if taken:
        base = ctx.base
        raise AfboxError(taken[0], details=taken[1:],
                         hint=f"choose other ports with --port-base (now {base}; a facility takes {SPAN} ports), "
                              f"e.g. --port-base {base + SPAN}")


def filesystems_fit(specs: list[ServiceSpec]) -> None:
    """Every dir a service writes can be written, and no filesystem is too small for what it keeps."""
    fatal = [f for f in preconditions.check(specs) if f.fatal]
    if fatal:
        raise AfboxError(fatal[0].line(), details=[f.line() for f in fatal[1:]],
                         hint="afbox doctor checks this host; the facility file's [xcache] cache_dir, "
                              "[origin] data_dir and --workdir choose other places")


class Backend(Protocol):
    name: str
    named_clusters: bool

    def site(self, fac: Facility) -> Site: ...
    def view(self, ctx: Context) -> Context: ...
    def place(self, ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]: ...
    def preflight(self, ctx: Context, specs: list[ServiceSpec]) -> None: ...
    def up(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[Event]: ...
    def update(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[Event]: ...
    def down(self) -> Iterator[Event]: ...
    def running(self) -> bool: ...
    def status(self) -> list[ServiceStatus]: ...
    def log_path(self, name: str) -> Path: ...
    def restart(self, name: str) -> None: ...
    def status_extra(self, rec) -> dict: ...
    def orphans(self) -> list[ServiceStatus]: ...
    def reap(self) -> Iterator[Event]: ...
    def check_environment(self, ctx: Context, name: str, python_argv: tuple[str, ...]) -> Iterator[Event]: ...
