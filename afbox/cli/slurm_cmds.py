"""afbox images pull, and the SLURM side of up/scale (HPC mode): `up --slurm` submits the facility
as a job and waits for it; `scale --jobs K` adds worker-only jobs; `slurm-job` runs inside the job."""
from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path

import click

from .. import jobscript, lifecycle, render, slurm
from ..backends.slurm import SlurmBackend, read_job, update_job, worker_names
from ..errors import AfboxError
from ..facility import Facility, parse_duration
from ..health import check
from ..services.dask import bearer
from ..spec import HealthCheck
from ..state import FacilityState, shared_cache_root, write_private

AFBOX = str(Path(sys.executable).parent / "afbox")


def _header(fac: Facility, name: str, output: Path, nodes: int, time_: str, ntasks: int = 0) -> jobscript.Header:
    s = fac.slurm
    return jobscript.Header(job_name=name, nodes=nodes, time=time_, partition=s.partition, account=s.account,
                            output=str(output), ntasks_per_node=ntasks, extra=tuple(s.extra_sbatch))


def submit_and_wait(fac: Facility, profile, config) -> None:
    """Outside an allocation: submit the facility as one job, wait until it runs and is up."""
    slurm.require_slurm()
    state = FacilityState(fac.name)
    be = SlurmBackend(state)
    if be.running() and state.read():
        raise AfboxError(f"facility {fac.name!r} is already up", hint=f"stop it first: afbox down --name {fac.name}")
    fac = fac.model_copy(deep=True)
    fac.facility.backend = "slurm"
    state.ensure()
    spec_file = state.run / "slurm-facility.json"
    write_private(spec_file, fac.model_dump_json())
    header = _header(fac, f"afbox-{fac.name}", state.logs / "slurm-%j.out", fac.slurm.nodes, fac.slurm.time)
    t0 = time.time()
    job = slurm.submit(jobscript.head_job(header, AFBOX, str(spec_file)))
    update_job(state, job_id=job, submitted=[job], scale_jobs=[], warning=None, ended=None)
    click.echo(f"afbox: facility {fac.name!r}, profile {profile}: submitted SLURM job {job} "
               f"({fac.slurm.nodes} node(s), {fac.slurm.time})")
    try:
        st = slurm.wait_running(job, parse_duration(fac.slurm.queue_timeout))
    except AfboxError as e:
        slurm.cancel([job])
        update_job(state, submitted=[])
        e.hint = f"job {job} has been cancelled; " + (e.hint or "")
        raise
    click.echo(f"job {job} is running on {st.nodes}; starting the facility there")
    rec = _wait_record(state, job, t0, state.logs / f"slurm-{job}.out", fac.facility.start_timeout * 2 + 60)
    click.echo(f"\nfacility {fac.name!r} is up in SLURM job {job} ({time.time() - t0:.1f}s after submitting):")
    for line in render.urls_text(lifecycle.urls(rec), lifecycle.jupyter_login_url(rec), bool(rec.get("auth"))):
        click.echo(line)
    click.echo(f"  workdir         {rec['workdir']}")
    click.echo(f"\nwhen done: afbox down --name {fac.name}   (cancels job {job})")


def _wait_record(state: FacilityState, job: str, since: float, out: Path, timeout: float) -> dict:
    """The job's output echoed as it comes, until the facility's record appears or the job ends."""
    end = time.monotonic() + timeout
    shown = 0
    while True:
        lines = out.read_text(errors="replace").splitlines() if out.exists() else []
        for line in lines[shown:]:
            click.echo(f"  {line}")
        shown = len(lines)
        rec = state.read()
        if rec and rec.get("started", 0) >= since:
            return rec
        st = slurm.job_state(job)
        if not st.active:
            raise AfboxError(f"SLURM job {job} ended ({st.state}) before the facility came up",
                             details=lines[-20:], hint=f"its output: {out}")
        if time.monotonic() > end:
            slurm.cancel([job])
            raise AfboxError(f"the facility did not come up in SLURM job {job} within {timeout:g}s; "
                             "job cancelled", details=lines[-20:], hint=f"its output: {out}")
        time.sleep(0.5)


