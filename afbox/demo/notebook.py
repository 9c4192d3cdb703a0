"""The demo analysis as a Jupyter notebook, step by step, for the files it is given."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK_NAME = "agc_demo.ipynb"


def build_notebook(files: list[str], step_size: int | None = None) -> nbformat.NotebookNode:
    from .analysis import DEFAULT_STEP_SIZE

    file_list = "".join(f"    {str(f)!r},\n" for f in files)
    cells = [
        new_markdown_cell(
            "# ttbar selection on this facility (Analysis Grand Challenge style)\n\n"
            "Semileptonic ttbar: exactly one tight electron or muon, at least four jets and at least one "
            "b-tagged jet. The observable is the mass of the three-jet combination with the largest "
            "vector-sum $p_T$ (among combinations holding a b-tag), which peaks near the top mass.\n\n"
            "Files are read with uproot; `root://` URLs go through the facility's XCache."
        ),
        new_code_cell(f"files = [\n{file_list}]\nstep_size = {step_size or DEFAULT_STEP_SIZE}",
                      metadata={"tags": ["parameters"]}),
        new_markdown_cell("## The data\nNanoAOD layout: one `Events` tree, jagged branches counted by `nJet`, `nMuon`, ..."),
        new_code_cell(
            "import uproot\n\n"
            "events = uproot.open(files[0])[\"Events\"]\n"
            "print(f\"{events.num_entries:,} events in {files[0]}\")\n"
            "events.show(filter_name=[\"nJet\", \"Jet_*\", \"nMuon\", \"Muon_*\", \"MET_*\"])"
        ),
        new_markdown_cell("## One chunk, step by step"),
        new_code_cell(
            "from afbox.demo import analysis\n\n"
            "chunk = analysis.read_events(files[0], 0, min(step_size, events.num_entries))\n"
            "selected = analysis.select_events(chunk)\n"
            "print(f\"{len(selected):,} of {len(chunk):,} events pass: 1 tight lepton, >=4 jets, >=1 b-tag\")\n"
            "masses = analysis.top_mass(selected.jets)\n"
            "print(\"first reconstructed top masses [GeV]:\", [round(m, 1) for m in masses[:8].tolist()])"
        ),
        new_markdown_cell(
            "## All files on the Dask workers\n"
            "The facility sets `DASK_SCHEDULER_ADDRESS`, so `Client()` connects to its scheduler. "
            "Without one, the analysis runs in this kernel."
        ),
        new_code_cell(
            "import dask\n"
            "from distributed import Client\n\n"
            "client = Client() if dask.config.get(\"scheduler-address\", None) else None\n"
            "client"
        ),
        new_code_cell(
            "from afbox.demo.analysis import run\n\n"
            "result = run(files, client=client, step_size=step_size)\n"
            "print(\"\\n\".join(result.summary_lines()))"
        ),
        new_code_cell(
            "%matplotlib inline\n"
            "import matplotlib.pyplot as plt\n"
            "from afbox.demo import plots\n\n"
            "fig = plt.figure(figsize=(16, 7))\n"
            "plots.draw_overview(result.histograms, fig)\n"
            "plt.show()"
        ),
        new_code_cell("for path in result.save(\"agc_output\"):\n    print(path)"),
    ]
    return new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })


def write_notebook(workdir: str | Path, files: list[str], name: str = NOTEBOOK_NAME,
                   step_size: int | None = None, overwrite: bool = False) -> Path:
    """Write the demo notebook into `workdir`; an existing one is user work, kept unless `overwrite`."""
    path = Path(workdir) / name
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (it may hold edits); pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build_notebook(files, step_size), path)
    return path
