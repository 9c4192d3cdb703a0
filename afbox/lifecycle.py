"""up / down / status of one facility: spec -> ServiceSpecs -> backend -> events and state."""
from __future__ import annotations

import json
import os
import pwd
import secrets
import sys
import time
from pathlib import Path
from typing import Iterator

from . import backends, events as ev, host as hostmod, services
from .errors import AfboxError
from .facility import Facility
from .run import which
from .services import gateway, issuer, jupyter, origin, xcache
from .services.context import Context
from .sizing import dask_size, xcache_size
from .health import check
from .spec import HealthCheck, ServiceSpec
from .state import FacilityState, data_root, shared_cache_root, write_private


GPU_DETECT_TIMEOUT = 5.0  # a hung nvidia-smi must not hold up `afbox up` for long


def detect_gpus(fac: Facility):
    """GPU report and the devices that get a worker (none when the facility turns GPUs off)."""
    from . import gpu
    if fac.dask.gpus == 0:
        return None, ()
    report = gpu.detect(timeout=GPU_DETECT_TIMEOUT)
    devices = report.devices()
    return report, tuple(devices if fac.dask.gpus < 0 else devices[: fac.dask.gpus])


def context(fac: Facility, host: hostmod.Host | None = None, gpus: tuple = ()) -> Context:
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
        cache_dir=cache_dir, xrootd_dir=base / "xrootd", cache_size=xcache_size(fac, hostmod.disk_free(str(cache_dir))),
        as_root=host.is_root,
        origin_dir=Path(fac.origin.data_dir).expanduser() if fac.origin.data_dir else data_root() / fac.name / "origin",
    )


def preflight(ctx: Context, specs: list[ServiceSpec]) -> None:
    """Refuse to start anything when a required part is missing or a port is taken."""
    for s in specs:
        if s.unavailable and s.name in ctx.facility.facility.require:
            raise AfboxError(f"{s.name} is required but unavailable", hint=s.unavailable)
    taken = []
    for s in specs:
        for label, port in s.ports if not s.unavailable else ():
            if not hostmod.port_free(port, ctx.bind):
                owner = hostmod.port_owner(port) or "another process"
                taken.append(f"port {port} ({s.name} {label}) is in use by {owner}")
    if taken:
        base = ctx.base
        raise AfboxError(taken[0], details=taken[1:],
                         hint=f"choose other ports with --port-base (now {base}), e.g. --port-base {base + 100}")


def _chown_tree(path: Path, user: str) -> None:
    """Hand a dir to xrootd's user; walked only the first time, so a big cache is not re-chowned."""
    pw = pwd.getpwnam(user)
    if path.stat().st_uid == pw.pw_uid:
        return
    for root, dirs, files in os.walk(path):
        for n in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.lchown(n, pw.pw_uid, pw.pw_gid)


def prepare(ctx: Context, specs: list[ServiceSpec]) -> list[str]:
    """Create dirs, secrets and config files the rendered specs refer to. Never removes user data."""
    ctx.state.ensure()
    ctx.facility.workdir.mkdir(parents=True, exist_ok=True)
    warnings = []
    if ctx.facility.auth.enabled:
        from .auth import setup
        warnings = setup.prepare(ctx)
    prepare_dirs(specs)
    if ctx.facility.jupyter.enabled:
        write_private(ctx.jupyter_token_file, secrets.token_urlsafe(32))
        settings = jupyter.settings_dir(ctx) / "dask-labextension" / "plugin.jupyterlab-settings"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(jupyter.labextension_settings(ctx), indent=2))
    if any(s.name == gateway.NAME for s in specs):
        gateway.config_path(ctx).write_text(gateway.config_text(ctx))
    if ctx.facility.xcache.enabled and ctx.xrootd:
        xcache.admin_dir(ctx).mkdir(parents=True, exist_ok=True)
        xcache.config_path(ctx).write_text(xcache.config_text(ctx))
    if ctx.facility.local_origin and ctx.xrootd:
        origin.config_path(ctx).write_text(origin.config_text(ctx))
    if ctx.xrootd_user and ctx.xrootd and (ctx.facility.xcache.enabled or ctx.facility.local_origin):
        _hand_to_xrootd(ctx)
    return warnings


