"""afbox images pull, and `afbox slurm-job`, which runs inside the job `afbox up --slurm` submits."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import lifecycle
from ..facility import Facility
from ..state import shared_cache_root
from ..errors import ConfigError
from . import render
from .options import PATH_DIR


@click.command("slurm-job", hidden=True)
@click.option("--spec", "spec_file", required=True, type=click.Path(exists=True, dir_okay=False))
def slurm_job(spec_file):
    """Inside the facility's job: bring it up, hold it while the job runs, stop it when SLURM ends it."""
    from ..backends.slurm.submit import hold
    try:
        fac = Facility.model_validate_json(Path(spec_file).read_bytes())
    except ValueError as e:  # pydantic's ValidationError is one
        raise ConfigError(f"{spec_file}: not a facility spec written by afbox up --slurm",
                          details=str(e).splitlines()[:3],
                          hint="this command runs inside the job afbox up --slurm submits; start facilities "
                               "with afbox up") from None
    for e in hold(fac, lifecycle.up):
        click.echo(render.event_line(e))
        sys.stdout.flush()


@click.group()
def images():
    """Container images for --runtime apptainer."""


@images.command("pull")
@click.argument("image")
@click.option("--dir", "dest", type=PATH_DIR, help="Where the .sif goes "
              "(default: afbox's cache dir, images/).")
def images_pull(image, dest):
    """Turn a docker://... reference into a .sif with `apptainer pull`; prints its path."""
    from ..runtimes import apptainer
    path = apptainer.pull(image, Path(dest) if dest else shared_cache_root() / "images")
    click.echo(str(path))
    click.echo(f"use it with: afbox up --runtime apptainer --image {path}")


COMMANDS: list = [images, slurm_job]
