"""The facility's token issuer: OIDC discovery and JWKS over HTTPS, for its own services and others'."""
from __future__ import annotations

from ..auth.facility_auth import issuer_url
from ..ports import port
from ..spec import HealthCheck, ServiceSpec
from .context import Context

NAME = "issuer"


def identity_dir(ctx: Context):
    return ctx.state.secrets / "identity"


def url(ctx: Context) -> str:
    return issuer_url(ctx.bind, port(ctx.base, NAME))


def render(ctx: Context) -> ServiceSpec:
    p = port(ctx.base, NAME)
    argv = (f"{ctx.bin_dir}/python", "-m", "afbox.auth.issuer_app",
            "--identity-dir", str(identity_dir(ctx)), "--issuer", url(ctx), "--port", str(p), "--host", ctx.bind)
    return ServiceSpec(
        name=NAME, argv=argv, ports=(("https", p),),
        health=HealthCheck("https", host=ctx.bind, port=p, path="/health",
                           ca_file=str(identity_dir(ctx) / "ca.pem")),
        urls=(("issuer", url(ctx)), ("jwks", url(ctx) + "/jwks.json")),
    )