def _hand_to_xrootd(ctx: Context) -> None:
    """As root, xrootd runs as its own user: it owns its cache and admin dirs, and can read the origin."""
    pw = pwd.getpwnam(ctx.xrootd_user)
    if ctx.cache_dir.exists():
        _chown_tree(ctx.cache_dir, ctx.xrootd_user)
    for d in (ctx.xrootd_dir, xcache.admin_dir(ctx), origin.admin_dir(ctx)):
        if d.exists():
            os.chown(d, pw.pw_uid, pw.pw_gid)
    for d in {ctx.cache_dir.parent, ctx.xrootd_dir.parent}:
        os.chmod(d, os.stat(d).st_mode | 0o711)  # traversable, not listable
    if ctx.facility.local_origin:
        os.chmod(ctx.origin_dir, os.stat(ctx.origin_dir).st_mode | 0o755)
        for d in ctx.origin_dir.parents:  # only within afbox's own data root; never /root itself
            if not d.is_relative_to(data_root()):
                break
            os.chmod(d, os.stat(d).st_mode | 0o711)


def record(ctx: Context, specs: list[ServiceSpec], backend: str) -> dict:
    return {
        "facility": ctx.facility.name, "profile": ctx.facility.profile, "backend": backend,
        "spec": ctx.facility.model_dump(),
        "started": time.time(), "workdir": str(ctx.facility.workdir), "cache_dir": str(ctx.cache_dir),
        "cache_size": ctx.cache_size, "port_base": ctx.base,
        "origin_dir": str(ctx.origin_dir) if ctx.facility.local_origin else None,
        "auth": auth_record(ctx, specs) if ctx.facility.auth.enabled else None,
        "jupyter_token_file": str(ctx.jupyter_token_file) if ctx.facility.jupyter.enabled else None,
        "dask": {"workers": ctx.dask.workers, "threads": ctx.dask.threads, "memory_limit": ctx.dask.memory_limit,
                 "tls": ctx.dask_tls},
        "services": {s.name: {"ports": s.port_dict, "urls": s.url_dict, "unavailable": s.unavailable,
                              "health": s.health.__dict__ if s.health else None,
                              "log": str(ctx.state.logs / f"{s.name}.log")} for s in specs},
    }


def auth_record(ctx: Context, specs: list[ServiceSpec]) -> dict:
    out = {"issuer": issuer.url(ctx), "identity_dir": str(issuer.identity_dir(ctx)),
           "trusted_issuers": ctx.facility.auth.trusted_issuers,
           "token_file": str(ctx.token_file), "ca_dir": str(ctx.ca_dir)}
    if any(s.name == "xcache" and not s.unavailable for s in specs):
        from .auth.setup import xrootd_owner
        out["xcache_keycache"] = {"cache_home": str(xcache.cache_home(ctx)), "owner": xrootd_owner(ctx)}
    return out


def up(fac: Facility) -> Iterator[ev.Event]:
    """Bring the facility up; a no-op (same URLs) when it is already up."""
    fac = in_allocation(fac)
    state = FacilityState(fac.name)
    be = backends.get(fac.facility.backend, state)
    if be.running() and state.read():
        yield ev.Event(ev.INFO, "", f"facility {fac.name!r} is already up")
        return
    fac = be.adapt(fac)  # what only the backend knows: SLURM's addresses, sizes per node
    report, devices = detect_gpus(fac)
    for line in report.problems if report else ():
        yield ev.Event(ev.INFO, "", f"gpu: {line}")
    if devices:
        yield ev.Event(ev.INFO, "", f"gpu: {len(devices)} GPU worker(s): " + ", ".join(
            f"{d.label} {d.model}" for d in devices))
    ctx = context(fac, host=be.host(), gpus=devices)
    specs = be.place(ctx, services.render(ctx))  # e.g. SLURM: one srun step for all workers
    preflight(ctx, specs)
    for line in prepare(ctx, specs):
        yield ev.Event(ev.INFO, "", line)
    for s in specs:
        if s.unavailable:
            yield ev.Event(ev.UNAVAILABLE, s.name, s.unavailable)
    yield from be.up(specs, timeout=fac.facility.start_timeout)
    rec = record(ctx, specs, be.name)
    rec["gpus"] = {"report": report.to_dict() if report else None,
                   "workers": {f"dask-gpu-{k}": d.to_dict() for k, d in enumerate(devices)}}
    state.write(rec)


