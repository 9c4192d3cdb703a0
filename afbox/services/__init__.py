"""Services: each module turns the facility spec into ServiceSpecs; rendering is pure."""
from __future__ import annotations

from ..spec import ServiceSpec
from .context import Context
from . import dask, gateway, issuer, jupyter, origin, xcache


def render(ctx: Context) -> list[ServiceSpec]:
    specs: list[ServiceSpec] = []
    if ctx.facility.auth.enabled:
        specs.append(issuer.render(ctx))
    specs += dask.render(ctx)
    if ctx.facility.gateway.enabled and ctx.facility.auth.enabled:
        specs.append(gateway.render(ctx))
    if ctx.facility.jupyter.enabled:
        specs.append(jupyter.render(ctx))
    if ctx.facility.xcache.enabled:
        specs.append(xcache.render(ctx))
    if ctx.facility.local_origin:
        specs.append(origin.render(ctx))
    return in_runtime(ctx, specs)


def in_runtime(ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]:
    """Every service inside the facility's container runtime (`[runtime]`), if it has one."""
    from ..runtimes import binds, wrap_specs
    return wrap_specs(ctx.facility.runtime, specs, binds=binds(ctx), bin_dir=ctx.bin_dir)
