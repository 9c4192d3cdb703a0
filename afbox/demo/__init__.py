"""The demo analysis: a synthetic NanoAOD ttbar dataset and an AGC-style selection on Dask.

- `data`: `write_dataset`, `dataset_manifest`
- `analysis`: `run` -> `AnalysisResult` (histograms, rates, `save`, `summary_lines`)
- `plots`: PNGs of the histograms
- `notebook`: `write_notebook`, the same analysis step by step in Jupyter

Submodules are imported on use so `afbox` starts without loading uproot or matplotlib.
"""
