"""dask-scheduler and one supervised dask-worker-N per worker (each with its nanny), plus one
single-threaded worker per GPU."""
from __future__ import annotations

from dataclasses import dataclass

from ..facility import Facility
from ..ports import PER_WORKER, WORKER_FIRST, port
from ..spec import Expose, HealthCheck, ServiceSpec
from .context import Context

NAME = SCHEDULER = "dask-scheduler"
WORKER, GPU_WORKER = "dask-worker", "dask-gpu"   # groups of identical workers
DASHBOARD_SUBDOMAIN = "dask"                      # where people reach the dashboard behind an ingress
PRELOAD = "afbox.plugins.dask_dashboard"


@dataclass(frozen=True)
class Place:
    """Where one Dask cluster's parts run: the facility's own cluster, or a named one whose
    scheduler and workers come from another software environment (afbox cluster up)."""
    scheduler: str               # the scheduler's service name
    bin_dir: str                 # where its `dask` command comes from
    scheduler_port: int
    dashboard_port: int
    first_worker_port: int       # workers take PER_WORKER ports each from here
    extra_args: tuple[str, ...] = ()
    worker_group: str = WORKER


def enabled(fac: Facility) -> bool:
    return True


def default_place(ctx: Context) -> Place:
    return Place(SCHEDULER, ctx.bin_dir, port(ctx.base, "scheduler"), port(ctx.base, "dashboard"),
                 ctx.base + WORKER_FIRST, tuple(ctx.facility.dask.extra_args))


def address(ctx: Context, scheduler_port: int) -> str:
    scheme = "tls" if ctx.dask_tls else "tcp"
    return f"{scheme}://{ctx.bind}:{scheduler_port}"


def scheduler_address(ctx: Context) -> str:
    return address(ctx, port(ctx.base, "scheduler"))


def tls_args(ctx: Context) -> tuple[str, ...]:
    t = ctx.dask_tls
    if not t:
        return ()
    return ("--protocol", "tls", "--tls-ca-file", t["ca"], "--tls-cert", t["cert"], "--tls-key", t["key"])


def tls_env(ctx: Context, client: bool = False) -> tuple[tuple[str, str], ...]:
    """Dask config as environment: encryption required; for clients also their certificate."""
    t = ctx.dask_tls
    if not t:
        return ()
    env = [("DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION", "True"), ("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", t["ca"])]
    if client:
        env += [("DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT", t["cert"]),
                ("DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY", t["key"])]
    return tuple(env)


def dashboard_url(ctx: Context) -> str:
    return f"http://{ctx.bind}:{port(ctx.base, 'dashboard')}/status"


def guarded(ctx: Context, pl: Place) -> bool:
    """With [auth] every dashboard asks for a facility token, also a named cluster's: its environment
    holds what the check needs (afbox adds it; `cluster up` refuses an image without it)."""
    return ctx.facility.auth.enabled


def guard(ctx: Context, pl: Place) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Extra argv and env that put the token check in front of a scheduler's or worker's dashboard."""
    if not guarded(ctx, pl):
        return (), ()
    from .issuer import validator_env
    return ("--preload", PRELOAD), validator_env(ctx)


def auth_headers(ctx: Context) -> tuple[tuple[str, str], ...]:
    """What a health check of a dashboard presents: the owner's token, read at check time
    (harmless where the dashboard asks for nothing)."""
    return (("bearer-file", str(ctx.token_file)),) if ctx.facility.auth.enabled else ()


def bearer(state) -> tuple[tuple[str, str], ...]:
    """The same for checks made outside rendering, from the facility's state."""
    return (("bearer-file", str(state.token_file)),) if state.token_file.exists() else ()


def joined_check(host: str, dashboard_port: int, worker_name: str, auth: tuple = ()) -> HealthCheck:
    """Healthy once the scheduler (its dashboard's identity) lists the worker of this name."""
    return HealthCheck("dask-worker", host=host, port=dashboard_port, path="/json/identity.json",
                       headers=(("worker-name", worker_name), *auth))


def render(ctx: Context) -> list[ServiceSpec]:
    cpu = [worker(ctx, i) for i in range(ctx.dask.workers)]
    gpu = [gpu_worker(ctx, k, dev) for k, dev in enumerate(ctx.gpus)]
    return [scheduler(ctx), *cpu, *gpu]


