"""Named Dask clusters (afbox cluster up/list/down): a scheduler and workers from a named software
environment, placed by the facility's backend beside its default cluster, with the same TLS and
data credentials, supervised and stopped by `afbox down` like every other service.

Named cluster i takes the ports port_base + NAMED_FIRST + NAMED_PER * i onwards: scheduler,
dashboard, then PER_WORKER ports for each worker. The facility's state record keeps each cluster
under "clusters" and its services under "services", so `status` shows them and `scale` keeps them.
An image environment's scheduler and workers run through the runtime wrapper (apptainer exec). On
the slurm backend the scheduler runs on the head node and the workers are one srun step across the
allocation, so the environment must sit on a path every node sees (checked before they start).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Iterator

from . import backends, envs, events as ev, lifecycle, services
from .errors import AfboxError
from .facility import Facility, RuntimeSection
from .naming import resolve_name
from .ports import NAMED_FIRST, NAMED_PER, PER_WORKER
from .run import run
from .runtimes import binds, wrap_specs
from .services import dask
from .services.context import Context
from .spec import ServiceSpec
from .state import FacilityState

MAX_WORKERS = (NAMED_PER - 2) // PER_WORKER
MAX_CLUSTERS = 20
# what distributed itself requires to match between client, scheduler and workers, and numpy
MUST_MATCH = ("python", "dask", "distributed", "msgpack", "cloudpickle", "toolz", "tornado", "numpy")
STACK = ("import json, platform, dask, distributed;"
         "print(json.dumps({'python': platform.python_version(), 'dask': dask.__version__,"
         " 'distributed': distributed.__version__}))")
# run by the environment's own python: a client of the same stack asks every part for its versions
VERSIONS = """
import json, sys
import distributed
with distributed.Client(sys.argv[1], timeout=30) as c:
    c.wait_for_workers(int(sys.argv[2]), timeout=60)
    v = c.get_versions()
print(json.dumps({"client": v["client"]["packages"], "scheduler": v["scheduler"]["packages"],
                  "workers": {a: w["packages"] for a, w in v["workers"].items()}}))
"""


# -- pure ------------------------------------------------------------------------------------
def scheduler_service(cluster: str) -> str:
    return f"cluster-{cluster}-scheduler"


def worker_service(cluster: str, k: int) -> str:
    return f"cluster-{cluster}-worker-{k + 1}"


def place(ctx: Context, cluster: str, index: int, bin_dir: str) -> dask.Place:
    first = ctx.base + NAMED_FIRST + NAMED_PER * index
    return dask.Place(scheduler_service(cluster), bin_dir, first, first + 1, first + 2)


def steps_service(cluster: str) -> str:
    """On SLURM: the one srun step holding all of a named cluster's workers."""
    return f"cluster-{cluster}-workers"


def runtime(entry: dict) -> RuntimeSection:
    """An image environment runs in its image; any other from its own bin dir, as it is."""
    return RuntimeSection(kind="apptainer", image=entry["image"]) if entry.get("image") else RuntimeSection()


def render(ctx: Context, cluster: str, entry: dict, backend: str = "local") -> list[ServiceSpec]:
    """The services of one named cluster, from its record entry (index, workers, threads, bin_dir,
    image): scheduler and per-worker services, or on SLURM scheduler and one srun step."""
    pl = place(ctx, cluster, entry["index"], entry["bin_dir"])
    rt = runtime(entry)
    sched = dask.scheduler(ctx, pl)
    if backend == "slurm":
        from .backends import slurm as slurm_backend
        sched = wrap_specs(rt, [sched], binds=binds(ctx), bin_dir=entry["bin_dir"])[0]
        step = slurm_backend.named_workers_spec(
            ctx, slurm_backend.recorded_allocation(ctx.state), sched, service=steps_service(cluster),
            prefix=f"cluster-{cluster}-", bin_dir=entry["bin_dir"], workers=entry["workers"],
            threads=entry["threads"], runtime=rt)
        return [sched, step]
    specs = [sched, *(dask.worker(ctx, k, name=worker_service(cluster, k), threads=entry["threads"], place=pl)
                      for k in range(entry["workers"]))]
    return wrap_specs(rt, specs, binds=binds(ctx), bin_dir=entry["bin_dir"])


def recorded_specs(ctx: Context, rec: dict) -> list[ServiceSpec]:
    backend = rec.get("backend", "local")
    return [s for name, entry in sorted((rec.get("clusters") or {}).items())
            for s in render(ctx, name, entry, backend)]


def mismatches(report: dict) -> list[str]:
    """Packages whose versions differ between the client, the scheduler and any worker."""
    parts = {"client": report["client"], "scheduler": report["scheduler"],
             **{f"worker {a}": p for a, p in report["workers"].items()}}
    out = []
    for pkg in MUST_MATCH:
        seen = {who: p.get(pkg) for who, p in parts.items()}
        if len(set(seen.values())) > 1:
            out.append(f"{pkg}: " + ", ".join(f"{who} {v or 'missing'}" for who, v in seen.items()))
    return out


