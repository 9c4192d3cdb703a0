"""The slurm backend: head services under the local backend's supervisord on the node where
`afbox up` runs; all Dask workers one supervised `srun` step across the allocation's nodes; a
walltime watcher that retires them before the job ends. What afbox submitted, the allocation and
the walltime warning live in <state>/slurm.json (afbox down cancels those jobs, and only those).
Named clusters (afbox cluster up) are added and removed by `update`: their scheduler beside the head
services, their workers one srun step of their own, from their environment's bin dir or image."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Iterator

import psutil

from .. import events as ev, slurm
from ..errors import AfboxError, ServiceFailed
from ..facility import Facility, RuntimeSection, parse_duration
from ..health import check
from ..host import Host
from ..runtimes import binds, wrap
from ..services import dask
from ..services.context import Context
from ..spec import HealthCheck, ServiceSpec
from ..state import FacilityState
from .local import LocalBackend, tail

WORKERS = "dask-workers"
WATCH = "walltime"


def job_file(state: FacilityState) -> Path:
    return state.dir / "slurm.json"


def read_job(state: FacilityState) -> dict:
    try:
        return json.loads(job_file(state).read_text())
    except (OSError, ValueError):
        return {}


def update_job(state: FacilityState, **changes) -> dict:
    """Merge changes into slurm.json; the watcher, the job's head and `scale` all write it, so under a lock."""
    state.dir.mkdir(parents=True, exist_ok=True)
    with open(state.dir / "slurm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {**read_job(state), **changes}
        tmp = job_file(state).with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(job_file(state))
    return data


def interface_address(interface: str) -> str:
    for a in psutil.net_if_addrs().get(interface, []):
        if a.family == socket.AF_INET:
            return a.address
    raise AfboxError(f"network interface {interface!r} has no IPv4 address here",
                     hint="interfaces: " + ", ".join(sorted(psutil.net_if_addrs())))


def head_address(alloc: slurm.Allocation, interface: str) -> str:
    """An address of this host the allocation's nodes reach: the interface asked for; else on a
    compute node the address SLURM itself uses for it; else (a login node, under salloc) this host's
    address on the route to the first node."""
    if interface:
        return interface_address(interface)
    if alloc.head in alloc.nodes:
        addr = slurm.node_address(alloc.head)
        if addr:
            return socket.gethostbyname(addr)
    if alloc.nodes:
        target = slurm.node_address(alloc.nodes[0]) or alloc.nodes[0]
        from distributed.utils import get_ip
        return get_ip(socket.gethostbyname(target))
    return "127.0.0.1"


def tasks_per_node(cpu_workers: int, gpus: int) -> int:
    return cpu_workers + gpus


def worker_command(ctx: Context, bin_dir: str | None = None, scheduler: str | None = None,
                   threads: int | None = None, extra: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """`dask worker` for any node: scheduler, size and TLS; host, ports, name and scratch are the
    launcher's per task (afbox.slurm_worker). The facility's own cluster unless told otherwise."""
    own = bin_dir in (None, ctx.bin_dir)  # the facility's own Python: its dashboards check tokens
    return (f"{bin_dir or ctx.bin_dir}/dask", "worker", scheduler or dask.scheduler_address(ctx), "--nworkers", "1",
            "--nthreads", str(threads or ctx.dask.threads), "--memory-limit", str(ctx.dask.memory_limit),
            "--nanny", *dask.tls_args(ctx), *(dask.guard(ctx, dask.default_place(ctx))[0] if own else ()),
            *(ctx.facility.dask.extra_args if extra is None else extra))


def worker_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    return (("OMP_NUM_THREADS", "1"), ("MALLOC_TRIM_THRESHOLD_", "65536"), *dask.tls_env(ctx, client=True),
            *ctx.data_env, *dask.guard(ctx, dask.default_place(ctx))[1])


def launcher(ctx: Context, gpus: int, *, bin_dir: str | None = None, scheduler: str | None = None,
             threads: int | None = None, runtime: RuntimeSection | None = None, prefix: str = "",
             extra: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The per-task launcher and the (runtime-wrapped) worker command it completes."""
    fac = ctx.facility
    bin_dir, scheduler = bin_dir or ctx.bin_dir, scheduler or dask.scheduler_address(ctx)
    inner = wrap(runtime or fac.runtime, worker_command(ctx, bin_dir, scheduler, threads, extra), binds=binds(ctx),
                 gpus=gpus > 0, bin_dir=bin_dir)
    return (sys.executable, "-m", "afbox.slurm_worker", "--scheduler", scheduler, "--gpus", str(gpus),
            *(("--name-prefix", prefix) if prefix else ()),
            *(("--interface", fac.slurm.interface) if fac.slurm.interface else ()), "--", *inner)


def worker_names(job_id: str, nodes: tuple[str, ...], cpu_workers: int, gpus: int) -> list[str]:
    """The names the launcher gives (see afbox.slurm_worker): GPU tasks first on each node."""
    per = [f"gpu-{k}" for k in range(gpus)] + [str(k) for k in range(gpus, gpus + cpu_workers)]
    return [f"{job_id}-{n}-{p}" for n in nodes for p in per]


def workers_spec(ctx: Context, alloc: slurm.Allocation) -> ServiceSpec:
    n = len(alloc.nodes)
    ntasks = tasks_per_node(ctx.dask.workers, alloc.gpus_per_node)
    # --overlap: the step shares the allocation with others (scale, the user's own srun);
    # --overcommit: SLURM may have granted fewer CPUs than workers*threads (threads are Dask's).
    step = ("srun", f"--jobid={alloc.job_id}", "--overlap", "--overcommit", f"--nodes={n}",
            f"--ntasks={n * ntasks}", f"--ntasks-per-node={ntasks}", "--kill-on-bad-exit=0",
            f"--job-name=afbox-{ctx.facility.name}-workers", *launcher(ctx, alloc.gpus_per_node))
    last = worker_names(alloc.job_id, alloc.nodes, ctx.dask.workers, alloc.gpus_per_node)[-1]
    dash = HealthCheck("dask-worker", host=ctx.bind, port=dask.port(ctx.base, "dashboard"),
                       path="/json/identity.json", headers=(("worker-name", last), *dask.auth_headers(ctx)))
    return ServiceSpec(name=WORKERS, argv=step, needs=(dask.SCHEDULER,), needs_state="started", health=dash,
                       env=worker_env(ctx), cpus=ctx.dask.workers * ctx.dask.threads, stop_signal="TERM")


def cyclic_names(job_id: str, nodes: tuple[str, ...], workers: int, prefix: str) -> list[str]:
    """The launcher's names for `workers` tasks dealt round the nodes (srun --distribution=cyclic)."""
    return [f"{prefix}{job_id}-{nodes[t % len(nodes)]}-{t // len(nodes)}" for t in range(workers)]


def named_workers_spec(ctx: Context, alloc: slurm.Allocation, sched: ServiceSpec, *, service: str, prefix: str,
                       bin_dir: str, workers: int, threads: int, runtime: RuntimeSection) -> ServiceSpec:
    """A named cluster's workers: one srun step of `workers` tasks dealt round the allocation's nodes,
    each `dask worker` of the cluster's environment (its bin dir, or inside its image) joining sched."""
    nodes = alloc.nodes[:workers]
    address = sched.url_dict["scheduler"]
    step = ("srun", f"--jobid={alloc.job_id}", "--overlap", "--overcommit", f"--nodes={len(nodes)}",
            f"--nodelist={','.join(nodes)}", f"--ntasks={workers}", "--distribution=cyclic", "--kill-on-bad-exit=0",
            f"--job-name=afbox-{ctx.facility.name}-{service}",
            *launcher(ctx, 0, bin_dir=bin_dir, scheduler=address, threads=threads, runtime=runtime, prefix=prefix,
                      extra=()))
    last = cyclic_names(alloc.job_id, nodes, workers, prefix)[-1]
    health = HealthCheck("dask-worker", host=sched.health.host, port=sched.port_dict["dashboard"],
                         path="/json/identity.json", headers=(("worker-name", last), *dask.auth_headers(ctx)))
    return ServiceSpec(name=service, argv=step, needs=(sched.name,), needs_state="started", health=health,
                       env=worker_env(ctx), cpus=workers * threads, stop_signal="TERM")


def recorded_allocation(state: FacilityState) -> slurm.Allocation:
    a = read_job(state).get("allocation")
    if not a:
        raise AfboxError(f"facility {state.name!r} has no SLURM allocation on record",
                         hint="is it running? afbox status")
    return slurm.Allocation(**{**a, "nodes": tuple(a["nodes"])})


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def specs_to_json(specs: list[ServiceSpec]) -> str:
    return json.dumps([asdict(s) for s in specs])


def specs_from_json(text: str) -> list[ServiceSpec]:
    out = []
    for d in json.loads(text):
        h = d.pop("health")
        health = HealthCheck(**{k: _tuples(v) for k, v in h.items()}) if h else None
        out.append(ServiceSpec(**{f.name: _tuples(d[f.name]) for f in fields(ServiceSpec) if f.name != "health"},
                               health=health))
    return out


def watch_spec(ctx: Context, alloc: slurm.Allocation) -> ServiceSpec:
    retire = parse_duration(ctx.facility.slurm.retire_before)
    port = dask.port(ctx.base, "walltime")
    argv = (sys.executable, "-m", "afbox.walltime", "--facility", ctx.facility.name, "--job", alloc.job_id,
            "--retire-before", f"{retire:g}", "--port", str(port))
    env = tuple((k, v) for k in ("XDG_STATE_HOME", "SLURM_CONF") if (v := os.environ.get(k)))
    return ServiceSpec(name=WATCH, argv=argv, env=(*env, *dask.tls_env(ctx, client=True)), ports=(("health", port),),
                       health=HealthCheck("http", host="127.0.0.1", port=port, path="/health"),
                       needs=(dask.SCHEDULER,), needs_state="started")


def place(ctx: Context, specs: list[ServiceSpec], alloc: slurm.Allocation) -> list[ServiceSpec]:
    """Pure: the local-style specs (already in the runtime, if any) with every per-worker service
    replaced by one srun step, whose tasks each wrap their worker, plus the walltime watcher."""
    head = [s for s in specs if not s.name.startswith(("dask-worker-", "dask-gpu-"))]
    return [*head, workers_spec(ctx, alloc), watch_spec(ctx, alloc)]


def ssh_line(alloc: slurm.Allocation, address: str, port: int) -> str:
    login = alloc.submit_host or "LOGIN-NODE"
    return f"ssh -L {port}:{address}:{port} {login}"


class SlurmBackend(LocalBackend):
    name = "slurm"

    def __init__(self, state: FacilityState):
        super().__init__(state)
        self.alloc: slurm.Allocation | None = None
        self.ctx: Context | None = None
        # the head's specs as `up` placed them: `update` keeps them as they are (afbox cluster up/down
        # run outside the allocation's environment, where the placement could not be made again)
        self.head_file = state.run / "slurm-head-specs.json"

    # -- hooks lifecycle.up calls before rendering -------------------------------------------
    def adapt(self, fac: Facility) -> Facility:
        """The allocation decides: the address other nodes reach, sizes per node, GPUs per node."""
        self.alloc = slurm.detect()
        if self.alloc is None:
            raise AfboxError("the slurm backend runs inside a SLURM allocation (SLURM_JOB_ID is not set)",
                             hint="run it under salloc/sbatch, or submit one: afbox up --slurm -N 2 -t 1:00:00")
        if fac.runtime.kind == "apptainer":
            from ..runtimes import check as check_runtime
            from ..run import require
            check_runtime(fac.runtime)
            require("apptainer")
        fac = fac.model_copy(deep=True)
        if "bind" not in fac.facility.model_fields_set:
            fac.facility.bind = head_address(self.alloc, fac.slurm.interface)
        fac.dask.gpus = 0  # GPU workers come from the allocation's GPUs per node, in the srun step
        return fac

    def host(self) -> Host:
        from .. import host as hostmod
        real = hostmod.detect()
        a = self.alloc
        real.cpus = max(1, a.cpus_per_node - a.gpus_per_node)
        real.memory = a.memory_per_node or real.memory
        return real

    def place(self, ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]:
        self.ctx = ctx
        return place(ctx, specs, self.alloc)

    # -- up / down ---------------------------------------------------------------------------
    def up(self, specs: list[ServiceSpec], timeout: float) -> Iterator[ev.Event]:
        a, ctx = self.alloc, self.ctx
        sched = next(s for s in specs if s.name == dask.SCHEDULER)
        cpu_workers = ctx.dask.workers
        if ctx.facility.runtime.kind != "none":
            for d in binds(ctx):  # apptainer refuses bind sources that do not exist
                Path(d).mkdir(parents=True, exist_ok=True)
        update_job(self.state, job_id=a.job_id, allocation=a.to_dict(), end=slurm.end_time(a.job_id),
                   job_state="RUNNING", warning=None, ended=None, cpu_workers=cpu_workers, threads=ctx.dask.threads,
                   worker_step=list(launcher(ctx, a.gpus_per_node)), worker_env=dict(worker_env(ctx)))
        yield ev.Event(ev.INFO, "", f"slurm: job {a.job_id}, {len(a.nodes)} node(s) {','.join(a.nodes)}; "
                                    f"{cpu_workers + a.gpus_per_node} worker(s) per node")
        self.state.ensure()
        self.head_file.write_text(specs_to_json(specs))
        yield from super().up(specs, timeout)
        names = worker_names(a.job_id, a.nodes, cpu_workers, a.gpus_per_node)
        self._wait_workers(sched, names, timeout)
        yield ev.Event(ev.HEALTHY, WORKERS, f"{len(names)} workers on {len(a.nodes)} node(s): "
                                            f"{', '.join(a.nodes)}")
        jup = next((s for s in specs if s.name == "jupyter" and not s.unavailable), None)
        if jup:
            port = next(iter(dict(jup.ports).values()))
            yield ev.Event(ev.INFO, "", f"from your laptop: {ssh_line(a, sched.health.host, port)}  "
                                        f"then open the JupyterLab URL below with localhost:{port}")

    def _wait_workers(self, sched: ServiceSpec, names: list[str], timeout: float) -> None:
        """Until every task of the step has joined the scheduler; else stop everything, with the log."""
        end = time.monotonic() + timeout
        missing = list(names)
        while missing:
            missing = [n for n in missing if not check(HealthCheck(
                "dask-worker", host=sched.health.host, port=sched.health.port, path="/json/identity.json",
                headers=(("worker-name", n), *dask.bearer(self.state))))[0]]
            if not missing:
                break
            states = {i["name"]: i["statename"] for i in self.sup.all_info()}
            if states.get(WORKERS) in ("FATAL", "EXITED") or time.monotonic() > end:
                self._stop_everything()
                raise ServiceFailed(WORKERS, f"workers {', '.join(missing)} did not join the scheduler",
                                    tail(self.log_path(WORKERS)), str(self.log_path(WORKERS)))
            time.sleep(0.3)

    def update(self, specs: list[ServiceSpec], timeout: float) -> Iterator[ev.Event]:
        """Add or remove named clusters: specs is the whole facility as the caller renders it (its
        default cluster per worker, as on local); the head runs on exactly as `up` placed it, and
        every other spec (a named cluster's scheduler and its srun step) is started or stopped."""
        try:
            head = specs_from_json(self.head_file.read_text())
        except (OSError, ValueError) as e:
            raise AfboxError(f"facility {self.state.name!r}: its placed services are not on record ({e})",
                             hint="restart it: afbox down, then afbox up") from None
        default = ("dask-worker-", "dask-gpu-")
        if sum(s.name.startswith("dask-worker-") for s in specs) != read_job(self.state).get("cpu_workers"):
            raise AfboxError("on SLURM, workers come per node of the allocation",
                             hint="add worker-only jobs with: afbox scale --jobs K")
        names = {s.name for s in head}
        extra = [s for s in specs if s.name not in names and not s.name.startswith(default)]
        yield from super().update(head + extra, timeout)

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

    # -- the job, for status -----------------------------------------------------------------
    def status_extra(self, rec: dict | None) -> dict:
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
