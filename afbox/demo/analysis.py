"""An AGC-style ttbar selection with uproot, awkward and hist, spread over Dask workers by chunk.

Each chunk (an entry range of one file) is a task that opens the file itself, so workers read
`root://` URLs through the facility's XCache; partial histograms come back and are summed in chunk
order, which makes the result independent of how many workers ran it.
"""
from __future__ import annotations

import json
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import awkward as ak
import hist
import numpy as np
import uproot

LEPTON_PT, LEPTON_ETA = 30.0, 2.1
JET_PT, JET_ETA = 30.0, 2.4
BTAG_THRESHOLD = 0.5
DEFAULT_STEP_SIZE = 25_000
BRANCHES = [
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2",
    "Electron_pt", "Electron_eta", "Electron_cutBased",
    "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_pfRelIso04_all",
    "MET_pt", "genWeight",
]


def make_histograms() -> dict[str, hist.Hist]:
    def h(axis):
        return hist.Hist(axis, storage=hist.storage.Weight())

    return {
        "top_mass": h(hist.axis.Regular(25, 50, 550, name="m_bjj", label=r"$m_{bjj}$ [GeV]")),
        "ht": h(hist.axis.Regular(30, 0, 1500, name="ht", label=r"$H_T$ [GeV]")),
        "jet1_pt": h(hist.axis.Regular(30, 0, 600, name="pt", label=r"leading jet $p_T$ [GeV]")),
        "lepton_pt": h(hist.axis.Regular(30, 0, 300, name="pt", label=r"lepton $p_T$ [GeV]")),
        "met": h(hist.axis.Regular(30, 0, 300, name="met", label=r"$p_T^{miss}$ [GeV]")),
        "n_jets": h(hist.axis.Integer(4, 13, name="n", label="number of jets")),
        "n_btags": h(hist.axis.Integer(1, 7, name="n", label="number of b-tagged jets")),
    }


def read_events(url: str, entry_start: int | None = None, entry_stop: int | None = None) -> ak.Array:
    with uproot.open(url) as f:
        return f["Events"].arrays(BRANCHES, entry_start=entry_start, entry_stop=entry_stop)


def select_events(events: ak.Array) -> ak.Array:
    """Exactly one tight lepton, >= 4 jets, >= 1 b-tag; returns jets, lepton pt, MET and weight."""
    tight_e = (events.Electron_pt > LEPTON_PT) & (abs(events.Electron_eta) < LEPTON_ETA) & (events.Electron_cutBased >= 4)
    tight_mu = ((events.Muon_pt > LEPTON_PT) & (abs(events.Muon_eta) < LEPTON_ETA)
                & events.Muon_tightId & (events.Muon_pfRelIso04_all < 0.15))
    jets = ak.zip({k: events[f"Jet_{k}"] for k in ("pt", "eta", "phi", "mass", "btagCSVV2")})
    jets = jets[(jets.pt > JET_PT) & (abs(jets.eta) < JET_ETA)]
    n_leptons = ak.sum(tight_e, axis=1) + ak.sum(tight_mu, axis=1)
    n_btags = ak.sum(jets.btagCSVV2 > BTAG_THRESHOLD, axis=1)
    passed = (n_leptons == 1) & (ak.num(jets) >= 4) & (n_btags >= 1)
    lepton_pt = ak.concatenate([events.Electron_pt[tight_e], events.Muon_pt[tight_mu]], axis=1)
    return ak.zip({
        "jets": jets[passed],
        "lepton_pt": ak.firsts(lepton_pt[passed]),
        "met": events.MET_pt[passed],
        "weight": events.genWeight[passed],
    }, depth_limit=1)


