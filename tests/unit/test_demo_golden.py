"""A small fixed dataset gives exactly these histograms: catches any drift in generation or selection."""
import numpy as np

from afbox.demo import analysis
from afbox.demo.data import write_dataset

TOP_MASS = [0, 4, 8, 14, 25, 44, 54, 19, 14, 16, 9, 3, 9, 5, 2, 2, 4, 0, 1, 2, 2, 0, 0, 0, 0]
N_JETS = [202, 35, 2, 0, 0, 0, 0, 0, 0]


def test_fixed_dataset_gives_fixed_bin_contents(tmp_path):
    files = write_dataset(tmp_path, events=5000, files=1, seed=1)
    r = analysis.run([str(f) for f in files], client=None)
    assert r.events_processed == 5000 and r.events_selected == 243
    assert np.array_equal(r.histograms["top_mass"].values(), np.array(TOP_MASS, dtype=float))
    assert np.array_equal(r.histograms["n_jets"].values(), np.array(N_JETS, dtype=float))
    # the signal peak: the busiest top-mass bin is the one holding 172.5 GeV
    axis = r.histograms["top_mass"].axes[0]
    assert axis.index(172.5) == int(np.argmax(r.histograms["top_mass"].values()))
