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
from ..state import FacilityState, known_facilities, resolve_name, start_hint
from ..units import human_duration
from .options import DURATION, name_option

DEFAULT_SCOPE = "compute.create jupyter.access storage.read:/"
MAX_LIFETIME = 7 * 86400  # an old key stays published this long after rotate-key


def _record(name: str | None) -> FacilityRecord:
    state = FacilityState(resolve_name(name))
    rec = record.read(state)
    if not rec or not rec.auth:
        raise AfboxError(f"facility {state.name!r} is not running" + (" with auth" if rec else ""),
                         hint=start_hint(state.name) + " (its identity is created on the first up)" if not rec
                         else "its [auth] is off: set [auth] enabled = true, then afbox down and up")
    return rec


def _checking(name: str | None, token: str) -> FacilityRecord | None:
    """The running facility to check a token against: the one named; else the one that issued it; else
    the one commands mean by default. None when none runs with auth."""
    if not name:
        from ..auth.tokens import inspect
        iss = inspect(token)["issuer"]
        for other in known_facilities():
            rec = record.read(FacilityState(other))
            if rec and rec.auth and rec.auth.issuer == iss:
                return rec
    try:
        rec = record.read(FacilityState(resolve_name(name)))
    except AfboxError:
        return None  # several run and none is named: nothing to check against
    return rec if rec and rec.auth else None


@click.group("token", invoke_without_command=True)
@name_option
@click.option("--scope", default=DEFAULT_SCOPE, show_default=True, help="Space-separated WLCG scopes.")
@click.option("--lifetime", default="8h", show_default=True, type=DURATION, help="e.g. 30m, 8h, 2d (at most 7d).")
@click.option("--audience", help="Who the token is for (default: this facility; another site's issuer URL to use it there).")
@click.option("--subject", default=None, help="Token subject (default: your user name).")
@click.option("--site", help="A token for this trusted site: its audience, scopes cut to what it grants, at most 1 h.")
@click.option("--inspect", "inspect_token", metavar="TOKEN",
              help="Decode a token and check it against the facility's keys and trusted issuers.")
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
            tokens.inspect(inspect_token.strip())
        except ValueError as e:
            raise AfboxError(f"not a token: {e}", hint="a token is three base64 parts joined by dots: "
                             "header.claims.signature (afbox token prints one)") from None
        rec = _checking(name, inspect_token.strip())
        validator = None
        if rec:
            from ..auth.facility_auth import service_env, validator_from_env
            validator = validator_from_env(dict(service_env(
                rec.auth.issuer, Path(rec.auth.identity_dir), rec.auth.trusted_issuers,
                rec.spec.auth.trusted_ca_files)))
        info = tokens.inspect(inspect_token.strip(), validator=validator,
                              where=f"facility {rec.facility!r}" if rec else "")
        click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
        for line in info["warnings"]:
            click.echo(f"warning: {line}", err=True)
        return
    if export:
        from .. import data_env
        for key, value in data_env(name).items():
            click.echo(f"export {key}={shlex.quote(value)}")
        return
    seconds = lifetime
    if site:
        from ..sites.admin import site_token
        click.echo(site_token(name, site, subject or getpass.getuser(), scope, seconds))
        return
    if seconds > MAX_LIFETIME:
        raise AfboxError(f"--lifetime {human_duration(seconds)} is longer than 7d",
                         hint="ask for a new token when it runs out")
    if not scope.split():
        raise AfboxError("--scope is empty", hint=f"e.g. --scope '{DEFAULT_SCOPE}'")
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
