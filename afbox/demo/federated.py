"""The demo split across two sites by where its files are (afbox.sites.locality).

Each file runs at the site that holds it (its origin there, or complete in that site's cache for
its owner): at the other site on a cluster of its own gateway, here on this facility's cluster.
Partial histograms come back to this client and are summed in the order a single-site run sums
them (files, then entries), so the result is exactly that of one site.

Across a WAN every round trip counts: the other site's share is driven from one of its own workers
(counting entries, planning chunks, gathering their results all happen there), and its results come
back in one message, pushed through a Dask Variable that this client was already waiting on. So the
remote share costs one round trip more than a run at that site, where a client driving it from here
would pay four (count, gather counts, submit chunks, gather results).
"""
from __future__ import annotations

import pickle
import time
import uuid

from ..errors import AfboxError
from .analysis import DEFAULT_STEP_SIZE, AnalysisResult, combine, plan_and_submit


def placement(site: str, owner: str, paths: list[str], site_client, name: str | None = None
              ) -> dict[str, tuple[str, str]]:
    """path -> (where it runs, the URL it is read by there)."""
    from ..sites import locality
    here = locality.this_record(name).facility
    there = site_client.submit(locality.holdings, owner, paths, pure=False).result()
    local = locality.holdings(owner, paths, name)
    out = {}
    for p in paths:
        if there[p]:
            out[p] = (site, there[p])
        elif local[p]:
            out[p] = (here, local[p])
        elif url := locality.reader(owner, p, name):
            out[p] = (here, url)
        else:
            raise AfboxError(f"neither {site} nor this facility can read {p} of {owner}")
    return out


def run(site: str, data: str | None = None, name: str | None = None, step_size: int = DEFAULT_STEP_SIZE,
        workers: int = 2, site_client=None, local_client=None) -> AnalysisResult:
    """The demo dataset of `data` (default: this facility's), split between `site` and here."""
    from .. import client as facility_client
    from ..sites import locality, remote
    from .on_facility import dataset_paths
    here = locality.this_record(name).facility
    owner = data or here
    own_remote = site_client is None
    site_client = site_client or remote.client(site, name, workers=workers)
    try:
        paths = (dataset_paths(locality.this_record(name)) if owner == here
                 else site_client.submit(dataset_paths, pure=False).result())
        plan = placement(site, owner, paths, site_client, name)
        start = time.perf_counter()
        there = [plan[p][1] for p in paths if plan[p][0] == site]
        local = [plan[p][1] for p in paths if plan[p][0] == here]
        driven = Driven(site_client, there, step_size) if there else None
        runs = []
        try:
            if local:
                chunks, futures = plan_and_submit(local, local_client or facility_client(name), step_size)
                runs.append((chunks, futures[0].client.gather(futures)))
            if driven:
                runs.append(driven.result())
            wall = time.perf_counter() - start
        finally:
            if driven:
                driven.close()
        by_url = {plan[p][1]: i for i, p in enumerate(paths)}
        done = [((by_url[c[0]], c[1]), r) for chunks, results in runs for c, r in zip(chunks, results)]
        out = combine([plan[p][1] for p in paths], [r for _, r in sorted(done, key=lambda d: d[0])], wall)
        out.sites = {plan[p][1]: plan[p][0] for p in paths}
        return out
    finally:
        if own_remote:
            site_client.cluster.close()
            site_client.close()


def drive(files: list[str], step_size: int, reply: str) -> None:
    """On a worker of the site that holds `files`: the whole run there, its (chunks, results) set
    into the Variable `reply` (pickled: the scheduler only passes it on)."""
    from distributed import Variable, worker_client
    with worker_client() as c:
        chunks, futures = plan_and_submit(files, c, step_size)
        Variable(reply, client=c).set(pickle.dumps((chunks, c.gather(futures))))


class Driven:
    """A run driven at the other site; result() waits for it (on the Variable, asked for at once, so
    the answer leaves that site as soon as it is set) and fails as the driving task failed."""
    POLL = 2.0

    def __init__(self, client, files: list[str], step_size: int):
        from distributed import Variable
        self.client, self.reply = client, f"afbox-federated-{uuid.uuid4().hex}"
        self.variable = Variable(self.reply, client=client)
        self.future = client.submit(drive, files, step_size, self.reply, pure=False)

    def result(self) -> tuple[list, list]:
        while True:
            try:
                return pickle.loads(self.variable.get(timeout=self.POLL))
            except TimeoutError:
                if self.future.status in ("error", "cancelled", "lost"):
                    self.future.result()  # raises the task's own error
                    raise AfboxError(f"the run at the other site ended without a result ({self.future.status})")

    def close(self) -> None:
        self.future.cancel()
        self.variable.delete()
