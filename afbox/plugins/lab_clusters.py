"""The Dask panel's CLUSTERS list shows the facility's own cluster and its named clusters (afbox cluster
up) beside those made with "+ NEW": each is attached to its running scheduler, which keeps the list's
worker counts live; they are started, scaled and stopped by afbox, so the panel's buttons say how.

dask-labextension keeps its clusters in a module-level manager with no public way to list a cluster
it did not start, so they are placed in its table directly and kept in step with the facility's record.
"""
from __future__ import annotations

import asyncio
import logging
import os
import uuid

from distributed.core import Status, rpc
from distributed.deploy import Cluster
from distributed.security import Security

from .. import record
from ..record import ClusterRecord
from ..state import FacilityState

log = logging.getLogger("afbox.lab_clusters")
SYNC_SECONDS = 3.0
CONNECT_SECONDS = 5.0
_record_cache: dict[str, tuple[float, dict[str, ClusterRecord]]] = {}
_tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to its tasks


def named_clusters() -> dict[str, ClusterRecord]:
    """The named clusters on the facility's record (re-read only when it changed)."""
    name = os.environ.get("AFBOX_FACILITY")
    if not name:
        return {}
    state = FacilityState(name)
    try:
        mtime = state.record_file.stat().st_mtime
    except OSError:
        return {}
    cached = _record_cache.get(name)
    if not cached or cached[0] != mtime:
        rec = record.read(state)
        _record_cache[name] = cached = (mtime, dict(rec.clusters) if rec else {})
    return cached[1]


def cluster_id(cluster: str) -> str:
    """A stable id of the panel's form (a UUID) for one of the facility's clusters."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"afbox:{os.environ.get('AFBOX_FACILITY', '')}/{cluster}"))


def wanted() -> dict[str, tuple[str, str, str, str]]:
    """id -> (label, scheduler address, how to stop it, dashboard path) of each of the facility's
    running clusters."""
    from ..services.jupyter import dashboard_path
    out = {}
    if os.environ.get("AFBOX_SCHEDULER"):
        out[cluster_id("default")] = ("default", os.environ["AFBOX_SCHEDULER"], "afbox down")
    for name, c in sorted(named_clusters().items()):
        if c.address:
            out[cluster_id(name)] = (name, c.address, f"afbox cluster down {name}")
    return {i: (label, addr, stop, "/" + dashboard_path(label)) for i, (label, addr, stop) in out.items()}


class AttachedCluster(Cluster):
    """A running scheduler of the facility, shown in the panel; it lives and dies with afbox."""
    _supports_scaling = False

    def __init__(self, label: str, address: str, dashboard: str, stop: str):
        super().__init__(asynchronous=True, name=label)
        self.scheduler_comm = rpc(address, connection_args=Security().get_connection_args("client"))
        self._dashboard, self._stop = dashboard, stop

    @property
    def dashboard_link(self) -> str:
        return self._dashboard

    async def _sync_cluster_info(self) -> None:
        """Nothing to tell the scheduler about itself: afbox, not this panel, manages it."""

    def scale(self, n: int) -> None:
        how = "afbox scale --workers N" if self.name == "default" else f"{self._stop}, then afbox cluster up"
        raise RuntimeError(f"cluster {self.name!r} is sized by afbox: {how}")

    def adapt(self, *args, **kwargs):
        raise RuntimeError(f"cluster {self.name!r} is sized by afbox, not adaptively")

    def close(self, timeout=None):
        raise RuntimeError(f"cluster {self.name!r} is stopped by afbox: {self._stop}")

    @property
    def alive(self) -> bool:
        task = self._watch_worker_status_task
        return self.status == Status.running and task is not None and not task.done()


async def sync(manager) -> None:
    """Put the facility's running clusters into the panel's list and take out those that are gone."""
    clusters, names = manager._clusters, manager._cluster_names
    want = wanted()
    for cid, c in list(clusters.items()):
        if isinstance(c, AttachedCluster) and (cid not in want or not c.alive):
            clusters.pop(cid)
            names.pop(cid, None)
            await c._close()
    for cid, (label, address, stop, dashboard) in want.items():
        if cid in clusters:
            continue
        c = AttachedCluster(label, address, dashboard, stop)
        try:
            await asyncio.wait_for(c._start(), CONNECT_SECONDS)
        except (OSError, asyncio.TimeoutError) as e:  # restarting, or not up yet: the next round
            log.debug("cluster %s not reachable yet: %s", label, e)
            await c._close()
            continue
        clusters[cid], names[cid] = c, label


async def keep_in_step(manager) -> None:
    while True:
        try:
            await sync(manager)
        except Exception:  # the panel's list is a convenience: never let it stop the server
            log.exception("listing the facility's clusters in the Dask panel failed")
        await asyncio.sleep(SYNC_SECONDS)


def start() -> None:
    """Called on the server's loop when the extension loads."""
    from dask_labextension.manager import manager
    if not all(hasattr(manager, a) for a in ("_clusters", "_cluster_names")):
        log.warning("this dask-labextension keeps its clusters elsewhere: the facility's are not listed")
        return
    task = asyncio.get_event_loop().create_task(keep_in_step(manager))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
