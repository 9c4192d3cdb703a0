"""The demo analysis: a synthetic NanoAOD ttbar dataset and an AGC-style selection on Dask.

- `data`: `write_dataset`, `dataset_manifest`
- `analysis`: `run` -> `AnalysisResult` (histograms, rates, `save`, `summary_lines`)
- `plots`: PNGs of the histograms
- `notebook`: `write_notebook`, the same analysis step by step in Jupyter

Submodules are imported on use so `afbox` starts without loading uproot or matplotlib.
"""


def run(site: str | None = None, data: str | None = None, name: str | None = None, step_size: int = 25_000,
        workers: int = 2):
    """The demo analysis from a notebook: `afbox.demo.run()` on this facility's workers;
    `afbox.demo.run(site="B")` runs each file where it is (at site B when B holds it, its origin or
    its cache; else here) and merges the histograms here: the same result as one site's."""
    if site:
        from .federated import run as split
        return split(site, data, name, step_size, workers)
    from .. import client
    from .analysis import run as run_here
    from .on_facility import dataset_urls, running_record
    urls, _ = dataset_urls(running_record(name))
    with client(name) as c:
        return run_here(urls, client=c, step_size=step_size)
