"""The slurm backend: head services under the local backend's supervisord on the node where
`afbox up` runs; all Dask workers one supervised `srun` step across the allocation's nodes; a
walltime watcher that retires them before the job ends. What afbox submitted, the allocation and
the walltime warning live in <state>/slurm.json (afbox down cancels those jobs, and only those).
Named clusters (afbox cluster up) are added and removed by `update`: their scheduler beside the head
services, their workers one srun step of their own, from their environment's bin dir or image."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterator

import psutil

from ... import events as ev
from ... import spec as specs_json
from ...errors import AfboxError, ServiceFailed
from ...facility import Facility
from ...health import check, poll_until
from ...host import detect as detect_host
from ...run import require, run
from ...runtimes import binds
from ...runtimes import check as check_runtime
from ...services import dask
from ...services.context import Context
from ...spec import ServiceSpec
from ...state import FacilityState, data_root
from ..base import Site
from ..local import LocalBackend
from ..local.backend import tail
from . import commands as slurm
from .jobs import job_file, read_job, update_job
from .placement import WORKERS, allocation, head_address, launcher, place, ssh_line, worker_names

SITE_ENV = ("XDG_STATE_HOME", "SLURM_CONF")  # what the walltime watcher must see as `up` saw it


def wait_joined(host: str, dashboard_port: int, names: list[str], auth: tuple, timeout: float,
                alive: Callable[[], bool]) -> list[str]:
    """Until every named worker has joined the scheduler (its dashboard lists them); the names still
    missing when timeout passes or alive() says their step or job has ended ([] when all joined)."""
    missing = list(names)

    def joined() -> bool:
        missing[:] = [n for n in missing if not check(dask.joined_check(host, dashboard_port, n, auth))[0]]
        return not missing or not alive()
    poll_until(joined, timeout, 0.3)
    return missing


class SlurmBackend(LocalBackend):
    name = "slurm"

    def __init__(self, state: FacilityState):
        super().__init__(state)
        # the head's specs as `up` placed them: `update` keeps them as they are (afbox cluster up/down
        # may run outside the allocation's environment, where the head would render differently)
        self.head_file = state.run / "slurm-head-specs.json"

    # -- before rendering ----------------------------------------------------------------------
    def site(self, fac: Facility) -> Site:
        """The allocation decides: the address other nodes reach, sizes per node, GPUs per node."""
        alloc = slurm.detect()
        if alloc is None:
            raise AfboxError("the slurm backend runs inside a SLURM allocation (SLURM_JOB_ID is not set)",
                             hint="run it under salloc/sbatch, or submit one: afbox up --slurm -N 2 -t 1:00:00")
        if fac.runtime.kind == "apptainer":
            check_runtime(fac.runtime)
            require("apptainer")
        fac = fac.model_copy(deep=True)
        if "bind" not in fac.facility.model_fields_set:
            fac.facility.bind = head_address(alloc, fac.slurm.interface)
        fac.dask.gpus = 0  # GPU workers come from the allocation's GPUs per node, in the srun step
        host = detect_host()
        host.cpus = max(1, alloc.cpus_per_node - alloc.gpus_per_node)
        host.memory = alloc.memory_per_node or host.memory
        env = {k: v for k in SITE_ENV if (v := os.environ.get(k))}
        return Site(fac, host, {"allocation": alloc.to_dict(), "env": env})

    def place(self, ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]:
        return place(ctx, specs)

    def check_environment(self, ctx: Context, name: str, python_argv: tuple[str, ...]) -> Iterator[ev.Event]:
        """The environment's python, run once on each node of the allocation: a node that cannot see
        the environment (not on a shared filesystem) is named with SLURM's own words, before anything
        starts."""
        yield ev.Event(ev.INFO, "", "checking that every node of the allocation sees the environment ...")
        alloc = allocation(ctx)
        n = len(alloc.nodes)
        argv = ["srun", f"--jobid={alloc.job_id}", "--overlap", f"--nodes={n}", f"--ntasks={n}",
                "--ntasks-per-node=1", "--kill-on-bad-exit=1", f"--job-name=afbox-{ctx.facility.name}-check",
                *python_argv, "-c", "import distributed"]
        try:
            run(argv, timeout=120)
        except AfboxError as e:
            raise AfboxError(f"environment {name!r} is not usable on every node of SLURM job {alloc.job_id}",
                             details=e.details, hint="on SLURM an environment must sit on a path every node sees: "
                                                     "put the data dir on a shared filesystem (XDG_DATA_HOME; now "
                                                     f"{data_root()}) and create the environment again") from None

    # -- up / down -----------------------------------------------------------------------------
    def up(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[ev.Event]:
        a = allocation(ctx)
        sched = next(s for s in specs if s.name == dask.SCHEDULER)
        cpu_workers = ctx.dask.workers
        if ctx.facility.runtime.kind != "none":
            for d in binds(ctx):  # apptainer refuses bind sources that do not exist
                Path(d).mkdir(parents=True, exist_ok=True)
        update_job(self.state, job_id=a.job_id, allocation=a.to_dict(), end=slurm.end_time(a.job_id),
                   job_state="RUNNING", warning=None, ended=None, cpu_workers=cpu_workers, threads=ctx.dask.threads,
                   worker_step=list(launcher(ctx, a.gpus_per_node)),
                   worker_env=dict(dask.worker_env(ctx, dask.default_place(ctx))))
        yield ev.Event(ev.INFO, "", f"slurm: job {a.job_id}, {len(a.nodes)} node(s) {','.join(a.nodes)}; "
                                    f"{cpu_workers + a.gpus_per_node} worker(s) per node")
        self.state.ensure()
        self.head_file.write_text(specs_json.to_json(specs))
        yield from super().up(ctx, specs)
        names = worker_names(a.job_id, a.nodes, cpu_workers, a.gpus_per_node)
        self._wait_workers(sched, names, ctx.facility.facility.start_timeout)
        yield ev.Event(ev.HEALTHY, WORKERS, f"{len(names)} workers on {len(a.nodes)} node(s): "
                                            f"{', '.join(a.nodes)}")
        for s in specs:
            for e in s.expose if not s.unavailable else ():
                if not e.subdomain:  # the facility's front page: how to reach it from a laptop
                    port = s.port_dict[e.port]
                    yield ev.Event(ev.INFO, "", f"from your laptop: {ssh_line(a, ctx.bind, port)}  "
                                                f"then open the URL below with localhost:{port}")

    def _wait_workers(self, sched: ServiceSpec, names: list[str], timeout: float) -> None:
        """Until every task of the step has joined the scheduler; else stop everything, with the log."""
        def step_alive() -> bool:
            states = {i["name"]: i["statename"] for i in self.sup.all_info()}
            return states.get(WORKERS) not in ("FATAL", "EXITED")
        missing = wait_joined(sched.health.host, sched.health.port, names, dask.bearer(self.state), timeout,
                              step_alive)
        if missing:
            self._stop_everything()
            raise ServiceFailed(WORKERS, f"workers {', '.join(missing)} did not join the scheduler",
                                tail(self.log_path(WORKERS)), str(self.log_path(WORKERS)))

    def update(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[ev.Event]:
        """Add or remove named clusters: the head runs on exactly as `up` placed it, and every other
        placed spec (a named cluster's scheduler and its srun step) is started or stopped."""
        try:
            head = specs_json.from_json(self.head_file.read_text())
        except (OSError, ValueError) as e:
            raise AfboxError(f"facility {self.state.name!r}: its placed services are not on record ({e})",
                             hint="restart it: afbox down, then afbox up") from None
        if ctx.dask.workers != read_job(self.state).get("cpu_workers"):
            raise AfboxError("on SLURM, workers come per node of the allocation",
                             hint="add worker-only jobs with: afbox scale --jobs K")
        names = {s.name for s in head}
        yield from super().update(ctx, head + [s for s in specs if s.name not in names])

    def stop_services(self, wait: float = 20) -> Iterator[ev.Event]:
        """SLURM is ending the job: supervisord is told to shut down (it stops every service itself,
        even if SLURM kills this process before that is done: daemonized, it is not in the job's
        process tree). The record and slurm.json stay, so status says how the job ended."""
        procs = self._tree()
        self.sup.shutdown()
        yield ev.Event(ev.STOPPING, "", "supervisor told to stop every service")
        _, alive = psutil.wait_procs(procs, timeout=wait)
        yield ev.Event(ev.STOPPED, "", "all services stopped" if not alive else f"{len(alive)} still stopping")

    def down(self) -> Iterator[ev.Event]:
        yield from super().down()
        job = read_job(self.state)
        ours = [*job.get("submitted", []), *job.get("scale_jobs", [])]
        live = [j for j in ours if slurm.job_state(j).active]
        if live:
            slurm.cancel(live)
            yield ev.Event(ev.STOPPED, "", f"cancelled SLURM job(s) {', '.join(live)}")
        job_file(self.state).unlink(missing_ok=True)
        (self.state.dir / "slurm.lock").unlink(missing_ok=True)
        self.head_file.unlink(missing_ok=True)

    # -- the job, for status -------------------------------------------------------------------
    def status_extra(self, rec) -> dict:
        """The job as the watcher last saw it (status is polled every second by the console: the
        controller is asked only when the facility is no longer running, to say how the job ended)."""
        job = read_job(self.state)
        if not job.get("job_id"):
            return {}
        state, end = job.get("job_state") or "RUNNING", job.get("end")
        if not self.running():
            st = slurm.job_state(job["job_id"]) if slurm.available() else None
            if st and st.state not in ("GONE", "UNKNOWN"):
                state, end = st.state, st.end or end
            else:  # the controller has forgotten the job: what the watcher or the job's head saw last
                state = job.get("ended") or "ENDED"
        out = {"job_id": job["job_id"], "job_state": state, "end": end,
               "time_left": max(0.0, end - time.time()) if end and state == "RUNNING" else None,
               "warning": job.get("warning"), "submitted": job.get("submitted", []),
               "scale_jobs": job.get("scale_jobs", [])}
        if state not in slurm.ACTIVE:
            out["message"] = f"SLURM job {job['job_id']} ended ({state}); the facility stopped with it"
        return {"slurm": out}