def top_mass(jets: ak.Array) -> ak.Array:
    """Mass of the trijet with the largest vector-sum pT among trijets holding a b-tag (as AGC).

    The combinatorics run on flat numpy arrays: far fewer awkward calls per chunk.
    """
    px, py = jets.pt * np.cos(jets.phi), jets.pt * np.sin(jets.phi)
    pz = jets.pt * np.sinh(jets.eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + jets.mass**2)
    p4 = ak.zip({"e": e, "px": px, "py": py, "pz": pz, "b": jets.btagCSVV2 > BTAG_THRESHOLD})
    trijets = ak.combinations(p4, 3)
    counts = ak.num(trijets)
    flat = ak.flatten(trijets)
    parts = [{k: ak.to_numpy(flat[str(i)][k]) for k in ("e", "px", "py", "pz", "b")} for i in range(3)]
    e, px, py, pz = (parts[0][k] + parts[1][k] + parts[2][k] for k in ("e", "px", "py", "pz"))
    has_b = parts[0]["b"] | parts[1]["b"] | parts[2]["b"]
    pt = np.where(has_b, np.hypot(px, py), -1.0)
    mass = np.where(has_b, np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0)), np.nan)
    best = ak.argmax(ak.unflatten(pt, counts), axis=1, keepdims=True)
    return ak.nan_to_none(ak.firsts(ak.unflatten(mass, counts)[best]))


def fill_histograms(selected: ak.Array) -> dict[str, hist.Hist]:
    hists = make_histograms()
    jets, w = selected.jets, ak.to_numpy(selected.weight)
    masses = top_mass(jets)
    found = ak.to_numpy(~ak.is_none(masses))
    hists["top_mass"].fill(ak.to_numpy(masses[found]), weight=w[found])
    hists["ht"].fill(ak.to_numpy(ak.sum(jets.pt, axis=1)), weight=w)
    hists["jet1_pt"].fill(ak.to_numpy(jets.pt[:, 0]), weight=w)
    hists["lepton_pt"].fill(ak.to_numpy(selected.lepton_pt), weight=w)
    hists["met"].fill(ak.to_numpy(selected.met), weight=w)
    hists["n_jets"].fill(ak.to_numpy(ak.num(jets)), weight=w)
    hists["n_btags"].fill(ak.to_numpy(ak.sum(jets.btagCSVV2 > BTAG_THRESHOLD, axis=1)), weight=w)
    return hists


@dataclass
class ChunkResult:
    events: int
    selected: int
    histograms: dict[str, hist.Hist]
    worker: str
    seconds: float


def process_chunk(url: str, entry_start: int, entry_stop: int) -> ChunkResult:
    """One task: read an entry range, select, fill. Runs on a Dask worker or in-process."""
    start = time.perf_counter()
    selected = select_events(read_events(url, entry_start, entry_stop))
    hists = fill_histograms(selected)
    return ChunkResult(entry_stop - entry_start, len(selected), hists, _worker_name(), time.perf_counter() - start)


def count_entries(url: str) -> int:
    with uproot.open(url) as f:
        return f["Events"].num_entries


