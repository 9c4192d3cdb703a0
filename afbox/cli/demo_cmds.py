"""afbox demo data / run: a small AGC-style ttbar analysis through the facility's XCache and Dask."""
from __future__ import annotations

import time
from pathlib import Path

import click

from .options import PATH_DIR, name_option


@click.group("demo")
def demo_group():
    """The demo analysis (synthetic NanoAOD, ttbar selection on the facility's workers)."""


@demo_group.command("data")
@name_option
@click.option("--events", "events", default=100_000, show_default=True, type=click.IntRange(1, 100_000_000),
              help="Events in total.")
@click.option("--files", default=4, show_default=True, type=click.IntRange(1, 1000), help="Split over this many files.")
@click.option("--seed", default=1, show_default=True, type=click.IntRange(0, 2**32 - 1), help="Same seed, same events.")
def data(name, events, files, seed):
    """Write the synthetic dataset into the facility's origin, to be read through the XCache."""
    from ..demo.data import write_dataset
    from ..demo.on_facility import dataset_urls, new_dataset_dir, running_record

    rec = running_record(name)
    out = new_dataset_dir(rec, events, files, seed)
    t0 = time.monotonic()
    paths = write_dataset(out, events=events, files=files, seed=seed)
    for p in [out, *out.parents]:
        if p == Path(rec.origin_dir).parent:
            break
        p.chmod(0o755)  # the origin's xrootd may run as its own user
    size = sum(p.stat().st_size for p in paths)
    click.echo(f"wrote {events:,} events in {len(paths)} files ({size / 1e6:.1f} MB) to {out} "
               f"in {time.monotonic() - t0:.1f}s")
    urls, via = dataset_urls(rec)
    click.echo(f"read them through the {via}:")
    for u in urls:
        click.echo(f"  {u}")


@demo_group.command("run")
@name_option
@click.option("--direct", is_flag=True, help="Read from the origin, bypassing the XCache.")
@click.option("--step-size", default=25_000, show_default=True, type=click.IntRange(100, 10_000_000),
              help="Events per task.")
@click.option("--output", type=PATH_DIR, help="Where histograms and plots go (default: <workdir>/agc_output).")
def run(name, direct, step_size, output):
    """Run the analysis on the facility's Dask workers; write histograms, plots and the notebook."""
    from distributed import Client

    from ..demo import analysis
    from ..demo.notebook import write_notebook
    from ..demo.on_facility import dataset_urls, running_record

    rec = running_record(name)
    urls, via = dataset_urls(rec, direct=direct)
    sched = rec.urls()["scheduler"]
    click.echo(f"{len(urls)} files through the {via}; Dask at {sched}")
    from .. import security
    with Client(sched, timeout=30, security=security(rec.facility)) as client:
        def progress(done, total):
            click.echo(f"\r  chunks {done}/{total}", nl=done == total)
        result = analysis.run(urls, client=client, step_size=step_size, on_chunk=progress)
    outdir = Path(output) if output else Path(rec.workdir) / "agc_output"
    result.save(outdir)
    for line in result.summary_lines():
        click.echo(line)
    click.echo(f"histograms and plots: {outdir}")
    nb = Path(rec.workdir) / "agc_demo.ipynb"
    if not nb.exists():
        write_notebook(rec.workdir, urls)
        click.echo(f"notebook: {nb}")
        return
    try:
        reads_these = all(u in nb.read_text(errors="replace") for u in urls)
    except OSError:
        reads_these = False
    if reads_these:
        click.echo(f"notebook: {nb} (kept: it may hold your edits)")
    else:
        click.echo(f"notebook: {nb} kept as it is (it may hold your edits), but it reads other files than the "
                   "dataset `afbox demo data` wrote last")
        click.echo(f"  for a notebook on the new files: move it away (mv {nb} {nb.with_suffix('.old.ipynb')}), "
                   "then afbox demo run again")


COMMANDS = [demo_group]
