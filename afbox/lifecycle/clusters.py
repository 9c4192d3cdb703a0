"""Named Dask clusters (afbox cluster up/list/down): a scheduler and workers from a named software
environment, placed by the facility's backend beside its default cluster, with the same TLS and
data credentials, supervised and stopped by `afbox down` like every other service.

Named cluster i takes the ports port_base + NAMED_FIRST + NAMED_PER * i onwards: scheduler,
dashboard, then PER_WORKER ports for each worker. The facility's record keeps each cluster under
"clusters" and its services under "services", so `status` shows them and `scale` keeps them.
An image environment's scheduler and workers run through the runtime wrapper (apptainer exec).
Where the backend starts workers itself (SLURM: one srun step across the allocation) it places
them; the environment must then be usable where they run (the backend checks that first).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Iterator

from .. import envs, events as ev, record, services
from ..errors import AfboxError
from ..facility import RuntimeSection
from ..ports import NAMED_FIRST, NAMED_PER, PER_WORKER
from ..record import ClusterRecord, FacilityRecord
from ..run import run
from ..runtimes import binds, wrap_specs
from ..services import dask
from ..services.context import Context
from ..services.jupyter import dashboard_path
from ..spec import ServiceSpec
from ..state import FacilityState, resolve_name
from .contexts import context_from, running

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


def worker_group(cluster: str) -> str:
    return f"cluster-{cluster}-worker"


def place(ctx: Context, cluster: str, index: int, bin_dir: str) -> dask.Place:
    first = ctx.base + NAMED_FIRST + NAMED_PER * index
    return dask.Place(scheduler_service(cluster), bin_dir, first, first + 1, first + 2,
                      worker_group=worker_group(cluster))


def runtime(entry: ClusterRecord) -> RuntimeSection:
    """An image environment runs in its image; any other from its own bin dir, as it is."""
    return RuntimeSection(kind="apptainer", image=entry.image) if entry.image else RuntimeSection()


def render(ctx: Context, cluster: str, entry: ClusterRecord) -> list[ServiceSpec]:
    """The services of one named cluster, from its record entry: scheduler and its workers."""
    pl = place(ctx, cluster, entry.index, entry.bin_dir)
    specs = [dask.scheduler(ctx, pl), *(dask.worker(ctx, k, threads=entry.threads, place=pl)
                                        for k in range(entry.workers))]
    return wrap_specs(runtime(entry), specs, binds=binds(ctx), bin_dir=entry.bin_dir)


def recorded_specs(ctx: Context, rec: FacilityRecord) -> list[ServiceSpec]:
    return [s for name, entry in sorted(rec.clusters.items()) for s in render(ctx, name, entry)]


def rendered(be, ctx: Context, rec: FacilityRecord, clusters: dict[str, ClusterRecord] | None = None
             ) -> list[ServiceSpec]:
    """Every service of a running facility as its backend places them, with these named clusters
    (default: those on record)."""
    view = be.view(ctx)
    named = rec.model_copy(update={"clusters": rec.clusters if clusters is None else clusters})
    return be.place(ctx, services.render(view) + recorded_specs(view, named))


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


def kernel_env(name: str, entry: ClusterRecord) -> dict[str, str]:
    """What a kernel of the cluster's environment needs to reach it with a bare Client(); its
    dashboard link is the one JupyterLab serves (afbox.plugins.lab_dashboards)."""
    return {"AFBOX_SCHEDULER": entry.address, "DASK_SCHEDULER_ADDRESS": entry.address,
            "AFBOX_CLUSTER": name, "DASK_DISTRIBUTED__DASHBOARD__LINK": "/" + dashboard_path(name) + "status"}


def check_dashboard_guard(ctx: Context, env: envs.Env) -> None:
    """With [auth] a named cluster's dashboards check tokens inside the environment: it must hold what
    the check imports (afbox adds it to environments it builds; an image brings its own)."""
    lacks = [p for p in envs.DASHBOARD_CHECK if not env.version(p)]
    if ctx.facility.auth.enabled and lacks:
        how = "add them to the image" if env.image else \
            f"recreate it, afbox adds them: afbox env rm {env.name}; afbox env create {env.name} ..."
        raise AfboxError(f"environment {env.name!r} lacks {', '.join(lacks)}: its cluster's dashboard could not "
                         "check tokens", hint=how)


# -- against the running facility ---------------------------------------------------------------
def _running(name: str | None):
    return running(resolve_name(name))


def stack_versions(env: envs.Env) -> dict:
    """python, dask and distributed of the environment, asked of its own python; refuses without them."""
    try:
        return json.loads(run([*env.python_argv(), "-c", STACK], timeout=120).stdout.strip().splitlines()[-1])
    except AfboxError as e:
        raise AfboxError(f"environment {env.name!r} has no working dask and distributed", details=e.details,
                         hint=f"recreate it (afbox env rm {env.name}; afbox env create {env.name} ...)") from None


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


def sync_kernels(state: FacilityState, clusters: dict[str, ClusterRecord], ctx: Context | None = None) -> None:
    """The facility's own kernelspecs: one per environment with a running cluster, holding its address;
    they come first on the facility's JUPYTER_PATH, so they shadow the plain ones. An image's kernel
    also sees the facility's dirs (ctx)."""
    root = envs.facility_kernels(state.dir)
    wanted = {envs.kernel_name(entry.env): (entry, name) for name, entry in sorted(clusters.items())}
    for d in root.glob("afbox-*") if root.exists() else ():
        if d.name not in wanted:
            shutil.rmtree(d, ignore_errors=True)
    for kname, (entry, name) in wanted.items():
        try:
            env = envs.get(entry.env)
        except AfboxError:
            continue
        envs.write_kernelspec(env, root, kernel_env(name, entry), binds(ctx) if ctx else ())


