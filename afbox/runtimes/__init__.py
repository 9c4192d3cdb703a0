"""Runtimes wrap a service's argv in a container (`[runtime] kind`); `none` leaves it as it is."""
from __future__ import annotations

from dataclasses import replace
from ..errors import ConfigError
from ..facility import RuntimeSection
from ..spec import ServiceSpec
from . import apptainer


def check(rt: RuntimeSection) -> None:
    if rt.kind == "apptainer" and not rt.image:
        raise ConfigError("runtime apptainer needs an image", hint="--image docker://..., a .sif file or a directory")


def wrap(rt: RuntimeSection, argv: tuple[str, ...], *, binds: tuple[str, ...], gpus: bool,
         bin_dir: str) -> tuple[str, ...]:
    """argv run inside the runtime's container (unchanged for kind none)."""
    if rt.kind == "none":
        return tuple(argv)
    check(rt)
    return apptainer.exec_argv(rt.image, apptainer.inner(argv, bin_dir), binds=binds, gpus=gpus)


def binds(ctx) -> tuple[str, ...]:
    """What containers see of the host: user work, the data cache and origin, xrootd's files, the state."""
    paths = (ctx.facility.workdir, ctx.cache_dir, ctx.xrootd_dir, ctx.state.dir,
             *((ctx.origin_dir,) if ctx.facility.local_origin else ()))
    return tuple(dict.fromkeys(str(p) for p in paths))


def wrap_specs(rt: RuntimeSection, specs: list[ServiceSpec], *, binds: tuple[str, ...], bin_dir: str,
               skip: tuple[str, ...] = ()) -> list[ServiceSpec]:
    """Every spec's argv wrapped, except those named in skip (afbox's own helpers)."""
    if rt.kind == "none":
        return specs
    out = []
    for s in specs:
        if s.name in skip or s.unavailable:
            out.append(s)
            continue
        gpus = any(k in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES") for k, _ in s.env)
        out.append(replace(s, argv=wrap(rt, s.argv, binds=binds, gpus=gpus, bin_dir=bin_dir), image=rt.image))
    return out

