"""The facility's token issuer: OIDC discovery and JWKS over HTTPS, for its own services and others'."""
from __future__ import annotations

import json
import os
import pwd

from ..auth.facility_auth import ENV_SITES, service_env
from ..facility import Facility
from ..ports import port
from ..sites import descriptor
from ..sites.store import SiteStore
from ..spec import ConfigFile, HealthCheck, ServiceSpec
from ..units import parse_duration
from .context import Context

NAME = "issuer"


def enabled(fac: Facility) -> bool:
    return fac.auth.enabled


def owner() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def url(ctx: Context) -> str:
    return descriptor.issuer_url(ctx)  # at the public host, where other sites reach it


def validator_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    """What a token-checking service needs to build the shared validator (paths and URLs only)."""
    auth = ctx.facility.auth
    if not auth.enabled:
        return ()
    return (*service_env(url(ctx), ctx.identity_dir, auth.trusted_issuers, auth.trusted_ca_files),
            *sites_env(ctx))


def federates(ctx: Context) -> bool:
    """Other sites reach it at its public host ([facility] public_host): it may trust them."""
    return bool(ctx.facility.facility.public_host)


def sites_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    """Where checkers read the other sites this facility trusts (the file may not exist: none)."""
    return ((ENV_SITES, str(SiteStore(ctx.state).trust_file)),) if federates(ctx) else ()


def site_args(ctx: Context) -> tuple[str, ...]:
    """The issuer also serves the site descriptor and renews the cache tokens for other sites."""
    if not federates(ctx):
        return ()
    return ("--site-descriptor", str(descriptor_path(ctx)), "--sites-trust", str(SiteStore(ctx.state).trust_file))


def site_files(ctx: Context) -> tuple[ConfigFile, ...]:
    if not federates(ctx):
        return ()
    return (ConfigFile(str(descriptor_path(ctx)), json.dumps(descriptor.base(ctx), indent=1)),)


def descriptor_path(ctx: Context):
    return ctx.state.run / "site-descriptor.json"


def render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, NAME)
    argv = (f"{ctx.bin_dir}/python", "-m", "afbox.auth.issuer_app",
            "--identity-dir", str(ctx.identity_dir), "--issuer", url(ctx), "--port", str(p), "--host", ctx.public_host,
            "--token-file", str(ctx.token_file), "--token-subject", owner(),
            "--token-lifetime", str(int(parse_duration(ctx.facility.auth.token_lifetime))), *site_args(ctx))
    return [ServiceSpec(
        name=NAME, argv=argv, ports=(("https", p),),
        health=HealthCheck("https", host=ctx.public_host, port=p, path="/health",
                           ca_file=str(ctx.identity_dir / "ca.pem")),
        urls=(("issuer", url(ctx)), ("jwks", url(ctx) + "/jwks.json")), primary="issuer",
        files=site_files(ctx),
    )]
