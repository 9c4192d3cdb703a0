"""Where a SLURM facility's services run (pure, given the allocation): the head services as they
are, each group of Dask worker replicas as one srun step whose tasks complete their own command
(afbox.backends.slurm.worker_task), and the walltime watcher."""
from __future__ import annotations

import socket
import sys

import psutil

from ...errors import AfboxError
from ...runtimes import apptainer, binds
from ...services import dask
from ...services.context import Context
from ...spec import HealthCheck, ServiceSpec
from ...units import parse_duration
from . import commands as slurm

WORKERS = "dask-workers"
WATCH = "walltime"
DEFAULT_GROUPS = (dask.WORKER, dask.GPU_WORKER)  # the facility's own cluster: per node, GPUs first


def allocation(ctx: Context) -> slurm.Allocation:
    a = ctx.site.get("allocation")
    if not a:
        raise AfboxError(f"facility {ctx.facility.name!r} has no SLURM allocation on record",
                         hint="is it running? afbox status")
    return slurm.Allocation(**{**a, "nodes": tuple(a["nodes"])})


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


def launcher(ctx: Context, gpus: int, *, task: tuple[str, ...] = (), scheduler: str | None = None,
             image: str | None = None, prefix: str = "") -> tuple[str, ...]:
    """The per-task launcher and the (container-wrapped) worker command it completes; by default
    the facility's own cluster's."""
    fac = ctx.facility
    scheduler = scheduler or dask.scheduler_address(ctx)
    task = task or dask.worker_command(ctx, dask.default_place(ctx), ctx.dask.threads)
    image = image if image is not None else (fac.runtime.image if fac.runtime.kind != "none" else None)
    if image:
        task = apptainer.exec_argv(image, apptainer.inner(task, task[0].rpartition("/")[0]), binds=binds(ctx),
                                   gpus=gpus > 0)
    return (sys.executable, "-m", "afbox.backends.slurm.worker_task", "--scheduler", scheduler, "--gpus", str(gpus),
            *(("--name-prefix", prefix) if prefix else ()),
            *(("--interface", fac.slurm.interface) if fac.slurm.interface else ()), "--", *task)


def worker_names(job_id: str, nodes: tuple[str, ...], cpu_workers: int, gpus: int) -> list[str]:
    """The names the launcher gives (see afbox.backends.slurm.worker_task): GPU tasks first on each node."""
    per = [f"gpu-{k}" for k in range(gpus)] + [str(k) for k in range(gpus, gpus + cpu_workers)]
    return [f"{job_id}-{n}-{p}" for n in nodes for p in per]


def cyclic_names(job_id: str, nodes: tuple[str, ...], workers: int, prefix: str) -> list[str]:
    """The launcher's names for `workers` tasks dealt round the nodes (srun --distribution=cyclic)."""
    return [f"{prefix}{job_id}-{nodes[t % len(nodes)]}-{t // len(nodes)}" for t in range(workers)]


def workers_spec(ctx: Context, alloc: slurm.Allocation, first: ServiceSpec | None = None) -> ServiceSpec:
    """The facility's own workers: per node its CPU workers and one per GPU, all one srun step."""
    n = len(alloc.nodes)
    ntasks = ctx.dask.workers + alloc.gpus_per_node
    # --overlap: the step shares the allocation with others (scale, the user's own srun);
    # --overcommit: SLURM may have granted fewer CPUs than workers*threads (threads are Dask's).
    step = ("srun", f"--jobid={alloc.job_id}", "--overlap", "--overcommit", f"--nodes={n}",
            f"--ntasks={n * ntasks}", f"--ntasks-per-node={ntasks}", "--kill-on-bad-exit=0",
            f"--job-name=afbox-{ctx.facility.name}-workers",
            *launcher(ctx, alloc.gpus_per_node, task=first.task if first else ()))
    last = worker_names(alloc.job_id, alloc.nodes, ctx.dask.workers, alloc.gpus_per_node)[-1]
    health = dask.joined_check(ctx.bind, dask.port(ctx.base, "dashboard"), last, dask.auth_headers(ctx))
    env = first.env if first else dask.worker_env(ctx, dask.default_place(ctx))
    return ServiceSpec(name=WORKERS, argv=step, needs=(dask.SCHEDULER,), needs_state="started", health=health,
                       env=env, cpus=ctx.dask.workers * ctx.dask.threads, stop_signal="TERM")


