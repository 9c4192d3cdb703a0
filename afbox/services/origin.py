"""The facility's own data origin: a plain xrootd data server over a local directory.

Used when no remote origin is configured (offline demos, masterclasses): files put in its data
dir are served at root://localhost:PORT//path and read by users through the XCache like remote data.
"""
from __future__ import annotations

from ..ports import port
from ..spec import HealthCheck, ServiceSpec
from .context import Context
from .xcache import INSTALL_HINT, xrootd_argv

NAME = "origin"


def config_path(ctx: Context):
    return ctx.xrootd_dir / "origin.cfg"


def admin_dir(ctx: Context):
    return ctx.xrootd_dir / "origin-admin"


def config_text(ctx: Context) -> str:
    return "\n".join([
        "# written by afbox; edit the facility spec instead",
        f"xrd.port {port(ctx.base, NAME)}",
        "xrd.allow host localhost",  # only the facility's own XCache (and local tools) read from it
        "all.export /",
        f"oss.localroot {ctx.origin_dir}",
        f"all.adminpath {admin_dir(ctx)}",
        f"all.pidpath {admin_dir(ctx)}",
    ]) + "\n"


def render(ctx: Context) -> ServiceSpec:
    p = port(ctx.base, NAME)
    argv = xrootd_argv(ctx, config_path(ctx), f"afbox-{ctx.facility.name}-origin")
    return ServiceSpec(
        name=NAME, argv=argv, ports=(("xroot", p),),
        health=HealthCheck("xrootd", host="127.0.0.1", port=p),
        urls=(("root", f"root://localhost:{p}/"), ("data_dir", str(ctx.origin_dir))),
        state_dirs=(str(ctx.origin_dir), str(admin_dir(ctx))),
        unavailable=None if ctx.xrootd else f"xrootd is not installed; {INSTALL_HINT}",
    )
