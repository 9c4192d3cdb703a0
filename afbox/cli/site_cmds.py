"""afbox site invite / add / list / remove / refresh: facilities that trust each other."""
from __future__ import annotations

import json
import sys

import click

from .. import record
from ..state import FacilityState, resolve_name
from ..units import human_duration
from . import render
from .options import DURATION, name_option

GRANT_HELP = ("A scope its users get here (repeat): compute.create (gateway clusters, dashboards), "
              "storage.read:/path (data), jupyter.access (this facility's own JupyterLab, as its owner).")


@click.group("site")
def site_group():
    """Other facilities (sites) this one trusts: explicit, per direction, nothing granted until said."""


@site_group.command("invite")
@name_option
@click.option("--grant", "grants", multiple=True, metavar="SCOPE", help=GRANT_HELP)
@click.option("--max-workers", default=0, type=click.IntRange(0), help="Workers per gateway cluster for its users.")
@click.option("--expires", default="1h", show_default=True, type=DURATION,
              help="How long the code may be used (e.g. 30m, 1h).")
def invite(name, grants, max_workers, expires):
    """Print a one-time code for another site's admin (`afbox site add URL --invite CODE` there)."""
    from ..sites import admin
    code = admin.invite(name, list(grants), max_workers, expires)
    click.echo(code)
    click.echo(f"# valid {human_duration(expires)}; the site that uses it gets: {' '.join(grants) or 'nothing'}"
               + (f", at most {max_workers} workers per cluster" if max_workers else ""), err=True)


@site_group.command("add")
@name_option
@click.argument("url")
@click.option("--invite", "code", help="The invite code the other site printed (pins its CA).")
@click.option("--fingerprint", help="SHA256:... of the other site's CA, when there is no invite.")
@click.option("--grant", "grants", multiple=True, metavar="SCOPE", help=GRANT_HELP + " Default: nothing.")
@click.option("--max-workers", type=click.IntRange(0), help="Workers per gateway cluster for its users.")
def add(name, url, code, fingerprint, grants, max_workers):
    """Trust the site at URL (https://HOST:PORT, its issuer): pin its CA, store it, tell every checker."""
    from ..sites import admin

    def confirm(fp: str) -> bool:  # trust on first use, like ssh: only with a person at the terminal
        click.echo(f"{url} presents CA {fp}")
        return click.confirm("trust it? (compare with the fingerprint its admin sees)", default=False)

    added = admin.add(name, url, code, fingerprint, grants, max_workers,
                      confirm=confirm if sys.stdin.isatty() else None)
    for e in added.events:
        click.echo(render.event_line(e))
    s = added.site
    click.echo(f"trusting site {s.name} at {s.url} (CA {s.ca_sha256})")
    click.echo(f"  its users may here: {' '.join(s.grants) or 'nothing'}"
               + (f" (at most {s.max_workers} workers per cluster)" if s.max_workers else ""))
    click.echo(f"  it grants this facility: {' '.join(s.offered) or 'nothing known yet'}")
    if added.reverse:
        click.echo("for the other site to trust this one back, its admin runs:")
        click.echo(f"  {added.reverse}")


@site_group.command("list")
@name_option
@click.option("--json", "as_json", is_flag=True)
def list_(name, as_json):
    """Trusted sites: issuer, reachable, latency, workers, GPUs, cache fill, grants."""
    from ..lifecycle.sites import probe
    rec = record.read(FacilityState(resolve_name(name)))
    if rec is None:
        from ..errors import AfboxError
        raise AfboxError("the facility is not running", hint="start it with: afbox up")
    rows = probe(rec)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("no sites trusted (afbox site add URL --invite CODE)")
        return
    click.echo(render.site_table(rows))


@site_group.command("remove")
@name_option
@click.argument("site")
def remove(name, site):
    """Stop trusting SITE: its tokens are refused everywhere here from now on."""
    from ..sites import admin
    for e in admin.remove(name, site):
        click.echo(render.event_line(e))
    click.echo(f"site {site} removed; its tokens are refused here")


@site_group.command("refresh")
@name_option
@click.argument("site")
def refresh(name, site):
    """Fetch SITE's descriptor and keys again (after it rotated its key), over its pinned CA."""
    from ..sites import admin
    added = admin.refresh(name, site)
    for e in added.events:
        click.echo(render.event_line(e))
    click.echo(f"site {site}: {len(added.site.jwks.get('keys', []))} key(s); "
               f"it grants this facility: {' '.join(added.site.offered) or 'nothing'}")


COMMANDS = [site_group]
