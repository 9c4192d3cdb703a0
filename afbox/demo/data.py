"""A synthetic NanoAOD-like ttbar dataset for the demo analysis, written with uproot.

Every event is either a semileptonic ttbar decay (t -> bW -> bqq', t -> bW -> blv, built with real
4-vector decays and boosts so the hadronic trijet mass peaks at the top mass) or background
(W+jets-like with a prompt lepton, or multijet with at most a non-prompt lepton).

Determinism: the arrays depend only on (seed, file index, events in that file); the same arguments
give identical branch contents with the same numpy build (SIMD math may differ in the last bit
between CPUs). The file bytes still differ between writes: uproot stores the creation time and a
fresh UUID in each file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

TTBAR_FRACTION = 0.2
TOP_MASS, TOP_WIDTH = 172.5, 1.4
W_MASS, W_WIDTH = 80.4, 2.1
B_MASS = 4.8
ELECTRON_MASS, MUON_MASS = 0.000511, 0.10566
BASKET_EVENTS = 10_000  # several baskets per file so analysis chunks read only what they need
FILE_PATTERN = "ttbar_nanoaod_{:03d}.root"


@dataclass(frozen=True)
class DatasetFile:
    path: Path
    events: int
    bytes: int


def write_dataset(outdir: str | Path, events: int = 100_000, files: int = 4, seed: int = 1) -> list[Path]:
    """Write `files` ROOT files with `events` in total; returns their paths in order."""
    if events < files or files < 1:
        raise ValueError(f"need at least one event per file (events={events}, files={files})")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    per_file = [events // files + (i < events % files) for i in range(files)]
    paths, first_event = [], 1
    for index, n in enumerate(per_file):
        path = outdir / FILE_PATTERN.format(index)
        arrays = generate_events(n, seed=seed, file_index=index, first_event=first_event)
        _write_events(path, arrays)
        paths.append(path)
        first_event += n
    return paths


def dataset_manifest(outdir: str | Path) -> list[DatasetFile]:
    """The dataset files in `outdir` with their event counts, read from the files themselves."""
    manifest = []
    for path in sorted(Path(outdir).glob(FILE_PATTERN.replace("{:03d}", "[0-9][0-9][0-9]"))):
        with uproot.open(path) as f:
            manifest.append(DatasetFile(path, f["Events"].num_entries, path.stat().st_size))
    return manifest


def generate_events(n: int, seed: int = 1, file_index: int = 0, first_event: int = 1) -> dict[str, object]:
    """The branches of `n` events as numpy arrays and jagged awkward records (NanoAOD layout)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, file_index]))
    is_ttbar = rng.random(n) < TTBAR_FRACTION
    tt = np.flatnonzero(is_ttbar)
    bkg = np.flatnonzero(~is_ttbar)
    is_wjets = rng.random(bkg.size) < 0.4
    wj, qcd = bkg[is_wjets], bkg[~is_wjets]

    jets, electrons, muons = [], [], []
    met_x = rng.normal(0.0, 15.0, n)
    met_y = rng.normal(0.0, 15.0, n)

    # ttbar: the hadronic top gives b + two light quarks, the leptonic top b + lepton + neutrino
    had_top = _random_p4(rng, tt.size, rng.gamma(2.0, 60.0, tt.size), TOP_MASS, TOP_WIDTH)
    lep_top_phi = _p4_to_ptetaphim(had_top)[2] + np.pi + rng.normal(0, 0.6, tt.size)
    lep_top = _random_p4(rng, tt.size, rng.gamma(2.0, 60.0, tt.size), TOP_MASS, TOP_WIDTH, phi=lep_top_phi)
    b_had, w_had = _decay(rng, had_top, B_MASS, _breit_wigner(rng, tt.size, W_MASS, W_WIDTH))
    q1, q2 = _decay(rng, w_had, 0.0, 0.0)
    b_lep, w_lep = _decay(rng, lep_top, B_MASS, _breit_wigner(rng, tt.size, W_MASS, W_WIDTH))
    for quark, flavour_b in ((b_had, True), (q1, False), (q2, False), (b_lep, True)):
        jets.append(_jets_from_partons(rng, tt, quark, flavour_b))
    jets.append(_extra_jets(rng, tt, mean=1.2, b_fraction=0.02))
    _, nu = _w_leptons(rng, tt, w_lep, electrons, muons)
    met_x[tt] += nu[1]
    met_y[tt] += nu[2]

    # W+jets: a prompt lepton from a W with a soft recoil, plus a few light jets
    w_pt = rng.exponential(25.0, wj.size)
    w_boson = _random_p4(rng, wj.size, w_pt, W_MASS, W_WIDTH, eta_spread=1.8)
    _, nu = _w_leptons(rng, wj, w_boson, electrons, muons)
    met_x[wj] += nu[1]
    met_y[wj] += nu[2]
    jets.append(_extra_jets(rng, wj, mean=1.8, b_fraction=0.03))

    # multijet: more jets, occasionally a soft non-prompt lepton inside one
    jets.append(_extra_jets(rng, qcd, mean=3.0, b_fraction=0.04))
    fake = qcd[rng.random(qcd.size) < 0.25]
    _fake_leptons(rng, fake, electrons, muons)

    genweight = np.where(is_ttbar & (rng.random(n) < 0.005), -1.0, 1.0).astype(np.float32)
    event = np.arange(first_event, first_event + n, dtype=np.uint64)
    return {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": ((event - 1) // 500 + 1).astype(np.uint32),
        "event": event,
        "Jet": _collection(n, jets, pt_min=15.0, eta_max=4.7),
        "Electron": _collection(n, electrons, pt_min=5.0, eta_max=2.5),
        "Muon": _collection(n, muons, pt_min=3.0, eta_max=2.4),
        "MET_pt": np.hypot(met_x, met_y).astype(np.float32),
        "MET_phi": np.arctan2(met_y, met_x).astype(np.float32),
        "genWeight": genweight,
    }


