"""afbox cache stats / purge."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .. import cache, record
from ..errors import AfboxError
from ..state import FacilityState, resolve_name, start_hint
from . import render
from .options import name_option


def _cache_of(name: str | None) -> tuple[Path, int]:
    state = FacilityState(resolve_name(name))
    rec = record.read(state)
    if rec:
        return Path(rec.cache_dir), rec.cache_size
    raise AfboxError(f"facility {state.name!r} is not running, so its cache location is not known",
                     hint=start_hint(state.name) + " (the cache dir is kept across down/up)")


@click.group("cache")
def cache_group():
    """The facility's XCache."""


@cache_group.command("stats")
@name_option
@click.option("--json", "as_json", is_flag=True)
def stats(name, as_json):
    """Bytes and files cached, fill against the watermarks."""
    d, high = _cache_of(name)
    s = cache.stats(d, high)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(f"cache dir        {s['cache_dir']}")
    click.echo(f"files            {s['files']}")
    click.echo(f"on disk          {render.human_bytes(s['bytes'])} (of {render.human_bytes(s['logical_bytes'])} file size)")
    click.echo(f"fill             {s['fill']:.1%} of high watermark {render.human_bytes(s['high_watermark'])}"
               f" (purge down to {render.human_bytes(s['low_watermark'])})")
    for line in render.cache_hits(s):
        click.echo(line)


@cache_group.command("purge")
@name_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(name, yes):
    """Delete every cached file (the data stays at its origin)."""
    d, high = _cache_of(name)
    s = cache.stats(d, high)
    if not yes:
        click.confirm(f"delete {s['files']} cached files ({render.human_bytes(s['bytes'])}) in {d}?", abort=True)
    n = cache.purge(d)
    click.echo(f"purged {n} files from {d}")


COMMANDS = [cache_group]
