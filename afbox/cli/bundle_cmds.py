"""afbox bundle build / inspect, and `install` from a bundle: the single-file afbox.run."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from . import render


@click.group("bundle")
def bundle():
    """The single-file facility: one file that brings afbox to a box with no Python, root or network."""


@bundle.command("build")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default="afbox.run",
              show_default=True, help="The file to write.")
@click.option("--with-data", "data", type=click.Choice(["demo"]),
              help="Pre-seed the origin with data: `demo` is the dataset `afbox demo data` writes.")
@click.option("--with-env", "envs", multiple=True, metavar="NAME",
              help="Carry the wheels of environment NAME (afbox env list), to build it offline there.")
@click.option("--source", type=click.Path(file_okay=False, exists=True),
              help="The afbox checkout to bundle (default: the one this afbox runs from).")
@click.option("--cache", type=click.Path(file_okay=False),
              help="Where downloads are kept between builds (default: ~/.cache/afbox/bundle-build).")
@click.option("--level", type=click.IntRange(1, 22), default=10, show_default=True, help="zstd level.")
def build_cmd(output, data, envs, source, cache, level):
    """Build afbox.run from Debian packages and PyPI wheels (needs a Debian/Ubuntu host that reaches both)."""
    from ..bundle.build import build
    for e in build(Path(output), source and Path(source), cache and Path(cache), data, tuple(envs), level):
        click.echo(render.event_line(e))


@bundle.command("inspect")
@click.argument("file", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="The whole manifest, machine-readable.")
@click.option("--files", is_flag=True, help="Every file with its sha256.")
def inspect_cmd(file, as_json, files):
    """What a bundle holds: versions, sizes, checksums, the glibc it needs (default: this bundle)."""
    from ..bundle import inspect, runtime
    from ..errors import AfboxError
    path = Path(file) if file else runtime.bundle_file()
    if path is None:
        raise AfboxError("which bundle? give its path", hint="afbox bundle inspect afbox.run")
    if files:
        for line in inspect.checksums(path):
            click.echo(line)
        return
    d = inspect.describe(path)
    click.echo(json.dumps(d, indent=1, sort_keys=True) if as_json else "\n".join(inspect.lines(d)))


@click.command("install")
@click.option("--bin-dir", type=click.Path(file_okay=False), default="~/.local/bin", show_default=True,
              help="Where the `afbox` command goes.")
def install_cmd(bin_dir):
    """Bundle only: put `afbox` on PATH (a kept copy of this file; no root)."""
    from ..bundle import runtime
    data = Path(os.environ.get("XDG_DATA_HOME") or "~/.local/share").expanduser() / "afbox"
    kept, link = runtime.install(Path(bin_dir).expanduser(), data)
    click.echo(f"{link} -> {kept}")
    if str(link.parent) not in os.environ.get("PATH", "").split(os.pathsep):
        click.echo(f"{link.parent} is not on your PATH; add it: export PATH=\"{link.parent}:$PATH\"")
    else:
        click.echo("run: afbox up")


COMMANDS = [bundle, install_cmd]