def _write_events(path: Path, arrays: dict[str, object]) -> None:
    n = len(arrays["run"])
    pieces = ({k: v[start:start + BASKET_EVENTS] for k, v in arrays.items()} for start in range(0, n, BASKET_EVENTS))
    with uproot.recreate(path) as f:
        tree = f.mktree("Events", next(pieces), title="Events")  # a TTree, as NanoAOD (not RNTuple)
        for piece in pieces:
            tree.extend(piece)


# --- 4-vectors as (E, px, py, pz) tuples of numpy arrays ---

def _breit_wigner(rng, n, mass, width):
    # truncated so a daughter never outweighs its parent
    return np.clip(mass + 0.5 * width * rng.standard_cauchy(n), mass - 5 * width, mass + 5 * width)


def _random_p4(rng, n, pt, mass, width, phi=None, eta_spread=1.0):
    eta = rng.normal(0.0, eta_spread, n)
    phi = rng.uniform(-np.pi, np.pi, n) if phi is None else phi
    return _p4_from_ptetaphim(pt, eta, phi, _breit_wigner(rng, n, mass, width))


def _p4_from_ptetaphim(pt, eta, phi, mass):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.sqrt(px**2 + py**2 + pz**2 + mass**2), px, py, pz


def _p4_to_ptetaphim(p4):
    e, px, py, pz = p4
    pt = np.hypot(px, py)
    return pt, np.arcsinh(pz / np.maximum(pt, 1e-9)), np.arctan2(py, px), np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))


def _decay(rng, parent, m1, m2):
    """Isotropic two-body decay in the parent rest frame, boosted back to the lab."""
    e, px, py, pz = parent
    n = e.size
    m = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))
    m1, m2 = np.broadcast_to(m1, n), np.broadcast_to(m2, n)
    p = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0)) / (2 * m)
    cos_t, phi = rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n)
    sin_t = np.sqrt(1 - cos_t**2)
    d = (p * sin_t * np.cos(phi), p * sin_t * np.sin(phi), p * cos_t)
    first = (np.sqrt(p**2 + m1**2), *d)
    second = (np.sqrt(p**2 + m2**2), *(-x for x in d))
    beta = (px / e, py / e, pz / e)
    return _boost(first, beta), _boost(second, beta)


def _boost(p4, beta):
    e, px, py, pz = p4
    bx, by, bz = beta
    b2 = bx**2 + by**2 + bz**2
    gamma = 1 / np.sqrt(1 - b2)
    bp = bx * px + by * py + bz * pz
    k = np.where(b2 > 0, (gamma - 1) / np.where(b2 > 0, b2, 1), 0) * bp + gamma * e
    return gamma * (e + bp), px + k * bx, py + k * by, pz + k * bz


# --- detector-level objects as dicts of flat arrays with an "event" index ---

