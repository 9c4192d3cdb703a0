"""The facility's token issuer: OIDC discovery and JWKS over HTTPS, for its own services and others'."""
from __future__ import annotations

import os
import pwd

from ..auth.facility_auth import issuer_url, service_env
from ..facility import Facility
from ..ports import port
from ..spec import HealthCheck, ServiceSpec
from ..units import parse_duration
from .context import Context

NAME = "issuer"


def enabled(fac: Facility) -> bool:
    return fac.auth.enabled


def owner() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def url(ctx: Context) -> str:
    return issuer_url(ctx.bind, port(ctx.base, NAME))


def validator_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    """What a token-checking service needs to build the shared validator (paths and URLs only)."""
    auth = ctx.facility.auth
    if not auth.enabled:
        return ()
    return service_env(url(ctx), ctx.identity_dir, auth.trusted_issuers, auth.trusted_ca_files)


def render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, NAME)
    argv = (f"{ctx.bin_dir}/python", "-m", "afbox.auth.issuer_app",
            "--identity-dir", str(ctx.identity_dir), "--issuer", url(ctx), "--port", str(p), "--host", ctx.bind,
            "--token-file", str(ctx.token_file), "--token-subject", owner(),
            "--token-lifetime", str(int(parse_duration(ctx.facility.auth.token_lifetime))))
    return [ServiceSpec(
        name=NAME, argv=argv, ports=(("https", p),),
        health=HealthCheck("https", host=ctx.bind, port=p, path="/health", ca_file=str(ctx.identity_dir / "ca.pem")),
        urls=(("issuer", url(ctx)), ("jwks", url(ctx) + "/jwks.json")), primary="issuer",
    )]
