"""The demo analysis end to end: data written to the facility's own origin, read through its XCache,
computed on its Dask workers; same seed, same histograms."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import afbox, dask_client, isolated_env, service, shared_tmpdir, status, wait_for, xrootd_available

pytestmark = pytest.mark.integration
if not xrootd_available():
    pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)", allow_module_level=True)

PORT_BASE = 20400
RECORDS = Path(__file__).resolve().parent.parent / "fixtures" / "records"


@pytest.fixture(scope="module")
def fac():
    base = shared_tmpdir("afbox-demo-")
    env = isolated_env(base, PORT_BASE) | {"XDG_DATA_HOME": str(base / "data")}
    workdir = base / "work"
    afbox("up", "--profile", "ci", "--port-base", str(PORT_BASE), "--workdir", str(workdir), env=env)
    yield dict(env=env, base=base, workdir=workdir)
    afbox("down", "--name", "ci", env=env, check=False)


def executed(env: dict) -> dict[str, int]:
    with dask_client(env) as c:
        return c.run(lambda dask_worker: dask_worker.state.executed_count)


def test_demo_data_and_run_through_cache_and_workers(fac):
    env = fac["env"]
    st = status(env, "ci")
    assert next(s for s in st["services"] if s["name"] == "origin")["health"] == "healthy"
    out = afbox("demo", "data", "--events", "30000", "--files", "2", "--seed", "7", env=env).stdout
    assert "wrote 30,000 events in 2 files" in out and "through the xcache" in out

    before = executed(env)
    run = afbox("demo", "run", "--step-size", "10000", env=env, timeout=300).stdout
    after = executed(env)
    assert "processed 30,000 events" in run
    assert sum(after.values()) - sum(before.values()) >= 4  # 30k events in 10k chunks over 2 files
    assert set(after) == set(before) and len(after) == 2

    out_dir = fac["workdir"] / "agc_output"
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["events_processed"] == 30000
    assert set(summary["workers"]) <= set(after)  # chunks ran on the facility's own workers
    for png in ("top_mass.png", "overview.png"):
        assert (out_dir / png).stat().st_size > 10_000
    assert (fac["workdir"] / "agc_demo.ipynb").exists()

    # the XCache now holds the files
    cache = Path(env["XDG_CACHE_HOME"], "afbox", "ci", "xcache", "demo", "ttbar", "30000ev-2f-seed7")
    cached = sorted(p.name for p in cache.glob("*.root"))
    assert cached == ["ttbar_nanoaod_000.root", "ttbar_nanoaod_001.root"]
    assert all((cache / n).stat().st_blocks > 0 for n in cached)

    # same seed, same histogram contents: compare with an in-process run over the origin's files
    from afbox.demo import analysis
    origin = Path(env["XDG_DATA_HOME"], "afbox", "ci", "origin", "demo", "ttbar", "30000ev-2f-seed7")
    local = analysis.run(sorted(str(p) for p in origin.glob("*.root")), client=None, step_size=10000)
    hists = pickle.loads((out_dir / "histograms.pkl").read_bytes())
    for key, h in local.histograms.items():
        assert np.array_equal(hists[key].values(), h.values()), key
    top = hists["top_mass"]
    peak = top.axes[0].centers[int(np.argmax(top.values()))]
    assert 150 < peak < 200


def test_demo_data_is_deterministic(fac):
    env = fac["env"]
    origin = Path(env["XDG_DATA_HOME"], "afbox", "ci", "origin", "demo", "ttbar", "2000ev-1f-seed11")
    import uproot
    afbox("demo", "data", "--events", "2000", "--files", "1", "--seed", "11", env=env)
    first = uproot.open(origin / "ttbar_nanoaod_000.root")["Events"]["Jet_pt"].array(library="np")
    afbox("demo", "data", "--events", "2000", "--files", "1", "--seed", "11", env=env)
    again = uproot.open(origin / "ttbar_nanoaod_000.root")["Events"]["Jet_pt"].array(library="np")
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_demo_on_a_facility_with_a_remote_origin_says_why(tmp_path):
    base = shared_tmpdir("afbox-demo-remote-")
    env = isolated_env(base, 0)
    state = base / "state" / "afbox" / "x"
    state.mkdir(parents=True)
    # a real facility's record (captured), of one that reads from a remote origin
    rec = json.loads((RECORDS / "v1-scaled.json").read_text().replace("@BASE@", str(base)))
    rec.update(origin_dir=None, workdir=str(tmp_path))
    rec["services"].pop("origin")
    (state / "facility.json").write_text(json.dumps(rec))
    p = afbox("demo", "data", "--name", "x", env=env, check=False)
    assert p.returncode == 1 and "remote origin" in p.stderr and "--origin" in p.stderr


def test_cache_purge_asks_first_and_the_data_comes_back(fac):
    env = fac["env"]
    cache = Path(env["XDG_CACHE_HOME"], "afbox", "ci", "xcache", "demo", "ttbar")
    assert list(cache.rglob("*.root"))
    no = subprocess.run([str(Path(sys.executable).parent / "afbox"), "cache", "purge"], input="n\n", env=env,
                        capture_output=True, text=True, timeout=60)
    assert no.returncode == 1 and "aborted: the question was answered no" in no.stderr
    assert list(cache.rglob("*.root"))  # nothing deleted without a yes
    yes = afbox("cache", "purge", "--yes", env=env).stdout
    assert "purged" in yes and not list(cache.rglob("*.root"))
    stats = json.loads(afbox("cache", "stats", "--json", env=env).stdout)
    assert stats["files"] == 0
    # the data is still at the origin: the next run reads it through the cache again
    afbox("restart", "xcache", env=env)
    wait_for(lambda: service(status(env, "ci"), "xcache")["health"] == "healthy", 30, what="xcache healthy again")
    run = afbox("demo", "run", env=env, timeout=300).stdout
    assert "processed 2,000 events" in run  # the dataset written last
    assert list(cache.rglob("*.root"))
