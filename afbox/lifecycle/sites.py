"""Other sites on a running facility: trust applied where it changed, and how each site is doing.

`apply` is what `afbox site add/remove/refresh` end with: the trust file is rewritten (Jupyter, the
gateway and the dashboards read it again at once), and the xrootd servers whose sections changed
(the XCache, the caches kept for peers' data) are restarted through the backend's update; nothing
else restarts.
"""
from __future__ import annotations

import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import httpx

from .. import backends, events as ev, record
from ..errors import AfboxError
from ..record import FacilityRecord, SiteRecord
from ..services import peer_cache
from ..services.context import Context
from ..spec import ServiceSpec
from ..state import FacilityState
from . import clusters
from .contexts import context_from

PROBE_TIMEOUT = 3.0


def site_records(ctx: Context, specs: list[ServiceSpec]) -> dict[str, SiteRecord]:
    urls = {s.name: s.primary_url or "" for s in specs if not s.unavailable}
    return {s.name: SiteRecord(issuer=s.url, grants=s.grants, offered=s.offered, max_workers=s.max_workers,
                               cache=urls.get(peer_cache.service_name(s), "")) for s in ctx.sites}


def apply(name: str) -> Iterator[ev.Event]:
    """Bring a running facility's checkers in line with the sites it trusts now."""
    from ..sites import trust
    state = FacilityState(name)
    rec = record.read(state)
    be = backends.get(rec.backend if rec else "local", state)
    if not rec or not be.running():
        yield ev.Event(ev.INFO, "", f"facility {name!r} is not running: this takes effect at its next `afbox up`")
        return
    ctx = context_from(rec)
    if not ctx.facility.auth.enabled:
        raise AfboxError(f"facility {name!r} runs without [auth]: it cannot trust other sites")
    trust.write(ctx)
    specs = clusters.rendered(be, ctx, rec)
    yield from be.update(ctx, specs)
    record.write(state, rec.model_copy(update={"services": record.service_records(specs, state.logs),
                                                "sites": site_records(ctx, specs)}))


def probe(rec: FacilityRecord) -> dict:
    """Each trusted site as seen now: reachable, round trip to its issuer, its workers, GPUs and cache
    fill (from its descriptor, fetched with its pinned CA); all asked at once, each for at most a few
    seconds."""
    from ..sites.store import SiteStore
    sites = {s.name: s for s in SiteStore(FacilityState(rec.facility)).sites()}
    if not sites:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(sites))) as pool:
        seen = dict(zip(sites, pool.map(_probe_one, sites.values())))
    out = {}
    for name, s in sites.items():
        on_record = rec.sites.get(name)
        out[name] = {"issuer": s.url, "grants": s.grants, "offered": s.offered, "max_workers": s.max_workers,
                     "cache": on_record.cache if on_record else "", **seen[name]}
    return out


def _probe_one(site) -> dict:
    from ..sites.descriptor import fetch
    try:
        doc, _, _ = fetch(site.url, pin=site.ca_sha256, ca_pem=site.ca_pem, timeout=PROBE_TIMEOUT)
        latency = round_trip(site.url + "/health", site.ca_pem)
    except (AfboxError, httpx.HTTPError) as e:
        return {"reachable": False, "detail": getattr(e, "message", None) or f"{site.url}: {type(e).__name__}"}
    r = doc.resources
    return {"reachable": True, "latency_ms": round(latency * 1000, 1), "workers": r.workers, "gpus": r.gpus,
            "cache_fill": r.cache_fill}


def round_trip(url: str, ca_pem: str) -> float:
    """Seconds for one request on an open connection: the round trip, without the TCP and TLS
    set-up (which a proxy on the way may answer itself)."""
    with httpx.Client(verify=ssl.create_default_context(cadata=ca_pem), timeout=PROBE_TIMEOUT) as c:
        c.get(url).raise_for_status()
        t0 = time.monotonic()
        c.get(url).raise_for_status()
        return time.monotonic() - t0