def _btag(rng, n, is_b):
    # CSVv2-like: light jets pile up near 0, b jets near 1
    return np.where(is_b, rng.beta(1.2, 0.5, n), rng.beta(0.5, 6.0, n)).astype(np.float32)


def _jets_from_partons(rng, events, parton, is_b):
    pt, eta, phi, _ = _p4_to_ptetaphim(parton)
    n = events.size
    pt = pt * rng.normal(1.0, 0.08, n)
    return {
        "event": events,
        "pt": pt,
        "eta": eta + rng.normal(0, 0.02, n),
        "phi": _wrap(phi + rng.normal(0, 0.02, n)),
        "mass": pt * rng.uniform(0.05, 0.12, n),
        "btagCSVV2": _btag(rng, n, np.full(n, is_b)),
    }


def _extra_jets(rng, events, mean, b_fraction):
    counts = rng.poisson(mean, events.size)
    idx = np.repeat(events, counts)
    n = idx.size
    pt = 15.0 * (1 + rng.pareto(2.2, n))  # falling power-law spectrum above 15 GeV
    return {
        "event": idx,
        "pt": pt,
        "eta": rng.normal(0.0, 2.0, n),
        "phi": rng.uniform(-np.pi, np.pi, n),
        "mass": pt * rng.uniform(0.05, 0.15, n),
        "btagCSVV2": _btag(rng, n, rng.random(n) < b_fraction),
    }


def _w_leptons(rng, events, w, electrons, muons):
    """W -> l nu with e or mu at equal rates; appends the lepton, returns (lepton, neutrino) p4."""
    is_mu = rng.random(events.size) < 0.5
    lep, nu = _decay(rng, w, np.where(is_mu, MUON_MASS, ELECTRON_MASS), 0.0)
    pt, eta, phi, mass = _p4_to_ptetaphim(lep)
    pt = pt * rng.normal(1.0, 0.02, events.size)
    charge = rng.choice(np.array([-1, 1], dtype=np.int32), events.size)
    _add_leptons(rng, events, pt, eta, phi, charge, is_mu, prompt=True, electrons=electrons, muons=muons)
    return lep, nu


def _fake_leptons(rng, events, electrons, muons):
    n = events.size
    pt = 5.0 + rng.exponential(10.0, n)
    charge = rng.choice(np.array([-1, 1], dtype=np.int32), n)
    _add_leptons(rng, events, pt, rng.normal(0, 1.2, n), rng.uniform(-np.pi, np.pi, n), charge,
                 rng.random(n) < 0.5, prompt=False, electrons=electrons, muons=muons)


def _add_leptons(rng, events, pt, eta, phi, charge, is_mu, prompt, electrons, muons):
    e, m = ~is_mu, is_mu
    ne, nm = int(e.sum()), int(m.sum())
    # cutBased: 0 fail, 1 veto, 2 loose, 3 medium, 4 tight
    id_probs = [0.0, 0.05, 0.07, 0.13, 0.75] if prompt else [0.4, 0.3, 0.15, 0.1, 0.05]
    electrons.append({
        "event": events[e], "pt": pt[e], "eta": eta[e], "phi": phi[e],
        "mass": np.full(ne, ELECTRON_MASS), "charge": charge[e],
        "cutBased": rng.choice(np.arange(5, dtype=np.int32), ne, p=id_probs),
    })
    muons.append({
        "event": events[m], "pt": pt[m], "eta": eta[m], "phi": phi[m],
        "mass": np.full(nm, MUON_MASS), "charge": charge[m],
        "tightId": rng.random(nm) < (0.95 if prompt else 0.5),
        "pfRelIso04_all": rng.exponential(0.03, nm) if prompt else 0.05 + rng.exponential(0.4, nm),
    })


def _collection(n, pieces, pt_min, eta_max):
    """Concatenate object pieces, apply acceptance, sort by pt within each event, make jagged."""
    flat = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    keep = (flat["pt"] > pt_min) & (np.abs(flat["eta"]) < eta_max)
    order = np.lexsort((-flat["pt"][keep], flat["event"][keep]))
    counts = np.bincount(flat["event"][keep], minlength=n)
    fields = {}
    for name, values in flat.items():
        if name == "event":
            continue
        values = values[keep][order]
        if values.dtype == np.float64:
            values = values.astype(np.float32)
        fields[name] = values
    return ak.unflatten(ak.zip(fields), counts)


def _wrap(phi):
    return (phi + np.pi) % (2 * np.pi) - np.pi
