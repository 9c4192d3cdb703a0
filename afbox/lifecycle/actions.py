"""up / down / scale / restart of one facility: spec -> ServiceSpecs -> backend -> events and record."""
from __future__ import annotations

import os
import pwd
import time
from pathlib import Path
from typing import Iterator

from .. import backends, events as ev, record, services
from ..errors import AfboxError
from ..facility import Facility
from ..record import AuthRecord, DaskRecord, FacilityRecord, GpuRecord, KeycacheRecord, TlsRecord
from ..services import issuer, xcache
from ..services.context import Context
from ..spec import ServiceSpec
from ..state import FacilityState
from . import clusters, credentials
from .contexts import context, context_from, detect_gpus, running
from .sites import site_records


def up(fac: Facility) -> Iterator[ev.Event]:
    """Bring the facility up; a no-op (same URLs) when it is already up."""
    fac = in_allocation(fac)
    state = FacilityState(fac.name)
    be = backends.get(fac.facility.backend, state)
    if be.running() and record.read(state):
        yield ev.Event(ev.INFO, "", f"facility {fac.name!r} is already up")
        return
    site = be.site(fac)  # what only the backend knows: SLURM's addresses, sizes per node
    report, devices = detect_gpus(site.facility)
    for line in report.problems if report else ():
        yield ev.Event(ev.INFO, "", f"gpu: {line}")
    if devices:
        yield ev.Event(ev.INFO, "", f"gpu: {len(devices)} GPU worker(s): " + ", ".join(
            f"{d.label} {d.model}" for d in devices))
    ctx = context(site.facility, site.host, devices, site.facts)
    specs = be.place(ctx, services.render(be.view(ctx)))  # e.g. SLURM: one srun step for all workers
    for s in specs:
        if s.unavailable and s.name in ctx.facility.facility.require:
            raise AfboxError(f"{s.name} is required but unavailable", hint=s.unavailable)
    be.preflight(ctx, specs)
    ctx.facility.workdir.mkdir(parents=True, exist_ok=True)
    credentials.prepare(ctx)
    for s in specs:
        if s.unavailable:
            yield ev.Event(ev.UNAVAILABLE, s.name, s.unavailable)
    yield from be.up(ctx, specs)
    rec = new_record(ctx, specs, be.name)
    rec.gpus = GpuRecord(report=report.to_dict() if report else None,
                         workers={f"dask-gpu-{k}": d.to_dict() for k, d in enumerate(devices)})
    record.write(state, rec)


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
        jupyter_token_file=str(ctx.jupyter_token_file) if fac.jupyter.enabled else None,
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
        raise AfboxError(f"facility {name!r} is not running", hint="start it with: afbox up")
    if service not in rec.services:
        raise AfboxError(f"no service {service!r}", hint="services: " + ", ".join(rec.services))
    backends.get(rec.backend, state).restart(service)


def down(name: str) -> Iterator[ev.Event]:
    state = FacilityState(name)
    rec = record.read(state)
    be = backends.get(rec.backend if rec else "local", state)
    if not rec and not be.running():
        yield ev.Event(ev.INFO, "", f"facility {name!r} is not running; nothing to stop")
        return
    yield from be.down()
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


def purge(name: str) -> Iterator[ev.Event]:
    """Delete the facility's data where its backend keeps it apart from this host (k3s: the namespace
    with its volumes); the record goes with it."""
    state = FacilityState(name)
    rec = record.read(state)
    be = backends.get(rec.backend if rec else "k3s", state)
    if not hasattr(be, "purge"):
        raise AfboxError(f"facility {name!r} runs on the {be.name} backend, whose data afbox keeps on this host",
                         hint="afbox cache purge empties its cache; notebooks stay in the workdir")
    yield from be.purge()
    state.clear()
