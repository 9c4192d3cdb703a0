"""Pure text rendering for the CLI: events, status tables, URLs. No I/O here."""
from __future__ import annotations

from .. import events as ev
from ..lifecycle.status import Status
from ..units import human_bytes, human_duration

__all__ = ["cache_hits", "event_line", "human_bytes", "human_duration", "site_rows", "site_table", "status_rows",
           "status_text", "table", "urls_text"]

MARK = {ev.STARTING: "..", ev.HEALTHY: "ok", ev.FAILED: "!!", ev.UNAVAILABLE: "--",
        ev.STOPPING: "..", ev.STOPPED: "ok", ev.INFO: "  "}


def event_line(e: ev.Event) -> str:
    if not e.service:
        return f"[{MARK.get(e.kind, '  ')}] {e.message}".rstrip()
    return f"[{MARK.get(e.kind, '  ')}] {e.service + ' ':<16}{e.kind} {e.message}".rstrip()


STATUS_COLUMNS = ("SERVICE", "STATE", "HEALTH", "URL/PORT", "PID", "RESTARTS", "UPTIME")


def status_rows(status: Status) -> list[tuple[str, ...]]:
    return [(r.name, r.state, r.health, r.endpoint(), str(r.pid or "-"), str(r.restarts), human_duration(r.uptime))
            for r in status.services]


def table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*columns).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]


SITE_COLUMNS = ("SITE", "ISSUER", "REACHABLE", "LATENCY", "WORKERS", "GPUS", "CACHE", "GRANTED HERE")


def site_rows(sites: dict) -> list[tuple[str, ...]]:
    """Trusted sites as `site list`, `status` and the console show them (lifecycle.sites.probe)."""
    rows = []
    for name, s in sorted(sites.items()):
        up = s.get("reachable")
        fill = s.get("cache_fill")
        rows.append((name, s["issuer"], "yes" if up else "no", f"{s['latency_ms']:.1f} ms" if up else "-",
                     str(s.get("workers", "-")) if up else "-", str(s.get("gpus", "-")) if up else "-",
                     f"{fill:.0%}" if up and fill is not None else "-", " ".join(s.get("grants") or []) or "nothing"))
    return rows


def site_table(sites: dict) -> str:
    lines = table(SITE_COLUMNS, site_rows(sites))
    lines += [f"  {n}: {s['detail']}" for n, s in sorted(sites.items()) if not s.get("reachable") and s.get("detail")]
    return "\n".join(lines)


def status_text(status: Status, start: str = "afbox up") -> list[str]:
    problem = [f"problem: {status.problem}"] if status.problem else []
    if status.down:
        ended = (status.slurm or {}).get("message")
        return [ended or f"facility {status.facility!r} is down (start it with: {start})", *problem]
    known = f" ({status.profile} profile, {status.backend} backend)" if status.backend else ""
    head = f"facility {status.facility!r}{known}: {status.state}"
    lines = [head, *problem, "", *table(STATUS_COLUMNS, status_rows(status))]
    if s := status.slurm:
        lines += ["", f"SLURM job {s['job_id']}: {s['job_state']}, {human_duration(s.get('time_left'))} left"]
        lines += [f"warning: {s['warning']}"] if s.get("warning") else []
    if status.sites:
        lines += ["", site_table(status.sites)]
    return lines


def urls_text(urls: dict, jupyter_login: str | None, guarded: bool = False,
              unavailable: dict[str, str] | None = None) -> list[str]:
    lines = []
    if "hub" in urls:
        lines.append(f"  JupyterHub      {urls['hub']}   (class: afbox class sheet -o sheet.html)")
    if jupyter_login:
        lines.append(f"  JupyterLab      {jupyter_login}")
    if "scheduler" in urls:
        lines.append(f"  Dask scheduler  {urls['scheduler']}")
        lines.append(f"  Dask dashboard  {urls['dashboard']}"
                     + ("   (after the JupyterLab link, or with ?token=)" if guarded else ""))
    if "xcache" in urls:
        lines.append(f"  XCache          {urls['xcache']}   (e.g. root://…//store/file.root)")
    if "gateway" in urls:
        lines.append(f"  Dask gateway    {urls['gateway']}   (afbox.gateway(); token: afbox token)")
    for name, why in sorted((unavailable or {}).items()):
        lines.append(f"  {name + ':':<15} unavailable: {why}")
    return lines


def cache_hits(s: dict) -> list[str]:
    """The XCache's hits and misses (afbox.cache.stats), by requests and by bytes."""
    if s.get("hits") is None:
        return ["hits/misses      not reported (xrdpfc_print, from xrootd-server, reads them)"]
    rate = lambda r: "-" if r is None else f"{r:.0%}"  # noqa: E731
    return [f"hits/misses      {s['hits']} / {s['misses']} file accesses (hit rate {rate(s['hit_rate_requests'])})",
            f"bytes            {human_bytes(s['hit_bytes'])} served from the cache, {human_bytes(s['miss_bytes'])} "
            f"fetched from the origin (hit rate {rate(s['hit_rate_bytes'])})"]