def scheduler(ctx: Context, place: Place | None = None) -> ServiceSpec:
    pl = place or default_place(ctx)
    dash = pl.dashboard_port
    guard_args, guard_env = guard(ctx, pl)
    argv = (f"{pl.bin_dir}/dask", "scheduler", "--host", ctx.bind, "--port", str(pl.scheduler_port),
            "--dashboard-address", f"{ctx.bind}:{dash}", "--no-show", *tls_args(ctx), *guard_args,
            *pl.extra_args)
    own = pl.scheduler == SCHEDULER
    return ServiceSpec(
        name=pl.scheduler, argv=argv,
        ports=(("scheduler", pl.scheduler_port), ("dashboard", dash)),
        health=HealthCheck("http", host=ctx.bind, port=dash, path="/health"),
        urls=(("scheduler", address(ctx, pl.scheduler_port)), ("dashboard", f"http://{ctx.bind}:{dash}/status")),
        cpus=0.5, env=(*tls_env(ctx), *guard_env), primary="scheduler", singleton=True, background=True,
        links=(("scheduler", "scheduler"), ("dashboard", "dashboard")) if own else (),
        expose=(Expose("dashboard", DASHBOARD_SUBDOMAIN, "dashboard", "/status"),) if own else (),
    )


def worker_command(ctx: Context, pl: Place, threads: int, scheduler: str | None = None, *,
                   name: tuple[str, ...] = (), where: tuple[str, ...] = (),
                   extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """`dask worker` joining pl's scheduler (or `scheduler`) with the facility's size, TLS and token
    check. name and where (host, ports, scratch) are left out where a launcher adds them per task."""
    guard_args, _ = guard(ctx, pl)
    return (f"{pl.bin_dir}/dask", "worker", scheduler or address(ctx, pl.scheduler_port), *name,
            "--nworkers", "1", "--nthreads", str(threads), "--memory-limit", str(ctx.dask.memory_limit), "--nanny",
            *where, *tls_args(ctx), *guard_args, *extra)


def worker_env(ctx: Context, pl: Place) -> tuple[tuple[str, str], ...]:
    return (("OMP_NUM_THREADS", "1"), ("MALLOC_TRIM_THRESHOLD_", "65536"), *tls_env(ctx, client=True),
            *ctx.data_env, *guard(ctx, pl)[1])


def gpu_worker(ctx: Context, k: int, dev) -> ServiceSpec:
    """One single-threaded worker per GPU (or MIG instance), pinned to it by UUID where it has one."""
    return worker(ctx, ctx.dask.workers + k, name=f"{GPU_WORKER}-{k}", worker_name=f"gpu-{k}", threads=1,
                  extra=("--resources", "GPU=1"), group=GPU_WORKER, gpu=dev.vendor, env=gpu_env(dev))


def gpu_env(dev) -> tuple[tuple[str, str], ...]:
    """What shows a worker exactly this device, whatever it inherits from afbox's own environment."""
    pin = dev.pin
    if pin is None:  # a record written before pins: render its workers exactly as they run
        return (("ROCR_VISIBLE_DEVICES" if dev.vendor == "amd" else "CUDA_VISIBLE_DEVICES",
                 dev.uuid or str(dev.gpu_index)),)
    if dev.vendor == "amd":
        # HIP counts HIP_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES among the devices ROCr left: an
        # inherited one would point past the single device, so name that one.
        return (("ROCR_VISIBLE_DEVICES", pin), ("HIP_VISIBLE_DEVICES", "0"))
    if pin.isdigit():  # only a GPU without a UUID: count as nvidia-smi does, not fastest first
        return (("CUDA_VISIBLE_DEVICES", pin), ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"))
    return (("CUDA_VISIBLE_DEVICES", pin),)


def worker(ctx: Context, index: int, name: str | None = None, worker_name: str | None = None,
           threads: int | None = None, extra: tuple[str, ...] = (), place: Place | None = None,
           group: str | None = None, gpu: str = "", env: tuple[tuple[str, str], ...] = ()) -> ServiceSpec:
    pl = place or default_place(ctx)
    name = name or f"{pl.worker_group}-{index + 1}"
    worker_name = worker_name or name
    threads = threads or ctx.dask.threads
    first = pl.first_worker_port + PER_WORKER * index
    p = {"nanny": first, "worker": first + 1, "worker-dashboard": first + 2}
    local_dir = ctx.state.run / name
    where = ("--host", ctx.bind, "--nanny-port", str(p["nanny"]), "--worker-port", str(p["worker"]),
             "--dashboard-address", f"{ctx.bind}:{p['worker-dashboard']}", "--local-directory", str(local_dir))
    argv = worker_command(ctx, pl, threads, name=("--name", worker_name), where=where, extra=extra)
    return ServiceSpec(
        name=name, argv=argv, ports=tuple(p.items()), needs=(pl.scheduler,), needs_state="started",
        # Healthy only once the scheduler lists it, not merely when the process runs.
        health=joined_check(ctx.bind, pl.dashboard_port, worker_name, auth_headers(ctx)),
        cpus=1 if gpu else threads, memory=ctx.dask.memory_limit, state_dirs=(str(local_dir),),
        env=(*worker_env(ctx, pl), *env), replica_of=group or pl.worker_group, gpu=gpu,
        task=worker_command(ctx, pl, threads), background=True,
    )