@click.command("slurm-job", hidden=True)
@click.option("--spec", "spec_file", required=True, type=click.Path(exists=True, dir_okay=False))
def slurm_job(spec_file):
    """Inside the facility's job: bring it up, hold it while the job runs, stop it when SLURM ends it."""
    fac = Facility.model_validate_json(Path(spec_file).read_text())

    def ending(*_):  # while starting: unwind, so the backend stops what it started
        raise SystemExit("SLURM ended the job while the facility was starting")

    signal.signal(signal.SIGTERM, ending)
    for e in lifecycle.up(fac):
        click.echo(render.event_line(e))
        sys.stdout.flush()
    state = FacilityState(fac.name)
    be = SlurmBackend(state)
    signalled = []
    signal.signal(signal.SIGTERM, lambda *_: signalled.append(True))
    while be.running() and not signalled:
        time.sleep(1)
    if signalled and state.read():
        job = read_job(state).get("job_id", "")
        st = slurm.job_state(job).state if job else "UNKNOWN"
        update_job(state, ended=st if st not in slurm.ACTIVE else "ENDED", ended_at=time.time())
        click.echo(f"SLURM is ending job {job} ({st}): stopping the facility; the workdir is kept")
        for e in be.stop_services():
            click.echo(render.event_line(e))


def scale_jobs(name: str, jobs: int) -> None:
    """`afbox scale --jobs K`: K worker-only jobs whose workers join the running scheduler."""
    slurm.require_slurm()
    state = FacilityState(name)
    rec, job = state.read(), read_job(state)
    if not rec or rec.get("backend") != "slurm" or not job.get("worker_step"):
        raise AfboxError(f"facility {name!r} is not a running SLURM facility",
                         hint="scale --jobs adds SLURM jobs to a facility started with afbox up inside an "
                              "allocation or with afbox up --slurm; elsewhere use --workers N")
    fac = Facility.model_validate(rec["spec"])
    alloc = job["allocation"]
    ntasks = job["cpu_workers"] + alloc["gpus_per_node"]
    left = (job.get("end") or 0) - time.time()
    walltime = str(max(1, math.floor(left / 60))) if left > 0 else fac.slurm.time  # not past the facility
    header = _header(fac, f"afbox-{name}-workers", state.logs / "slurm-workers-%j.out", 1, walltime, ntasks)
    step = ["srun", "--kill-on-bad-exit=0", "--overcommit", f"--ntasks-per-node={ntasks}", *job["worker_step"]]
    text = jobscript.worker_job(header, step, job["worker_env"])
    ids = [slurm.submit(text) for _ in range(jobs)]
    update_job(state, scale_jobs=[*job.get("scale_jobs", []), *ids])
    click.echo(f"submitted worker job(s) {', '.join(ids)} ({ntasks} worker(s) each, {walltime} min)")
    dash = rec["services"]["dask-scheduler"]["ports"]["dashboard"]
    host = rec["spec"]["facility"]["bind"]
    for j in ids:
        st = slurm.wait_running(j, parse_duration(fac.slurm.queue_timeout))
        names = worker_names(j, slurm.hostnames(st.nodes), job["cpu_workers"], alloc["gpus_per_node"])
        end = time.monotonic() + fac.facility.start_timeout
        while not all(check(HealthCheck("dask-worker", host=host, port=dash, path="/json/identity.json",
                                        headers=(("worker-name", n), *bearer(state))))[0] for n in names):
            if time.monotonic() > end or not slurm.job_state(j).active:
                out = state.logs / f"slurm-workers-{j}.out"
                tail = out.read_text(errors="replace").splitlines()[-20:] if out.exists() else []
                raise AfboxError(f"the workers of SLURM job {j} did not join the scheduler", details=tail,
                                 hint=f"its output: {out}")
            time.sleep(0.5)
        click.echo(f"job {j}: worker(s) {', '.join(names)} joined")


@click.group()
def images():
    """Container images for --runtime apptainer."""


@images.command("pull")
@click.argument("image")
@click.option("--dir", "dest", type=click.Path(file_okay=False), help="Where the .sif goes "
              "(default: afbox's cache dir, images/).")
def images_pull(image, dest):
    """Turn a docker://... reference into a .sif with `apptainer pull`; prints its path."""
    from ..runtimes import apptainer
    path = apptainer.pull(image, Path(dest) if dest else shared_cache_root() / "images")
    click.echo(str(path))
    click.echo(f"use it with: afbox up --runtime apptainer --image {path}")


COMMANDS: list = [images, slurm_job]
