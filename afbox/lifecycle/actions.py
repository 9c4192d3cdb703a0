"""up / down / scale / restart of one facility: spec -> ServiceSpecs -> backend -> events and record."""
from __future__ import annotations

import os
import pwd
import time
from pathlib import Path
from typing import Callable, Iterator

from .. import backends, events as ev, record, services, timeline
from ..bundle import runtime as bundle_runtime
from ..errors import AfboxError
from ..facility import Facility
from ..record import AuthRecord, DaskRecord, FacilityRecord, GpuRecord, KeycacheRecord, TlsRecord
from ..services import issuer, xcache
from ..services.context import Context
from ..spec import ServiceSpec
from ..state import FacilityState, known_facilities, start_hint
from . import clusters, credentials
from .already import already_up
from .contexts import context, context_from, detect_gpus, running
from .sites import site_records


def up(fac: Facility, force: bool = False) -> Iterator[ev.Event]:
    """Bring the facility up; a no-op (same URLs) when it is already up. What an earlier run left
    behind (services whose supervisor died, a record that cannot be read) is refused, or with
    force stopped first."""
    fac = in_allocation(fac)
    state = FacilityState(fac.name)
    be = backends.get(fac.facility.backend, state)
    rec, unreadable = record.read_or_why(state)
    running = be.running()
    if running and rec:
        yield from already_up(fac, rec)
        return
    yield from leftovers(fac.name, be, running, unreadable, force)
    yield from shared_workdir(fac)
    with timeline.span("where it runs (host, backend)"):
        site = be.site(fac)  # what only the backend knows: SLURM's addresses, sizes per node
    with timeline.span("gpu detection"):
        report, devices = detect_gpus(site.facility)
    for line in report.problems if report else ():
        yield ev.Event(ev.INFO, "", f"gpu: {line}")
    if devices:
        yield ev.Event(ev.INFO, "", f"gpu: {len(devices)} GPU worker(s): " + ", ".join(
            f"{d.label} {d.model}" for d in devices))
    with timeline.span("services rendered"):
        ctx = context(site.facility, site.host, devices, site.facts)
        specs = be.place(ctx, services.render(be.view(ctx)))  # e.g. SLURM: one srun step for all workers
    for s in specs:
        if s.unavailable and s.name in ctx.facility.facility.require:
            raise AfboxError(f"{s.name} is required but unavailable", hint=s.unavailable)
    with timeline.span("preflight (ports, filesystems)"):
        be.preflight(ctx, specs)
    with timeline.span("credentials (keys, tokens)"):
        ctx.facility.workdir.mkdir(parents=True, exist_ok=True)
        credentials.prepare(ctx)
    if ctx.facility.local_origin:
        for line in bundle_runtime.seed_origin(ctx.origin_dir):
            yield ev.Event(ev.INFO, "", line)
    for s in specs:
        if s.unavailable:
            yield ev.Event(ev.UNAVAILABLE, s.name, s.unavailable)
    yield from be.up(ctx, specs)
    with timeline.span("record written"):
        rec = new_record(ctx, specs, be.name)
        rec.gpus = GpuRecord(report=report.to_dict() if report else None,
                             workers={f"dask-gpu-{k}": d.to_dict() for k, d in enumerate(devices)})
        record.write(state, rec)


def leftovers(name: str, be: backends.Backend, running: bool, unreadable: str | None, force: bool
              ) -> Iterator[ev.Event]:
    """Before a fresh start: nothing of an earlier run may still hold the facility's ports and dirs."""
    state = FacilityState(name)
    if running:
        what = f"facility {name!r} is running, but " + (unreadable or "it has no record")
        stop = be.down
    elif orphans := be.orphans():
        what = (f"facility {name!r} has {len(orphans)} service(s) left running by a supervisor that died: "
                + ", ".join(o.name for o in orphans))
        stop = be.reap
    else:
        what, stop = "", None
    if stop and not force:
        raise AfboxError(what, details=[unreadable] if unreadable and not running else [],
                         hint=f"afbox up --force stops them and starts afresh (afbox down --name {name} only stops them)")
    if stop:
        yield ev.Event(ev.INFO, "", f"{what}: stopping them first (--force)")
        yield from stop()
    if unreadable and (aside := record.set_aside(state)):
        yield ev.Event(ev.INFO, "", f"{unreadable}; moved to {aside}")


def shared_workdir(fac: Facility) -> Iterator[ev.Event]:
    """A warning when another running facility works in the same workdir: outputs of one (the demo's
    agc_output, its notebook) would land on the other's."""
    for other in known_facilities():
        rec = record.read(FacilityState(other)) if other != fac.name else None
        if rec and Path(rec.workdir) == fac.workdir:
            yield ev.Event(ev.INFO, "", f"warning: facility {other!r} works in {fac.workdir} too; outputs of one "
                                        "overwrite the other's (give each its own: --workdir DIR)")


def in_allocation(fac: Facility) -> Facility:
    """Inside a SLURM allocation the facility runs on it, unless a profile, file or flag chose a backend."""
    if os.environ.get("SLURM_JOB_ID") and "backend" not in fac.facility.model_fields_set:
        fac = fac.model_copy(deep=True)
        fac.facility.backend = "slurm"
    return fac