def in_allocation(fac: Facility) -> Facility:
    """Inside a SLURM allocation the facility runs on it, unless a profile, file or flag chose a backend."""
    if os.environ.get("SLURM_JOB_ID") and "backend" not in fac.facility.model_fields_set:
        fac = fac.model_copy(deep=True)
        fac.facility.backend = "slurm"
    return fac


def scale(name: str, workers: int) -> Iterator[ev.Event]:
    """Change the number of CPU Dask workers of a running facility; the others keep running."""
    if workers < 1:
        raise AfboxError("a facility needs at least 1 CPU worker", hint="to stop everything: afbox down")
    state = FacilityState(name)
    rec = state.read()
    be = backends.get((rec or {}).get("backend", "local"), state)
    if not rec or not be.running():
        raise AfboxError(f"facility {name!r} is not running", hint="start it with: afbox up")
    from .gpu_model import Device
    fac = Facility.model_validate(rec["spec"])
    # same threads and memory per worker as the running ones, so they are not restarted
    fac.dask.workers = workers
    fac.dask.threads_per_worker = rec["dask"]["threads"]
    fac.dask.memory_limit = str(rec["dask"]["memory_limit"])
    devices = tuple(Device(**d) for d in rec.get("gpus", {}).get("workers", {}).values())
    ctx = context(fac, gpus=devices)
    from .clusters import recorded_specs
    specs = services.render(ctx) + recorded_specs(ctx, rec)  # named clusters keep running
    current = set(rec["services"])
    new_specs = [s for s in specs if s.name not in current]
    preflight(ctx, new_specs)
    prepare_dirs(new_specs)
    before = rec["dask"]["workers"]
    yield ev.Event(ev.INFO, "", f"dask workers: {before} -> {workers}")
    yield from be.update(specs, timeout=fac.facility.start_timeout)
    new_rec = record(ctx, specs, be.name)
    for key in ("started", "jupyter_token_file", "gpus", "cache_size", "origin_dir", "auth", "clusters"):
        new_rec[key] = rec.get(key)
    state.write(new_rec)


def restart(name: str, service: str) -> None:
    """Stop and start one service of a running facility."""
    state = FacilityState(name)
    rec = state.read()
    if not rec:
        raise AfboxError(f"facility {name!r} is not running", hint="start it with: afbox up")
    if service not in rec["services"]:
        raise AfboxError(f"no service {service!r}", hint="services: " + ", ".join(rec["services"]))
    backends.get(rec["backend"], state).restart(service)


def prepare_dirs(specs: list[ServiceSpec]) -> None:
    for s in specs:
        for d in s.state_dirs:
            Path(d).mkdir(parents=True, exist_ok=True)


def down(name: str) -> Iterator[ev.Event]:
    state = FacilityState(name)
    rec = state.read()
    be = backends.get((rec or {}).get("backend", "local"), state)
    if not rec and not be.running():
        yield ev.Event(ev.INFO, "", f"facility {name!r} is not running; nothing to stop")
        return
    yield from be.down()
    state.clear()
    from .clusters import sync_kernels
    sync_kernels(state, {})  # named clusters stopped with everything: their kernels must not point at them
    if rec and rec.get("jupyter_token_file"):
        Path(rec["jupyter_token_file"]).unlink(missing_ok=True)


