"""Services: each module turns the facility spec into ServiceSpecs that say all its facts.

A service module has `NAME`, `enabled(facility) -> bool` and `render(ctx) -> list[ServiceSpec]`
(pure). REGISTRY lists them in the order they come up when nothing else decides. Adding a service
is one module, one line here and one section of the facility file (afbox/facility.py).
"""
from __future__ import annotations

from ..runtimes import binds, wrap_specs
from ..spec import ServiceSpec
from . import dask, gateway, hub, issuer, jupyter, origin, peer_cache, xcache
from .context import Context

REGISTRY = [issuer, dask, gateway, jupyter, xcache, origin, peer_cache, hub]


def render(ctx: Context) -> list[ServiceSpec]:
    """Every enabled service's specs, inside the facility's container runtime if it has one."""
    specs = [s for module in REGISTRY if module.enabled(ctx.facility) for s in module.render(ctx)]
    return wrap_specs(ctx.facility.runtime, specs, binds=binds(ctx), bin_dir=ctx.bin_dir)


__all__ = ["REGISTRY", "Context", "render"]