def group_step(ctx: Context, alloc: slurm.Allocation, sched: ServiceSpec, members: list[ServiceSpec]) -> ServiceSpec:
    """Another cluster's workers (a named cluster's): one srun step of as many tasks as it has
    workers, dealt round the allocation's nodes, each running the group's task joining sched."""
    group = members[0].replica_of
    service, prefix = f"{group}s", group.removesuffix("worker")
    workers = len(members)
    nodes = alloc.nodes[:workers]
    step = ("srun", f"--jobid={alloc.job_id}", "--overlap", "--overcommit", f"--nodes={len(nodes)}",
            f"--nodelist={','.join(nodes)}", f"--ntasks={workers}", "--distribution=cyclic", "--kill-on-bad-exit=0",
            f"--job-name=afbox-{ctx.facility.name}-{service}",
            *launcher(ctx, 0, task=members[0].task, scheduler=sched.url_dict["scheduler"],
                      image=members[0].image or "", prefix=prefix))
    last = cyclic_names(alloc.job_id, nodes, workers, prefix)[-1]
    health = dask.joined_check(sched.health.host, sched.port_dict["dashboard"], last, dask.auth_headers(ctx))
    return ServiceSpec(name=service, argv=step, needs=(sched.name,), needs_state="started", health=health,
                       env=members[0].env, cpus=sum(m.cpus for m in members), stop_signal="TERM")


def watch_spec(ctx: Context, alloc: slurm.Allocation) -> ServiceSpec:
    retire = parse_duration(ctx.facility.slurm.retire_before)
    port = dask.port(ctx.base, "walltime")
    argv = (sys.executable, "-m", "afbox.backends.slurm.walltime", "--facility", ctx.facility.name,
            "--job", alloc.job_id, "--retire-before", f"{retire:g}", "--port", str(port))
    env = tuple(sorted(ctx.site.get("env", {}).items()))
    return ServiceSpec(name=WATCH, argv=argv, env=(*env, *dask.tls_env(ctx, client=True)), ports=(("health", port),),
                       health=HealthCheck("http", host="127.0.0.1", port=port, path="/health"),
                       needs=(dask.SCHEDULER,), needs_state="started")


def place(ctx: Context, specs: list[ServiceSpec], alloc: slurm.Allocation | None = None) -> list[ServiceSpec]:
    """Pure: the local-style specs (already in the runtime, if any) with every group of worker
    replicas replaced by one srun step, plus the walltime watcher."""
    alloc = alloc or allocation(ctx)
    by_name = {s.name: s for s in specs}
    groups: dict[str, list[ServiceSpec]] = {}
    for s in specs:
        if s.replica_of and s.task:
            groups.setdefault(s.replica_of, []).append(s)
    head = [s for s in specs if not (s.replica_of and s.task)]
    out = [*head]
    if any(g in groups for g in DEFAULT_GROUPS) or dask.SCHEDULER in by_name:
        out.append(workers_spec(ctx, alloc, (groups.get(dask.WORKER) or [None])[0]))
    for group, members in groups.items():
        if group not in DEFAULT_GROUPS:
            out.append(group_step(ctx, alloc, by_name[members[0].needs[0]], members))
    return [*out, watch_spec(ctx, alloc)]


def ssh_line(alloc: slurm.Allocation, address: str, port: int) -> str:
    login = alloc.submit_host or "LOGIN-NODE"
    return f"ssh -L {port}:{address}:{port} {login}"