def new_record(ctx: Context, specs: list[ServiceSpec], backend: str) -> FacilityRecord:
    fac = ctx.facility
    tls = TlsRecord(**ctx.dask_tls) if ctx.dask_tls else None
    return FacilityRecord(
        version=record.VERSION, facility=fac.name, profile=fac.profile, backend=backend, spec=fac, started=time.time(),
        workdir=str(fac.workdir), cache_dir=str(ctx.cache_dir), cache_size=ctx.cache_size, port_base=ctx.base,
        origin_dir=str(ctx.origin_dir) if fac.local_origin else None,
        auth=auth_record(ctx, specs) if fac.auth.enabled else None,
        # Jupyter's own token exists only without [auth]: then it is the only way in
        jupyter_token_file=str(ctx.jupyter_token_file) if fac.jupyter.enabled and not fac.auth.enabled else None,
        dask=DaskRecord(workers=ctx.dask.workers, threads=ctx.dask.threads, memory_limit=ctx.dask.memory_limit,
                        tls=tls),
        services=record.service_records(specs, ctx.state.logs), site=ctx.site, sites=site_records(ctx, specs))


def auth_record(ctx: Context, specs: list[ServiceSpec]) -> AuthRecord:
    keycache = None
    if any(s.name == xcache.NAME and not s.unavailable for s in specs) and ctx.facility.xcache.enabled:
        owner = None
        if ctx.xrootd_user:
            pw = pwd.getpwnam(ctx.xrootd_user)
            owner = (pw.pw_uid, pw.pw_gid)
        keycache = KeycacheRecord(cache_home=str(xcache.cache_home(ctx)), owner=owner)
    return AuthRecord(issuer=issuer.url(ctx), identity_dir=str(ctx.identity_dir),
                      trusted_issuers=ctx.facility.auth.trusted_issuers, token_file=str(ctx.token_file),
                      ca_dir=str(ctx.ca_dir), xcache_keycache=keycache)


def scale(name: str, workers: int) -> Iterator[ev.Event]:
    """Change the number of CPU Dask workers of a running facility; the others keep running."""
    if workers < 1:
        raise AfboxError("a facility needs at least 1 CPU worker", hint="to stop everything: afbox down")
    state, rec, be = running(name)
    ctx = context_from(rec, workers=workers)
    specs = clusters.rendered(be, ctx, rec)  # named clusters keep running
    be.preflight(ctx, [s for s in specs if s.name not in rec.services])
    yield ev.Event(ev.INFO, "", f"dask workers: {rec.dask.workers} -> {workers}")
    yield from be.update(ctx, specs)
    rec = rec.model_copy(update={"spec": ctx.facility, "dask": rec.dask.model_copy(update={"workers": workers}),
                                 "services": record.service_records(specs, state.logs)})
    record.write(state, rec)


def restart(name: str, service: str) -> None:
    """Stop and start one service of a running facility."""
    state = FacilityState(name)
    rec = record.read(state)
    if not rec:
        raise AfboxError(f"facility {name!r} is not running", hint=start_hint(name))
    if service not in rec.services:
        raise AfboxError(f"no service {service[:60]!r} in facility {name!r}", hint="services: " + ", ".join(rec.services))
    backends.get(rec.backend, state).restart(service)


def down(name: str) -> Iterator[ev.Event]:
    state = FacilityState(name)
    rec, unreadable = record.read_or_why(state)
    be = backends.get(rec.backend if rec else "local", state)
    if unreadable:
        yield ev.Event(ev.INFO, "", unreadable)
    if not rec and not be.running() and not be.orphans():
        if unreadable and (aside := record.set_aside(state)):
            yield ev.Event(ev.INFO, "", f"nothing of it runs; the record was moved to {aside}")
        yield ev.Event(ev.INFO, "", f"facility {name!r} is not running; nothing to stop")
        return
    stopped = False
    for e in be.down():
        stopped = True
        yield e
    if not stopped:
        yield ev.Event(ev.INFO, "", f"nothing of facility {name!r} was running; its record is cleared")
    if unreadable:
        record.set_aside(state)
    state.clear()
    clusters.sync_kernels(state, {})  # named clusters stopped with everything: their kernels must not point at them
    if rec and rec.jupyter_token_file:
        Path(rec.jupyter_token_file).unlink(missing_ok=True)


def log_path(name: str, service: str) -> Path:
    """Where one service's log is (the k3s backend fetches it from the pod first)."""
    state = FacilityState(name)
    rec = record.read(state)
    if rec and service in rec.services:
        return backends.get(rec.backend, state).log_path(service)
    return state.logs / f"{service}.log"


def placed(fac: Facility) -> tuple[backends.Backend, Context, list[ServiceSpec]]:
    """The facility's services as its backend would place them now, without starting anything."""
    state = FacilityState(fac.name)
    be = backends.get(fac.facility.backend, state)
    _, devices = detect_gpus(fac)
    ctx = context(fac, gpus=devices)
    return be, ctx, be.place(ctx, services.render(be.view(ctx)))


def purge(name: str, confirm: Callable[[str], None] | None = None) -> Iterator[ev.Event]:
    """Delete the facility's data where its backend keeps it apart from this host (k3s: the namespace
    with its volumes); the record goes with it. confirm(what) is asked once the backend can do it."""
    state = FacilityState(name)
    rec = record.read(state)
    be = backends.get(rec.backend if rec else "k3s", state)
    if not hasattr(be, "purge"):
        raise AfboxError(f"facility {name!r} runs on the {be.name} backend, whose data afbox keeps on this host",
                         hint="afbox cache purge empties its cache; notebooks stay in the workdir")
    what = be.purge_target()
    if confirm:
        confirm(what)
    yield from be.purge()
    state.clear()
