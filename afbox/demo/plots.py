"""PNG plots of the demo histograms.

Figures are built with matplotlib's object API (no pyplot) so saving never switches the backend
of a running notebook; `Figure.savefig` renders with Agg.
"""
from __future__ import annotations

from pathlib import Path

import hist
import numpy as np
from matplotlib.figure import Figure

TITLES = {
    "top_mass": "reconstructed hadronic top",
    "ht": "scalar sum of jet $p_T$",
    "jet1_pt": "leading jet",
    "lepton_pt": "tight lepton",
    "met": "missing transverse momentum",
    "n_jets": "jet multiplicity",
    "n_btags": "b-tag multiplicity",
}


def draw(ax, h: hist.Hist, title: str = "") -> None:
    axis = h.axes[0]
    values, variances = h.values(), h.variances()
    ax.stairs(values, axis.edges, fill=True, alpha=0.35, color="tab:blue")
    ax.stairs(values, axis.edges, color="tab:blue")
    ax.errorbar(axis.centers, values, yerr=np.sqrt(variances), fmt="none", ecolor="black", lw=0.8)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("events")
    ax.set_title(title, fontsize="medium")
    ax.set_ylim(bottom=0)


def draw_overview(histograms: dict[str, hist.Hist], fig: Figure) -> Figure:
    """All histograms on one figure, the top mass first."""
    axes = fig.subplots(2, 4).ravel()
    for ax, (name, h) in zip(axes, histograms.items()):
        draw(ax, h, TITLES.get(name, name))
    for ax in axes[len(histograms):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def save_plots(histograms: dict[str, hist.Hist], outdir: str | Path) -> list[Path]:
    """One PNG per histogram plus overview.png; returns their paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, h in histograms.items():
        fig = Figure(figsize=(5, 4))
        draw(fig.subplots(), h, TITLES.get(name, name))
        fig.tight_layout()
        paths.append(outdir / f"{name}.png")
        fig.savefig(paths[-1], dpi=100)
    overview = outdir / "overview.png"
    draw_overview(histograms, Figure(figsize=(16, 7))).savefig(overview, dpi=100)
    return paths + [overview]