def kernel_env(entry: dict) -> dict[str, str]:
    """What a kernel of the cluster's environment needs to reach it with a bare Client()."""
    return {"AFBOX_SCHEDULER": entry["address"], "DASK_SCHEDULER_ADDRESS": entry["address"],
            "AFBOX_CLUSTER": entry["name"], "DASK_DISTRIBUTED__DASHBOARD__LINK": entry["dashboard"]}


# -- against the running facility ---------------------------------------------------------------
def _running(name: str | None):
    state = FacilityState(resolve_name(name))
    rec = state.read()
    be = backends.get((rec or {}).get("backend", "local"), state)
    if not rec or not be.running():
        raise AfboxError(f"facility {state.name!r} is not running", hint="start it with: afbox up")
    return state, rec, be


def _context(rec: dict) -> Context:
    """The running facility's context, rendering its services exactly as they run (see scale)."""
    from .gpu_model import Device
    fac = Facility.model_validate(rec["spec"])
    fac.dask.workers = rec["dask"]["workers"]
    fac.dask.threads_per_worker = rec["dask"]["threads"]
    fac.dask.memory_limit = str(rec["dask"]["memory_limit"])
    devices = tuple(Device(**d) for d in (rec.get("gpus") or {}).get("workers", {}).values())
    return lifecycle.context(fac, gpus=devices)


def stack_versions(env: envs.Env) -> dict:
    """python, dask and distributed of the environment, asked of its own python; refuses without them."""
    try:
        return json.loads(run([*env.python_argv(), "-c", STACK], timeout=120).stdout.strip().splitlines()[-1])
    except AfboxError as e:
        raise AfboxError(f"environment {env.name!r} has no working dask and distributed", details=e.details,
                         hint=f"recreate it (afbox env rm {env.name}; afbox env create {env.name} ...)") from None


def on_every_node(ctx: Context, env: envs.Env) -> None:
    """The environment's python, run once on each node of the allocation: a node that cannot see the
    environment (not on a shared filesystem) is named with SLURM's own words, before anything starts."""
    from .backends.slurm import recorded_allocation
    alloc = recorded_allocation(ctx.state)
    n = len(alloc.nodes)
    argv = ["srun", f"--jobid={alloc.job_id}", "--overlap", f"--nodes={n}", f"--ntasks={n}", "--ntasks-per-node=1",
            "--kill-on-bad-exit=1", f"--job-name=afbox-{ctx.facility.name}-check", *env.python_argv(binds(ctx)),
            "-c", "import distributed"]
    try:
        run(argv, timeout=120)
    except AfboxError as e:
        raise AfboxError(f"environment {env.name!r} is not usable on every node of SLURM job {alloc.job_id}",
                         details=e.details, hint=f"on SLURM an environment must sit on a path every node sees: "
                                                 f"put the data dir on a shared filesystem (XDG_DATA_HOME; now "
                                                 f"{envs.envs_root()}) and create the environment again") from None


def verify(ctx: Context, env: envs.Env, address: str, workers: int) -> dict:
    """Client (the environment's python), scheduler and workers must run the same stack."""
    tls = dict(dask.tls_env(ctx, client=True))
    try:
        out = run([*env.python_argv(binds(ctx)), "-c", VERSIONS, address, str(workers)], timeout=150,
                  env=tls).stdout.strip().splitlines()[-1]
    except AfboxError as e:
        raise AfboxError(f"a client from environment {env.name!r} could not use the new cluster",
                         details=e.details) from None
    report = json.loads(out)
    bad = mismatches(report)
    if bad:
        raise AfboxError(f"versions differ between client, scheduler and workers of environment {env.name!r}",
                         details=bad, hint="the cluster was stopped; rebuild the environment")
    return report


def sync_kernels(state: FacilityState, rec: dict, ctx: Context | None = None) -> None:
    """The facility's own kernelspecs: one per environment with a running cluster, holding its address;
    they come first on the facility's JUPYTER_PATH, so they shadow the plain ones. An image's kernel
    also sees the facility's dirs (ctx)."""
    root = envs.facility_kernels(state.dir)
    wanted = {}
    for name, entry in sorted((rec.get("clusters") or {}).items()):
        wanted[envs.kernel_name(entry["env"])] = (entry, name)
    for d in root.glob("afbox-*") if root.exists() else ():
        if d.name not in wanted:
            shutil.rmtree(d, ignore_errors=True)
    for kname, (entry, name) in wanted.items():
        try:
            env = envs.get(entry["env"])
        except AfboxError:
            continue
        envs.write_kernelspec(env, root, kernel_env({**entry, "name": name}), binds(ctx) if ctx else ())