def status(name: str) -> dict:
    """The status contract (documented in README): stable keys, no secrets."""
    state = FacilityState(name)
    rec = state.read()
    be = backends.get((rec or {}).get("backend", "local"), state)
    extra = be.status_extra(rec)  # SLURM: job, time left
    if not rec or not be.running():
        return {"facility": name, "state": "down", "services": [], **extra}
    rows = []
    by_name = {s.name: s for s in be.status()}
    for sname, svc in rec["services"].items():
        st = by_name.get(sname)
        row = {"name": sname, "ports": svc["ports"], "urls": svc["urls"], "log": svc["log"]}
        if svc.get("unavailable") or st is None:
            row.update(state="unavailable", health="n/a", pid=None, restarts=0, uptime=None,
                       detail=svc.get("unavailable") or "")
        else:
            health = st.health if st.health in ("healthy", "unhealthy") else "unknown"  # k3s: pod readiness
            if health == "unknown" and st.state == "running" and svc.get("health"):
                ok, _ = check(HealthCheck(**{**svc["health"], "headers": tuple(map(tuple, svc["health"]["headers"]))}))
                health = "healthy" if ok else "unhealthy"
            row.update(state=st.state, health=health, pid=st.pid, restarts=st.restarts,
                       uptime=round(st.uptime, 1) if st.uptime is not None else None, detail=st.detail)
        rows.append(row)
    runnable = [r for r in rows if r["state"] != "unavailable"]
    overall = "up" if all(r["health"] == "healthy" for r in runnable) else "degraded"
    return {"facility": name, "state": overall, "profile": rec["profile"], "backend": rec["backend"],
            "started": rec["started"], "workdir": rec["workdir"], "services": rows, "urls": urls(rec),
            "gpus": gpu_status(rec), "clusters": named_clusters(rec), **extra}


def named_clusters(rec: dict) -> dict:
    """Named clusters (afbox cluster up): address, dashboard, workers and environment of each."""
    return {n: {"address": c["address"], "dashboard": c["dashboard"], "workers": c["workers"], "env": c["env"],
                "image": c.get("image")}
            for n, c in (rec.get("clusters") or {}).items()}


def gpu_status(rec: dict) -> dict:
    """The GPUs found at `up`, the worker each one got, and their current use (cheap: NVML stays
    open, nvidia-smi answers are cached a few seconds)."""
    g = rec.get("gpus") or {"report": None, "workers": {}}
    out = {**g, "live": None}
    if g.get("report") and g["report"].get("gpus"):
        from . import gpu
        out["live"] = gpu.live(gpu.GpuReport.from_dict(g["report"])).to_dict()
    return out


def urls(rec: dict) -> dict:
    s = rec["services"]
    out = {}
    if "dask-scheduler" in s:
        out["scheduler"] = s["dask-scheduler"]["urls"]["scheduler"]
        out["dashboard"] = s["dask-scheduler"]["urls"]["dashboard"]
    if "jupyter" in s:
        out["jupyter"] = s["jupyter"]["urls"]["lab"]
    if "xcache" in s and not s["xcache"].get("unavailable"):
        out["xcache"] = s["xcache"]["urls"]["root"]
    if "gateway" in s:
        out["gateway"] = s["gateway"]["urls"]["gateway"]
    return out


def jupyter_login_url(rec: dict) -> str | None:
    """The Jupyter URL with a token, for the user's own terminal only (never logged or stored): the
    owner's facility token where there is one (the login also opens the Dask dashboards), else
    Jupyter's own."""
    tf = (rec.get("auth") or {}).get("token_file") or rec.get("jupyter_token_file")
    if not tf or "jupyter" not in rec["services"]:
        return None
    try:
        token = Path(tf).read_text().strip()
    except OSError:
        return None
    return f"{rec['services']['jupyter']['urls']['lab']}?token={token}"
