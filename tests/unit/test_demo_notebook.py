from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from afbox.demo import data
from afbox.demo.notebook import write_notebook

REPO = Path(__file__).resolve().parents[2]


def outputs_of(cell):
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
    return text, images


def test_notebook_executes_on_a_dask_cluster(tmp_path, monkeypatch):
    from distributed import LocalCluster

    files = [str(p) for p in data.write_dataset(tmp_path / "data", events=4_000, files=2, seed=5)]
    path = write_notebook(tmp_path, files, step_size=1_000)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    # a thread-based cluster is enough: the kernel is another process and must reach it over tcp
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=":0") as cluster:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
        monkeypatch.setenv("PYTHONPATH", str(REPO))
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    run_text = next(t for t, _ in map(outputs_of, code) if "events/s" in t)
    assert "processed 4,000 events from 2 file(s) in 4 chunk(s)" in run_text
    assert "tcp://" in run_text, "chunks ran on the cluster's worker, not in the kernel"
    assert any(images for _, images in map(outputs_of, code)), "the overview plot is shown inline"
    assert (tmp_path / "agc_output" / "overview.png").stat().st_size > 0


def test_existing_notebook_is_kept_unless_overwrite(tmp_path):
    path = write_notebook(tmp_path, ["a.root"])
    path.write_text("edited")
    with pytest.raises(FileExistsError):
        write_notebook(tmp_path, ["b.root"])
    assert "'b.root'" in write_notebook(tmp_path, ["b.root"], overwrite=True).read_text()
