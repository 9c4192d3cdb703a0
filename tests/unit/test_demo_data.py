import awkward as ak
import numpy as np
import pytest
import uproot

from afbox.demo import data

EXPECTED_DTYPES = {
    "run": "uint32", "luminosityBlock": "uint32", "event": "uint64", "MET_pt": "float32",
    "MET_phi": "float32", "genWeight": "float32", "nJet": "int32", "nElectron": "int32", "nMuon": "int32",
    "Jet_pt": "float32", "Jet_eta": "float32", "Jet_phi": "float32", "Jet_mass": "float32",
    "Jet_btagCSVV2": "float32", "Electron_pt": "float32", "Electron_eta": "float32",
    "Electron_phi": "float32", "Electron_mass": "float32", "Electron_charge": "int32",
    "Electron_cutBased": "int32", "Muon_pt": "float32", "Muon_eta": "float32", "Muon_phi": "float32",
    "Muon_mass": "float32", "Muon_charge": "int32", "Muon_tightId": "bool", "Muon_pfRelIso04_all": "float32",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return data.write_dataset(tmp_path_factory.mktemp("ds"), events=6_000, files=3, seed=7)


def read_all(paths):
    return ak.concatenate([uproot.open(p)["Events"].arrays() for p in paths])


def test_files_are_named_and_split_evenly(dataset, tmp_path):
    assert [p.name for p in dataset] == [f"ttbar_nanoaod_00{i}.root" for i in range(3)]
    manifest = data.dataset_manifest(dataset[0].parent)
    assert [(m.path, m.events) for m in manifest] == [(p, 2_000) for p in dataset]
    assert all(m.bytes > 0 for m in manifest)
    uneven = data.write_dataset(tmp_path, events=10, files=3)
    assert [m.events for m in data.dataset_manifest(tmp_path)] == [4, 3, 3]
    assert len(uneven) == 3


def test_rejects_fewer_events_than_files(tmp_path):
    with pytest.raises(ValueError):
        data.write_dataset(tmp_path, events=2, files=3)


def test_nanoaod_schema(dataset):
    tree = uproot.open(dataset[0])["Events"]
    assert isinstance(tree, uproot.TTree)
    types = {name: tree[name].interpretation for name in tree.keys()}
    assert set(types) == set(EXPECTED_DTYPES)
    for name, dtype in EXPECTED_DTYPES.items():
        interpretation = types[name]
        inner = getattr(interpretation, "content", interpretation)
        assert inner.to_dtype == np.dtype(dtype), name
    events = tree.arrays()
    for collection in ("Jet", "Electron", "Muon"):
        assert ak.all(events[f"n{collection}"] == ak.num(events[f"{collection}_pt"]))


def test_event_numbers_run_across_files(dataset):
    events = read_all(dataset)
    assert ak.all(events.event == np.arange(1, 6_001))
    assert ak.all(events.run == 1)
    assert ak.all(events.luminosityBlock == (events.event - 1) // 500 + 1)


def test_same_seed_same_arrays_other_seed_differs(dataset, tmp_path):
    again = data.write_dataset(tmp_path / "again", events=6_000, files=3, seed=7)
    other = data.write_dataset(tmp_path / "other", events=6_000, files=3, seed=8)
    first, second, third = read_all(dataset), read_all(again), read_all(other)
    for field in first.fields:
        assert ak.array_equal(first[field], second[field]), field
    assert not ak.array_equal(first.Jet_pt, third.Jet_pt)


def test_distributions_are_physical(dataset):
    events = read_all(dataset)
    jet_pt = events.Jet_pt
    assert ak.all(jet_pt[:, 1:] <= jet_pt[:, :-1]), "jets sorted by pt like NanoAOD"
    flat_pt = ak.to_numpy(ak.flatten(jet_pt))
    assert flat_pt.min() > 15 and np.median(flat_pt) < 40 < np.quantile(flat_pt, 0.9)
    assert ak.max(abs(events.Jet_eta)) < 4.7 and ak.max(abs(events.Muon_eta)) < 2.4
    assert ak.max(abs(events.Electron_eta)) < 2.5
    assert ak.max(abs(events.Jet_phi)) <= np.pi
    btag = ak.to_numpy(ak.flatten(events.Jet_btagCSVV2))
    counts, _ = np.histogram(btag, bins=10, range=(0, 1))
    assert counts[0] == counts.max() and counts[-1] > counts[5], "light jets near 0, b jets near 1"
    assert ak.all(events.MET_pt >= 0)
    assert set(np.unique(ak.to_numpy(events.genWeight))) <= {-1.0, 1.0}


def test_ttbar_like_events_are_present(dataset):
    events = read_all(dataset)
    good = (events.Jet_pt > 30) & (abs(events.Jet_eta) < 2.4)
    n_jets = ak.sum(good, axis=1)
    n_b = ak.sum(good & (events.Jet_btagCSVV2 > 0.5), axis=1)
    n_lep = ak.sum(events.Electron_pt > 30, axis=1) + ak.sum(events.Muon_pt > 30, axis=1)
    fraction = ak.mean((n_jets >= 4) & (n_b >= 2) & (n_lep >= 1))
    assert 0.02 < fraction < 0.2
