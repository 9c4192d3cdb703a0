"""The Context services render from: the facility, this host's facts and the backend's site; made
afresh for `up`, and again from the record for what changes a running facility."""
from __future__ import annotations

import pwd
import sys
from pathlib import Path
from typing import Any

from .. import backends, gpu, record
from .. import host as hostmod
from ..errors import AfboxError
from ..facility import Facility
from ..gpu.model import Device
from ..record import FacilityRecord
from ..run import which
from ..services.context import Context
from ..services.sizing import dask_size, xcache_size
from ..state import FacilityState, data_root, shared_cache_root, start_hint

GPU_DETECT_TIMEOUT = 5.0  # a hung nvidia-smi must not hold up `afbox up` for long


def detect_gpus(fac: Facility):
    """GPU report and the devices that get a worker (none when the facility turns GPUs off)."""
    if fac.dask.gpus == 0:
        return None, ()
    report = gpu.detect(timeout=GPU_DETECT_TIMEOUT)
    devices = report.devices()
    return report, tuple(devices if fac.dask.gpus < 0 else devices[: fac.dask.gpus])


def context(fac: Facility, host: hostmod.Host | None = None, gpus: tuple = (),
            site: dict[str, Any] | None = None) -> Context:
    host = host or hostmod.detect()
    state = FacilityState(fac.name)
    base = shared_cache_root() / fac.name
    cache_dir = Path(fac.xcache.cache_dir).expanduser() if fac.xcache.cache_dir else base / "xcache"
    xrootd_user = None
    if host.is_root:
        try:
            xrootd_user = pwd.getpwnam("xrootd").pw_name
        except KeyError:
            xrootd_user = None
    return Context(
        facility=fac, state=state, gpus=gpus,
        # the cores a GPU worker's feeding thread uses are not handed to CPU workers again
        dask=dask_size(fac, max(1, host.cpus - len(gpus)), host.memory),
        bin_dir=str(Path(sys.executable).parent), xrootd=which(fac.xcache.xrootd), xrootd_user=xrootd_user,
        cache_dir=cache_dir, xrootd_dir=base / "xrootd",
        cache_size=xcache_size(fac, hostmod.disk_free(str(cache_dir)), hostmod.disk_total(str(cache_dir))),
        as_root=host.is_root, bwrap=which("bwrap"),
        origin_dir=Path(fac.origin.data_dir).expanduser() if fac.origin.data_dir else data_root() / fac.name / "origin",
        site=dict(site or {}), sites=trusted_sites(fac, state),
    )


def trusted_sites(fac: Facility, state: FacilityState) -> tuple:
    """The other facilities this one trusts (afbox site add): their tokens are checked with what they
    were granted, their data cached here. Only a facility other sites reach (public_host) trusts any."""
    from ..sites.store import SiteStore
    return tuple(SiteStore(state).sites()) if fac.auth.enabled and fac.facility.public_host else ()


def context_from(rec: FacilityRecord, workers: int | None = None) -> Context:
    """The running facility's Context, rendering its services exactly as they run (the same
    threads and memory per worker, so that none is restarted); `workers` changes their number."""
    fac = rec.spec.model_copy(deep=True)
    fac.dask.workers = workers or rec.dask.workers
    fac.dask.threads_per_worker = rec.dask.threads
    fac.dask.memory_limit = str(rec.dask.memory_limit)
    devices = tuple(Device(**d) for d in rec.gpus.workers.values())
    return context(fac, gpus=devices, site=rec.site)


def running(name: str) -> tuple[FacilityState, FacilityRecord, backends.Backend]:
    """The running facility of this name, its record and backend; else an error that says so."""
    state = FacilityState(name)
    rec, unreadable = record.read_or_why(state)
    be = backends.get(rec.backend if rec else "local", state)
    if unreadable:
        raise AfboxError(unreadable, hint=f"afbox status --name {name} says what runs; afbox up --force starts "
                                          "it afresh")
    if not rec or not be.running():
        raise AfboxError(f"facility {name!r} is not running", hint=start_hint(name))
    return state, rec, be
