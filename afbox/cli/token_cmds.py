"""afbox token: mint, inspect and rotate the facility's tokens (WLCG profile JWTs)."""
from __future__ import annotations

import getpass
import json
import shlex
from pathlib import Path

import click

from .. import record
from ..errors import AfboxError
from ..record import FacilityRecord
from ..state import FacilityState, resolve_name
from ..units import parse_duration
from .options import name_option

DEFAULT_SCOPE = "compute.create jupyter.access storage.read:/"
MAX_LIFETIME = 7 * 86400  # an old key stays published this long after rotate-key


def _record(name: str | None) -> FacilityRecord:
    state = FacilityState(resolve_name(name))
    rec = record.read(state)
    if not rec or not rec.auth:
        raise AfboxError(f"facility {state.name!r} is not running with auth",
                         hint="start it with `afbox up` (its identity is created on the first up)")
    return rec


@click.group("token", invoke_without_command=True)
@name_option
@click.option("--scope", default=DEFAULT_SCOPE, show_default=True, help="Space-separated WLCG scopes.")
@click.option("--lifetime", default="8h", show_default=True, help="e.g. 30m, 8h, 2d (at most 7d).")
@click.option("--audience", help="Who the token is for (default: this facility; another site's issuer URL to use it there).")
@click.option("--subject", default=None, help="Token subject (default: your user name).")
@click.option("--site", help="A token for this trusted site: its audience, scopes cut to what it grants, at most 1 h.")
@click.option("--inspect", "inspect_token", metavar="TOKEN", help="Decode a token: claims, validity, issuer.")
@click.option("--export", "export", is_flag=True,
              help="Print `export` lines for a shell that reads root:// through the XCache (token file, CA dir).")
@click.pass_context
def token_group(ctx, name, scope, lifetime, audience, subject, inspect_token, export, site):
    """Print a fresh token for you (WLCG profile JWT, signed by this facility's issuer).

    JupyterLab, the Dask gateway and the XCache accept it (jupyter.access, compute.create and
    storage.read scopes)."""
    if ctx.invoked_subcommand:
        return
    from ..auth import tokens
    if inspect_token:
        try:
            info = tokens.inspect(inspect_token.strip())
        except ValueError as e:
            raise AfboxError(f"not a token: {e}") from None
        click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
        return
    if export:
        from .. import data_env
        for key, value in data_env(name).items():
            click.echo(f"export {key}={shlex.quote(value)}")
        return
    seconds = parse_duration(lifetime)
    if site:
        from ..sites.admin import site_token
        click.echo(site_token(name, site, subject or getpass.getuser(), scope, seconds))
        return
    if seconds > MAX_LIFETIME:
        raise AfboxError(f"lifetime {lifetime} is longer than 7d", hint="ask for a new token when it runs out")
    auth = _record(name).auth
    from ..auth.identity import load
    identity = load(Path(auth.identity_dir))
    click.echo(tokens.mint(identity, auth.issuer, subject or getpass.getuser(), scope,
                           audience or auth.issuer, lifetime=seconds))


@token_group.command("rotate-key")
@name_option
def rotate_key(name):
    """Start signing with a new key; the old one stays published until its tokens have expired."""
    from ..auth.identity import rotate_key as rotate
    rec = _record(name)
    identity = rotate(Path(rec.auth.identity_dir), keep_for=MAX_LIFETIME)
    click.echo(f"signing key rotated: new key id {identity.kid}; the previous key stays published for 7 days")
    from ..lifecycle.credentials import rewrite_keycache
    if rewrite_keycache(rec):
        click.echo("the XCache knows the new key")


COMMANDS = [token_group]