def up(facility: str | None, cluster: str, env_name: str, workers: int, threads: int | None = None
       ) -> Iterator[ev.Event]:
    envs.check_name(cluster)
    if not 1 <= workers <= MAX_WORKERS:
        raise AfboxError(f"a named cluster has 1 to {MAX_WORKERS} workers, not {workers}")
    state, rec, be = _running(facility)
    if not be.named_clusters:
        raise AfboxError(f"named clusters run on the local and slurm backends, not on {be.name}",
                         hint="start the facility with --backend local, or use its default cluster")
    if "hub" in rec.services:
        raise AfboxError("a class's Dask gateway takes the named clusters' ports for the students' clusters",
                         hint="in a class every cluster comes from the gateway: afbox.client() in a notebook")
    env = envs.get(env_name)
    if cluster in rec.clusters:
        c = rec.clusters[cluster]
        if c.digest != env.digest:
            raise AfboxError(f"cluster {cluster!r} is already up with environment {c.env!r}",
                             hint=f"stop it first: afbox cluster down {cluster}")
        yield ev.Event(ev.INFO, "", f"cluster {cluster!r} is already up: {c.address}")
        return
    free = sorted(set(range(MAX_CLUSTERS)) - {c.index for c in rec.clusters.values()})
    if not free:
        raise AfboxError(f"at most {MAX_CLUSTERS} named clusters per facility")
    if cluster == state.name:
        yield ev.Event(ev.INFO, "", f"cluster {cluster!r} has the facility's name: afbox.client({cluster!r}) means "
                                    "the cluster only in its own kernel; afbox.client(cluster="
                                    f"{cluster!r}) means it everywhere")
    ctx = context_from(rec)
    check_dashboard_guard(ctx, env)
    v = stack_versions(env)
    yield ev.Event(ev.INFO, "", f"environment {env.name!r}: python {v['python']}, dask {v['dask']}, "
                                f"distributed {v['distributed']}")
    t0 = time.monotonic()
    entry = ClusterRecord(env=env.name, digest=env.digest, index=free[0], workers=workers,
                          threads=threads or rec.dask.threads, bin_dir=str(env.bin_dir), started=time.time(),
                          image=str(env.image) if env.image else None)
    running = rendered(be, ctx, rec)
    wanted = rendered(be, ctx, rec, {**rec.clusters, cluster: entry})
    new = [s for s in wanted if s.name not in {r.name for r in running}]
    be.preflight(ctx, new)
    if env.image:
        for d in binds(ctx):  # apptainer refuses bind sources that do not exist
            Path(d).mkdir(parents=True, exist_ok=True)
    yield from be.check_environment(ctx, env.name, env.python_argv(binds(ctx)))
    sched = next(s for s in new if s.name == scheduler_service(cluster))
    try:
        yield from be.update(ctx, wanted)
        entry.address, entry.dashboard = sched.url_dict["scheduler"], sched.url_dict["dashboard"]
        yield ev.Event(ev.INFO, "", "checking client, scheduler and worker versions ...")
        verify(ctx, env, entry.address, workers)
    except BaseException:
        for _ in be.update(ctx, running):
            pass
        raise
    entry.versions, entry.start_seconds = v, round(time.monotonic() - t0, 1)
    rec = record.read(state) or rec
    rec.clusters[cluster] = entry
    rec.services.update(record.service_records(new, state.logs))
    record.write(state, rec)
    sync_kernels(state, rec.clusters, ctx)
    yield ev.Event(ev.INFO, "", f"cluster {cluster!r} is up ({entry.start_seconds:.1f}s): {entry.address}, "
                                f"{workers} worker(s), dashboard {entry.dashboard}")


