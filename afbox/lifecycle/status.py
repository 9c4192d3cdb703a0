"""What runs and how it is: the status contract (`status --json`, documented in the README), typed.

`status` reads everything, health checks included; `refresh` brings a recent one up to date from
the backend's own view alone (states, pids, uptimes), for the console's once-a-second redraws.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from .. import backends, record
from ..health import check
from ..logscan import explain, last_lines
from ..record import FacilityRecord
from ..state import FacilityState
from .sites import probe

CHECKED = ("running", "starting", "unsupervised")  # states in which a service may already answer its health check
FAILED = ("fatal", "exited", "backoff")  # states whose detail says why, from the service's log


class ServiceRow(BaseModel):
    name: str
    state: str
    health: str
    pid: int | None = None
    restarts: int = 0
    uptime: float | None = None
    ports: dict[str, int] = {}
    urls: dict[str, str] = {}
    log: str = ""
    detail: str = ""
    primary: str | None = None   # its URL for people (not in the JSON contract)

    def endpoint(self) -> str:
        return self.primary or ",".join(f"{k}:{v}" for k, v in self.ports.items())


class Status(BaseModel):
    facility: str
    state: Literal["up", "degraded", "down"]
    services: list[ServiceRow] = []
    profile: str | None = None
    backend: str | None = None
    started: float | None = None
    workdir: str | None = None
    urls: dict[str, str] | None = None
    gpus: dict[str, Any] | None = None
    clusters: dict[str, Any] | None = None
    slurm: dict[str, Any] | None = None
    problem: str | None = None    # what is wrong beyond the services' own states, and what to do
    sites: dict[str, Any] | None = None   # other facilities it trusts, as seen now (lifecycle.sites.probe)

    @property
    def down(self) -> bool:
        return self.state == "down"

    def row(self, name: str) -> ServiceRow | None:
        return next((r for r in self.services if r.name == name), None)

    def to_dict(self) -> dict:
        """The JSON contract: keys that do not apply are left out, never null."""
        rows = [r.model_dump(exclude={"primary"}) for r in self.services]
        top = self.model_dump(exclude={"services"}, exclude_none=True)
        return {**top, "services": rows}


UNSUPERVISED = ("the facility's supervisor (supervisord) is not running; {n} of its services run without it: "
                "afbox down stops them, afbox up --force starts the facility afresh")


def status(name: str) -> Status:
    state = FacilityState(name)
    rec, unreadable = record.read_or_why(state)
    be = backends.get(rec.backend if rec else "local", state)
    extra = be.status_extra(rec)  # SLURM: job, time left
    if not be.running():
        orphans = be.orphans()
        if orphans:
            return _unsupervised(name, rec, orphans, unreadable, extra)
        return Status(facility=name, state="down", problem=unreadable, **extra)
    if not rec:
        rows = [ServiceRow(name=s.name, state=s.state, health="unknown", pid=s.pid, restarts=s.restarts,
                           uptime=s.uptime, detail=s.detail) for s in be.status()]
        return Status(facility=name, state="degraded", services=rows, **extra,
                      problem=(unreadable or "the facility runs but has no record") +
                      "; afbox down stops it, afbox up --force starts it afresh")
    rows = []
    by_name = {s.name: s for s in be.status()}
    for sname, svc in rec.services.items():
        st = by_name.get(sname)
        row = _row(sname, svc)
        if svc.unavailable or st is None:
            row.detail = svc.unavailable or ""
        else:
            row = _observed(row, st, svc)
        rows.append(row)
    runnable = [r for r in rows if r.state != "unavailable"]
    overall = "up" if all(r.health == "healthy" for r in runnable) else "degraded"
    return _full(name, rec, overall, rows, extra)


def _row(sname: str, svc) -> ServiceRow:
    return ServiceRow(name=sname, state="unavailable", health="n/a", ports=svc.ports, urls=svc.urls, log=svc.log,
                      primary=svc.primary)


def _observed(row: ServiceRow, st, svc) -> ServiceRow:
    health = st.health if st.health in ("healthy", "unhealthy") else "unknown"  # k3s: pod readiness
    if health == "unknown" and st.state in CHECKED and svc and svc.health:
        health = "healthy" if check(svc.health)[0] else "unhealthy"
    detail = st.detail
    if st.state in FAILED and row.log:
        detail = explain(detail or st.state, last_lines(row.log), exited=st.state != "backoff")
    return row.model_copy(update=dict(
        state=st.state, health=health, pid=st.pid, restarts=st.restarts,
        uptime=round(st.uptime, 1) if st.uptime is not None else None, detail=detail))


def _full(name: str, rec: FacilityRecord, overall: str, rows: list[ServiceRow], extra: dict,
          problem: str | None = None) -> Status:
    return Status(facility=name, state=overall, profile=rec.profile, backend=rec.backend, started=rec.started,
                  workdir=rec.workdir, services=rows, urls=rec.urls(), gpus=gpu_status(rec),
                  clusters=named_clusters(rec), problem=problem, sites=probe(rec) or None, **extra)


def _unsupervised(name: str, rec: FacilityRecord | None, orphans: list, unreadable: str | None,
                  extra: dict) -> Status:
    """The supervisor is gone but services it started still run: each as it is (its health checked),
    the others stopped; never "down" while any runs."""
    by_name = {o.name: o for o in orphans}
    problem = UNSUPERVISED.format(n=len(orphans)) + (f"; {unreadable}" if unreadable else "")
    if not rec:
        rows = [ServiceRow(name=o.name, state=o.state, health="unknown", pid=o.pid, uptime=o.uptime,
                           detail=o.detail) for o in orphans]
        return Status(facility=name, state="degraded", services=rows, problem=problem, **extra)
    rows = []
    for sname, svc in rec.services.items():
        row = _row(sname, svc)
        if svc.unavailable:
            row.detail = svc.unavailable
        elif o := by_name.pop(sname, None):
            row = _observed(row, o, svc)
        else:
            row = row.model_copy(update={"state": "stopped", "health": "unhealthy"})
        rows.append(row)
    rows += [ServiceRow(name=o.name, state=o.state, health="unknown", pid=o.pid, detail=o.detail)
             for o in by_name.values()]
    return _full(name, rec, "degraded", rows, extra, problem)


def refresh(last: Status) -> Status | None:
    """The last full status with states, pids, restarts and uptimes as the backend sees them now;
    None when anything changed that needs the full read (a state, a pid, a service more or less)."""
    if last.down:
        return None
    state = FacilityState(last.facility)
    rec = record.read(state)
    if not rec:
        return None
    now = {s.name: s for s in backends.get(rec.backend, state).status()}  # empty: not running
    if not now:
        return None
    rows = []
    for row in last.services:
        if row.state == "unavailable":
            rows.append(row)
            continue
        s = now.pop(row.name, None)
        if s is None or s.state != row.state or s.pid != row.pid:
            return None
        rows.append(row.model_copy(update={"restarts": s.restarts,
                                           "uptime": round(s.uptime, 1) if s.uptime is not None else None}))
    return None if now else last.model_copy(update={"services": rows})


def named_clusters(rec: FacilityRecord) -> dict:
    """Named clusters (afbox cluster up): address, dashboard, workers and environment of each."""
    return {n: {"address": c.address, "dashboard": c.dashboard, "workers": c.workers, "env": c.env,
                "image": c.image} for n, c in rec.clusters.items()}


def gpu_status(rec: FacilityRecord) -> dict:
    """The GPUs found at `up`, the worker each one got, and their current use (cheap: NVML stays
    open, nvidia-smi answers are cached a few seconds)."""
    out = {**rec.gpus.model_dump(), "live": None}
    if rec.gpus.report and rec.gpus.report.get("gpus"):
        from .. import gpu
        out["live"] = gpu.live(gpu.GpuReport.from_dict(rec.gpus.report)).to_dict()
    return out


def jupyter_login_url(rec: FacilityRecord) -> str | None:
    """The Jupyter URL with a token, for the user's own terminal only (never logged or stored): the
    owner's facility token where there is one (the login also opens the Dask dashboards), else
    Jupyter's own."""
    tf = (rec.auth.token_file if rec.auth else None) or rec.jupyter_token_file
    lab = rec.urls().get("jupyter")
    if not tf or not lab:
        return None
    try:
        token = Path(tf).read_text().strip()
    except OSError:
        return None
    return f"{lab}?token={token}"