def up(facility: str | None, cluster: str, env_name: str, workers: int, threads: int | None = None
       ) -> Iterator[ev.Event]:
    envs.check_name(cluster)
    if not 1 <= workers <= MAX_WORKERS:
        raise AfboxError(f"a named cluster has 1 to {MAX_WORKERS} workers, not {workers}")
    state, rec, be = _running(facility)
    if be.name not in ("local", "slurm"):
        raise AfboxError(f"named clusters run on the local and slurm backends, not on {be.name}",
                         hint="start the facility with --backend local, or use its default cluster")
    env = envs.get(env_name)
    clusters = rec.get("clusters") or {}
    if cluster in clusters:
        c = clusters[cluster]
        if c["digest"] != env.digest:
            raise AfboxError(f"cluster {cluster!r} is already up with environment {c['env']!r}",
                             hint=f"stop it first: afbox cluster down {cluster}")
        yield ev.Event(ev.INFO, "", f"cluster {cluster!r} is already up: {c['address']}")
        return
    free = sorted(set(range(MAX_CLUSTERS)) - {c["index"] for c in clusters.values()})
    if not free:
        raise AfboxError(f"at most {MAX_CLUSTERS} named clusters per facility")
    v = stack_versions(env)
    yield ev.Event(ev.INFO, "", f"environment {env.name!r}: python {v['python']}, dask {v['dask']}, "
                                f"distributed {v['distributed']}")
    t0 = time.monotonic()
    ctx = _context(rec)
    entry = {"env": env.name, "digest": env.digest, "index": free[0], "workers": workers,
             "threads": threads or rec["dask"]["threads"], "bin_dir": str(env.bin_dir), "started": time.time(),
             **({"image": str(env.image)} if env.image else {})}
    new = render(ctx, cluster, entry, be.name)
    running = services.render(ctx) + recorded_specs(ctx, rec)
    lifecycle.preflight(ctx, new)
    lifecycle.prepare_dirs(new)
    if env.image:
        for d in binds(ctx):  # apptainer refuses bind sources that do not exist
            Path(d).mkdir(parents=True, exist_ok=True)
    if be.name == "slurm":
        yield ev.Event(ev.INFO, "", "checking that every node of the allocation sees the environment ...")
        on_every_node(ctx, env)
    try:
        yield from be.update(running + new, timeout=ctx.facility.facility.start_timeout)
        entry.update(address=new[0].url_dict["scheduler"], dashboard=new[0].url_dict["dashboard"])
        yield ev.Event(ev.INFO, "", "checking client, scheduler and worker versions ...")
        verify(ctx, env, entry["address"], workers)
    except BaseException:
        for _ in be.update(running, timeout=30):
            pass
        raise
    entry.update(versions=v, start_seconds=round(time.monotonic() - t0, 1))
    rec = state.read() or rec
    rec.setdefault("clusters", {})[cluster] = entry
    rec["services"].update(lifecycle.record(ctx, new, be.name)["services"])
    state.write(rec)
    sync_kernels(state, rec, ctx)
    yield ev.Event(ev.INFO, "", f"cluster {cluster!r} is up ({entry['start_seconds']:.1f}s): {entry['address']}, "
                                f"{workers} worker(s), dashboard {entry['dashboard']}")


def down(facility: str | None, cluster: str) -> Iterator[ev.Event]:
    state, rec, be = _running(facility)
    clusters = dict(rec.get("clusters") or {})
    if cluster not in clusters:
        known = ", ".join(sorted(clusters)) or "none"
        raise AfboxError(f"no named cluster {cluster!r} in facility {state.name!r}", hint=f"named clusters: {known}")
    entry = clusters.pop(cluster)
    ctx = _context(rec)
    keep = services.render(ctx) + recorded_specs(ctx, {"clusters": clusters})
    yield from be.update(keep, timeout=ctx.facility.facility.start_timeout)
    for s in render(ctx, cluster, entry, be.name):
        rec["services"].pop(s.name, None)
    rec["clusters"] = clusters
    state.write(rec)
    sync_kernels(state, rec, ctx)
    yield ev.Event(ev.INFO, "", f"cluster {cluster!r} stopped; environment {entry['env']!r} stays")


def listing(facility: str | None) -> list[dict]:
    """The default cluster and the named ones: name, address, workers running/wanted, environment."""
    import distributed

    state, rec, be = _running(facility)
    states = {s.name: s.state for s in be.status()}
    svc = rec["services"]
    default_workers = [n for n in svc if n.startswith(("dask-worker-", "dask-gpu-"))]
    rows = [{"name": "default", "address": svc.get("dask-scheduler", {}).get("urls", {}).get("scheduler", "-"),
             "workers": sum(states.get(n) == "running" for n in default_workers), "wanted": len(default_workers),
             "env": f"(afbox's own: distributed {distributed.__version__})"}]
    for name, c in sorted((rec.get("clusters") or {}).items()):
        names = [worker_service(name, k) for k in range(c["workers"])]
        running = sum(states.get(n) == "running" for n in names)
        if be.name == "slurm":  # one srun step for all of them
            running = c["workers"] if states.get(steps_service(name)) == "running" else 0
        rows.append({"name": name, "address": c["address"], "workers": running,
                     "wanted": c["workers"], "env": f"{c['env']} (distributed {c['versions']['distributed']})",
                     "dashboard": c["dashboard"]})
    return rows