def down(facility: str | None, cluster: str) -> Iterator[ev.Event]:
    state, rec, be = _running(facility)
    if cluster not in rec.clusters:
        known = ", ".join(sorted(rec.clusters)) or "none"
        raise AfboxError(f"no named cluster {cluster!r} in facility {state.name!r}", hint=f"named clusters: {known}")
    ctx = context_from(rec)
    clusters = {n: c for n, c in rec.clusters.items() if n != cluster}
    before = {s.name for s in rendered(be, ctx, rec)}
    keep = rendered(be, ctx, rec, clusters)
    yield from be.update(ctx, keep)
    for name in before - {s.name for s in keep}:
        rec.services.pop(name, None)
    entry = rec.clusters[cluster]
    rec.clusters = clusters
    record.write(state, rec)
    sync_kernels(state, rec.clusters, ctx)
    yield ev.Event(ev.INFO, "", f"cluster {cluster!r} stopped; environment {entry.env!r} stays")


def listing(facility: str | None) -> list[dict]:
    """The default cluster and the named ones: name, address, workers running/wanted, environment."""
    import distributed

    state, rec, be = _running(facility)
    states = {s.name: s.state for s in be.status()}

    def workers(group_of) -> tuple[int, int]:
        names = [n for n, s in rec.services.items() if group_of(n, s)]
        return sum(states.get(n) == "running" for n in names), len(names)
    running, wanted = workers(lambda n, s: s.replica_of in (dask.WORKER, dask.GPU_WORKER))
    rows = [{"name": "default", "address": rec.urls().get("scheduler", "-"), "workers": running, "wanted": wanted,
             "env": f"(afbox's own: distributed {distributed.__version__})"}]
    for name, c in sorted(rec.clusters.items()):
        group = worker_group(name)
        running, _ = workers(lambda n, s: s.replica_of == group or n == f"{group}s")
        if f"{group}s" in rec.services:  # one step for all of them (SLURM)
            running = c.workers if states.get(f"{group}s") == "running" else 0
        rows.append({"name": name, "address": c.address, "workers": running, "wanted": c.workers,
                     "env": f"{c.env} (distributed {c.versions.get('distributed')})", "dashboard": c.dashboard})
    return rows