def plan_chunks(entries: dict[str, int], step_size: int) -> list[tuple[str, int, int]]:
    """Split each file into near-equal entry ranges of at most `step_size` events."""
    chunks = []
    for url, n in entries.items():
        pieces = max(1, math.ceil(n / step_size))
        bounds = [round(i * n / pieces) for i in range(pieces + 1)]
        chunks += [(url, a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    return chunks


@dataclass
class WorkerStats:
    events: int = 0
    busy_seconds: float = 0.0
    chunks: int = 0

    @property
    def rate(self) -> float:
        """Events per second of task time on this worker (reading + selection + filling)."""
        return self.events / self.busy_seconds if self.busy_seconds else 0.0


@dataclass
class AnalysisResult:
    files: list[str]
    events_processed: int
    events_selected: int
    wall_seconds: float
    chunks: int
    histograms: dict[str, hist.Hist]
    workers: dict[str, WorkerStats] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)  # file -> the site that ran it (a split run)

    @property
    def event_rate(self) -> float:
        return self.events_processed / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def per_worker_rate(self) -> dict[str, float]:
        return {name: stats.rate for name, stats in self.workers.items()}

    def top_mass_peak(self) -> tuple[float, float]:
        """Edges of the fullest bin of the reconstructed top-mass histogram."""
        h = self.histograms["top_mass"]
        i = int(np.argmax(h.values()))
        edges = h.axes[0].edges
        return float(edges[i]), float(edges[i + 1])

    def summary_lines(self) -> list[str]:
        fraction = self.events_selected / self.events_processed if self.events_processed else 0.0
        low, high = self.top_mass_peak()
        peak = f"reconstructed top mass peaks at {low:.0f}-{high:.0f} GeV" if self.events_selected else "no top-mass peak"
        lines = [
            f"processed {self.events_processed:,} events from {len(self.files)} file(s) in {self.chunks} chunk(s)"
            f" in {self.wall_seconds:.2f} s: {self.event_rate:,.0f} events/s",
            f"selected {self.events_selected:,} events ({fraction:.1%}): 1 tight lepton, >=4 jets, >=1 b-tag",
            peak,
        ]
        for name, stats in sorted(self.workers.items()):
            lines.append(f"  {name}: {stats.chunks} chunk(s), {stats.events:,} events, "
                         f"{stats.rate:,.0f} events/s while busy")
        return lines

    def save(self, outdir: str | Path) -> list[Path]:
        """Write histograms (.pkl and .root), a summary.json and PNG plots; returns the paths."""
        from . import plots

        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        pkl, root, summary = outdir / "histograms.pkl", outdir / "histograms.root", outdir / "summary.json"
        pkl.write_bytes(pickle.dumps(self.histograms))
        with uproot.recreate(root) as f:
            for name, h in self.histograms.items():
                f[name] = h
        summary.write_text(json.dumps(self.summary(), indent=2) + "\n")
        return [pkl, root, summary, *plots.save_plots(self.histograms, outdir)]

    def summary(self) -> dict:
        return {
            "files": self.files,
            "events_processed": self.events_processed,
            "events_selected": self.events_selected,
            "wall_seconds": self.wall_seconds,
            "event_rate": self.event_rate,
            "chunks": self.chunks,
            "top_mass_peak_gev": list(self.top_mass_peak()),
            "workers": {n: {"events": s.events, "busy_seconds": s.busy_seconds, "chunks": s.chunks,
                            "rate": s.rate} for n, s in self.workers.items()},
        }


def run(files: list[str], client=None, step_size: int = DEFAULT_STEP_SIZE,
        on_chunk: Callable[[int, int], None] | None = None) -> AnalysisResult:
    """Run the selection over `files` (paths or root:// URLs), on `client`'s workers or in-process.

    `on_chunk(done, total)` is called as chunks finish, for progress display.
    """
    files = [str(f) for f in files]
    start = time.perf_counter()
    if client is None:
        entries = dict(zip(files, map(count_entries, files)))
        chunks = plan_chunks(entries, step_size)
        results = []
        for chunk in chunks:
            results.append(process_chunk(*chunk))
            if on_chunk:
                on_chunk(len(results), len(chunks))
    else:
        from distributed import as_completed

        futures = submit_chunks(files, client, step_size)
        try:
            for done, _ in enumerate(as_completed(futures), 1):
                if on_chunk:
                    on_chunk(done, len(futures))
            results = client.gather(futures)
        except BaseException:
            client.cancel(futures)  # one failed chunk fails the run; stop the rest occupying workers
            raise
    wall = time.perf_counter() - start
    return combine(files, results, wall)


def submit_chunks(files: list[str], client, step_size: int = DEFAULT_STEP_SIZE) -> list:
    """Futures of every chunk of `files` on `client`'s workers, in plan order (files, then entries)."""
    return plan_and_submit(files, client, step_size)[1]


def plan_and_submit(files: list[str], client, step_size: int = DEFAULT_STEP_SIZE) -> tuple[list, list]:
    """The chunks (url, start, stop) of `files` and their futures on `client`'s workers, in plan order."""
    counts = client.gather(client.map(count_entries, files, pure=False))
    chunks = plan_chunks(dict(zip(files, counts)), step_size)
    return chunks, [client.submit(process_chunk, *chunk, pure=False) for chunk in chunks]


def combine(files: list[str], results: list[ChunkResult], wall: float) -> AnalysisResult:
    hists = make_histograms()
    workers: dict[str, WorkerStats] = {}
    for r in results:  # fixed order, so sums are bit-identical however the chunks were scheduled
        for name, h in r.histograms.items():
            hists[name] += h
        stats = workers.setdefault(r.worker, WorkerStats())
        stats.events += r.events
        stats.busy_seconds += r.seconds
        stats.chunks += 1
    return AnalysisResult(files, sum(r.events for r in results), sum(r.selected for r in results),
                          wall, len(results), hists, workers)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "in-process"
