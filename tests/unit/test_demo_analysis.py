import os
import pickle
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import awkward as ak
import numpy as np
import pytest
import uproot

from afbox.demo import analysis, data

EVENTS = 12_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return [str(p) for p in data.write_dataset(tmp_path_factory.mktemp("ds"), events=EVENTS, files=3, seed=3)]


@pytest.fixture(scope="module")
def in_process(files):
    return analysis.run(files, step_size=2_500)


def assert_same_histograms(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name].values(flow=True), b[name].values(flow=True)), name
        assert np.array_equal(a[name].variances(flow=True), b[name].variances(flow=True)), name


def test_counts_and_plausible_selection(in_process):
    assert in_process.events_processed == EVENTS
    assert in_process.chunks == 6
    assert 0.02 < in_process.events_selected / EVENTS < 0.12
    assert in_process.histograms["n_jets"].sum().value == pytest.approx(in_process.events_selected, rel=0.02)
    assert in_process.event_rate > 0 and set(in_process.per_worker_rate) == {"in-process"}


def test_top_mass_peaks_near_top(in_process):
    low, high = in_process.top_mass_peak()
    assert 150 <= low and high <= 200


def test_top_mass_picks_highest_pt_trijet_with_a_btag():
    # the three hardest jets have no b-tag, so the b-tagged trijet with the next-highest pT wins
    jets = ak.Array([[
        {"pt": 200.0, "eta": 0.0, "phi": 0.0, "mass": 0.0, "btagCSVV2": 0.1},
        {"pt": 150.0, "eta": 0.0, "phi": 2.0, "mass": 0.0, "btagCSVV2": 0.1},
        {"pt": 100.0, "eta": 0.0, "phi": -2.0, "mass": 0.0, "btagCSVV2": 0.2},
        {"pt": 50.0, "eta": 0.0, "phi": 0.1, "mass": 0.0, "btagCSVV2": 0.9},
    ]])
    j = jets[0]
    def p4(*idx):
        px = sum(j.pt[i] * np.cos(j.phi[i]) for i in idx)
        py = sum(j.pt[i] * np.sin(j.phi[i]) for i in idx)
        e = sum(j.pt[i] for i in idx)  # massless, eta 0
        return np.hypot(px, py), np.sqrt(e**2 - px**2 - py**2)
    candidates = [p4(0, 1, 3), p4(0, 2, 3), p4(1, 2, 3)]
    expected_mass = max(candidates)[1]
    assert analysis.top_mass(jets)[0] == pytest.approx(expected_mass, rel=1e-5)


def test_plan_chunks_covers_every_entry_once():
    chunks = analysis.plan_chunks({"a.root": 10_001, "b.root": 3}, step_size=2_500)
    a = [(s, e) for f, s, e in chunks if f == "a.root"]
    assert a[0][0] == 0 and a[-1][1] == 10_001 and len(a) == 5
    assert all(prev[1] == nxt[0] for prev, nxt in zip(a, a[1:]))
    assert [c for c in chunks if c[0] == "b.root"] == [("b.root", 0, 3)]


def test_step_size_does_not_change_histograms(files, in_process):
    assert_same_histograms(analysis.run(files, step_size=EVENTS).histograms, in_process.histograms)


def test_local_cluster_gives_identical_histograms(files, in_process):
    from distributed import Client, LocalCluster

    progress = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        result = analysis.run(files, client=client, step_size=2_500, on_chunk=lambda d, t: progress.append((d, t)))
    assert_same_histograms(result.histograms, in_process.histograms)
    assert (result.events_processed, result.events_selected) == (in_process.events_processed, in_process.events_selected)
    assert progress[-1] == (6, 6)
    assert all(name.startswith("tcp://") for name in result.workers)
    assert sum(w.events for w in result.workers.values()) == EVENTS


def test_a_run_driven_on_the_clusters_own_worker_gives_identical_histograms(files, in_process):
    """The other site's share of a split run: planned, run and gathered on a worker there, sent back
    in one message; a failure there is raised here, not waited on."""
    from distributed import Client, LocalCluster

    from afbox.demo.federated import Driven

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        driven = Driven(client, files, 2_500)
        chunks, results = driven.result()
        driven.close()  # a message, not a round trip: the scheduler drops the Variable a moment later
        deadline = time.monotonic() + 10
        while (left := client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.extensions["variables"]
                                                                           .variables))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == []
        broken = Driven(client, [files[0] + ".missing"], 2_500)
        with pytest.raises(FileNotFoundError):
            broken.result()
        broken.close()
    assert chunks == analysis.plan_chunks(dict.fromkeys(files, EVENTS // 3), 2_500)
    result = analysis.combine(files, results, 0.0)
    assert_same_histograms(result.histograms, in_process.histograms)
    assert result.events_processed == EVENTS


def test_save_writes_histograms_and_plots(in_process, tmp_path):
    paths = in_process.save(tmp_path)
    assert {p.name for p in paths} >= {"histograms.pkl", "histograms.root", "summary.json", "top_mass.png", "overview.png"}
    assert all(p.stat().st_size > 0 for p in paths)
    assert_same_histograms(pickle.loads((tmp_path / "histograms.pkl").read_bytes()), in_process.histograms)
    with uproot.open(tmp_path / "histograms.root") as f:
        assert np.array_equal(f["top_mass"].values(), in_process.histograms["top_mass"].values())
    assert (tmp_path / "top_mass.png").read_bytes()[:4] == b"\x89PNG"
    lines = in_process.summary_lines()
    assert "events/s" in lines[0] and "GeV" in lines[2]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def xrootd_server(files):
    """A plain xrootd serving a copy of the dataset, so chunks are read over root:// as on a facility.

    Yields the URLs of the copies. The copy lives in a world-readable directory because xrootd
    drops root privileges and cannot enter pytest's private tmp dirs.
    """
    binary = shutil.which("xrootd")
    if binary is None:
        pytest.skip("xrootd binary not installed (apt-get install xrootd-server)")
    with tempfile.TemporaryDirectory(prefix="afbox-xrootd-") as top:
        os.chmod(top, 0o777)
        served = [shutil.copy(f, top) for f in files]
        port = _free_port()
        argv = [binary, "-p", str(port), "-a", os.path.join(top, "adm"), "-n", "afbox-demo-test"]
        if os.geteuid() == 0:  # xrootd refuses to run as root
            user = next((u for u in ("xrootd", "nobody") if _user_exists(u)), None)
            if user is None:
                pytest.skip("running as root and no unprivileged user for xrootd -R")
            argv += ["-R", user]
        log_path = os.path.join(top, "xrootd.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv + [top], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            if proc.poll() is not None:
                with open(log_path) as log:
                    pytest.skip(f"xrootd could not start: {log.read()[-300:]}")
            yield [f"root://127.0.0.1:{port}/{path}" for path in served]
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_reads_root_urls(in_process, xrootd_server):
    result = analysis.run(xrootd_server, step_size=2_500)
    assert result.files == xrootd_server
    assert_same_histograms(result.histograms, in_process.histograms)


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
