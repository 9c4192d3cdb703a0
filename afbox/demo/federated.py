"""The demo split across two sites by where its files are (afbox.sites.locality).

Each file runs at the site that holds it (its origin there, or complete in that site's cache for
its owner): at the other site on a cluster of its own gateway, here on this facility's cluster.
Partial histograms come back to this client and are summed in the order a single-site run sums
them (files, then entries), so the result is exactly that of one site.
"""
from __future__ import annotations

import time

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
        runs = {}
        for where, c in ((site, site_client), (here, None)):
            urls = [plan[p][1] for p in paths if plan[p][0] == where]
            if urls:
                c = c or local_client or facility_client(name)
                runs[where] = plan_and_submit(urls, c, step_size)
        by_url = {plan[p][1]: i for i, p in enumerate(paths)}
        done = []
        for where, (chunks, futures) in runs.items():
            done += [((by_url[c[0]], c[1]), r) for c, r in zip(chunks, futures[0].client.gather(futures))]
        results = [r for _, r in sorted(done, key=lambda d: d[0])]
        out = combine([plan[p][1] for p in paths], results, time.perf_counter() - start)
        out.sites = {plan[p][1]: plan[p][0] for p in paths}
        return out
    finally:
        if own_remote:
            site_client.cluster.close()
            site_client.close()
