"""SLURM jobs afbox submits: the facility as a job of its own (`afbox up --slurm`, then `hold` runs
inside it) and worker-only jobs that join a running facility (`afbox scale --jobs K`). Each yields
Events as it goes; the CLI and the console print them."""
from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path
from typing import Iterator

from ... import events as ev
from ... import record
from ...errors import AfboxError
from ...facility import Facility
from ...health import poll_until
from ...services import dask
from ...state import FacilityState, write_private
from ...units import parse_duration
from . import commands as slurm
from .backend import SlurmBackend, wait_joined
from .jobs import Header, head_job, read_job, update_job, worker_job
from .placement import worker_names

AFBOX = str(Path(sys.executable).parent / "afbox")


def header(fac: Facility, name: str, output: Path, nodes: int, time_: str, ntasks: int = 0) -> Header:
    s = fac.slurm
    return Header(job_name=name, nodes=nodes, time=time_, partition=s.partition, account=s.account,
                  output=str(output), ntasks_per_node=ntasks, extra=tuple(s.extra_sbatch))


def submit_and_wait(fac: Facility) -> Iterator[ev.Event]:
    """Outside an allocation: submit the facility as one job, wait until it runs and is up."""
    slurm.require_slurm()
    state = FacilityState(fac.name)
    if SlurmBackend(state).running() and record.read(state):
        raise AfboxError(f"facility {fac.name!r} is already up", hint=f"stop it first: afbox down --name {fac.name}")
    fac = fac.model_copy(deep=True)
    fac.facility.backend = "slurm"
    state.ensure()
    spec_file = state.run / "slurm-facility.json"
    write_private(spec_file, fac.model_dump_json())
    head = header(fac, f"afbox-{fac.name}", state.logs / "slurm-%j.out", fac.slurm.nodes, fac.slurm.time)
    t0 = time.time()
    job = slurm.submit(head_job(head, AFBOX, str(spec_file)))
    update_job(state, job_id=job, submitted=[job], scale_jobs=[], warning=None, ended=None)
    yield ev.Event(ev.INFO, "", f"submitted SLURM job {job} ({fac.slurm.nodes} node(s), {fac.slurm.time})")
    try:
        st = slurm.wait_running(job, parse_duration(fac.slurm.queue_timeout))
    except AfboxError as e:
        slurm.cancel([job])
        update_job(state, submitted=[])
        e.hint = f"job {job} has been cancelled; " + (e.hint or "")
        raise
    yield ev.Event(ev.INFO, "", f"job {job} is running on {st.nodes}; starting the facility there")
    yield from wait_record(state, job, t0, state.logs / f"slurm-{job}.out", fac.facility.start_timeout * 2 + 60)


def wait_record(state: FacilityState, job: str, since: float, out: Path, timeout: float) -> Iterator[ev.Event]:
    """The job's output passed on as it comes, until the facility's record appears or the job ends."""
    end = time.monotonic() + timeout
    shown = 0
    while True:
        lines = out.read_text(errors="replace").splitlines() if out.exists() else []
        for line in lines[shown:]:
            yield ev.Event(ev.INFO, "", f"  {line}")
        shown = len(lines)
        rec = record.read(state)
        if rec and rec.started >= since:
            return
        st = slurm.job_state(job)
        if not st.active:
            raise AfboxError(f"SLURM job {job} ended ({st.state}) before the facility came up",
                             details=lines[-20:], hint=f"its output: {out}")
        if time.monotonic() > end:
            slurm.cancel([job])
            raise AfboxError(f"the facility did not come up in SLURM job {job} within {timeout:g}s; "
                             "job cancelled", details=lines[-20:], hint=f"its output: {out}")
        time.sleep(0.5)


def hold(fac: Facility, up) -> Iterator[ev.Event]:
    """Inside the facility's job: bring it up (with `up`, lifecycle's), hold it while the job runs,
    stop it when SLURM ends the job."""
    def ending(*_):  # while starting: unwind, so the backend stops what it started
        raise SystemExit("SLURM ended the job while the facility was starting")

    signal.signal(signal.SIGTERM, ending)
    yield from up(fac)
    state = FacilityState(fac.name)
    be = SlurmBackend(state)
    signalled: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: signalled.append(True))
    poll_until(lambda: signalled or not be.running(), math.inf, 1.0)
    if signalled and record.read(state):
        job = read_job(state).get("job_id", "")
        st = slurm.job_state(job).state if job else "UNKNOWN"
        update_job(state, ended=st if st not in slurm.ACTIVE else "ENDED", ended_at=time.time())
        yield ev.Event(ev.INFO, "", f"SLURM is ending job {job} ({st}): stopping the facility; the workdir is kept")
        yield from be.stop_services()


def scale_jobs(name: str, jobs: int) -> Iterator[ev.Event]:
    """`afbox scale --jobs K`: K worker-only jobs whose workers join the running scheduler."""
    slurm.require_slurm()
    state = FacilityState(name)
    rec, job = record.read(state), read_job(state)
    if not rec or rec.backend != "slurm" or not job.get("worker_step"):
        raise AfboxError(f"facility {name!r} is not a running SLURM facility",
                         hint="scale --jobs adds SLURM jobs to a facility started with afbox up inside an "
                              "allocation or with afbox up --slurm; elsewhere use --workers N")
    fac = rec.spec
    alloc = job["allocation"]
    ntasks = job["cpu_workers"] + alloc["gpus_per_node"]
    left = (job.get("end") or 0) - time.time()
    walltime = str(max(1, math.floor(left / 60))) if left > 0 else fac.slurm.time  # not past the facility
    head = header(fac, f"afbox-{name}-workers", state.logs / "slurm-workers-%j.out", 1, walltime, ntasks)
    step = ["srun", "--kill-on-bad-exit=0", "--overcommit", f"--ntasks-per-node={ntasks}", *job["worker_step"]]
    ids = [slurm.submit(worker_job(head, step, job["worker_env"])) for _ in range(jobs)]
    update_job(state, scale_jobs=[*job.get("scale_jobs", []), *ids])
    yield ev.Event(ev.INFO, "", f"submitted worker job(s) {', '.join(ids)} ({ntasks} worker(s) each, "
                                f"{walltime} min)")
    dash = rec.services[dask.SCHEDULER].ports["dashboard"]
    for j in ids:
        st = slurm.wait_running(j, parse_duration(fac.slurm.queue_timeout))
        names = worker_names(j, slurm.hostnames(st.nodes), job["cpu_workers"], alloc["gpus_per_node"])
        missing = wait_joined(fac.facility.bind, dash, names, dask.bearer(state), fac.facility.start_timeout,
                              lambda: slurm.job_state(j).active)
        if missing:
            out = state.logs / f"slurm-workers-{j}.out"
            tail = out.read_text(errors="replace").splitlines()[-20:] if out.exists() else []
            raise AfboxError(f"the workers of SLURM job {j} did not join the scheduler", details=tail,
                             hint=f"its output: {out}")
        yield ev.Event(ev.HEALTHY, "", f"job {j}: worker(s) {', '.join(names)} joined")
