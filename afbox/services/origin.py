"""The facility's own data origin: a plain xrootd data server over a local directory.

Used when no remote origin is configured (offline demos, masterclasses): files put in its data
dir are served at root://localhost:PORT//path and read by users through the XCache like remote data.
"""
from __future__ import annotations

from ..auth.xrootd import SSS_KEYTAB, sss_server_directives
from ..facility import Facility
from ..ports import port
from ..spec import ConfigFile, HealthCheck, ServiceSpec, Volume
from ..units import parse_size
from .context import Context
from .xcache import xrootd_argv, xrootd_missing, xrootd_socket

NAME = "origin"


def enabled(fac: Facility) -> bool:
    return fac.local_origin


def config_path(ctx: Context):
    return ctx.xrootd_dir / "origin.cfg"


def admin_dir(ctx: Context):
    return ctx.xrootd_dir / "origin-admin"


def config_text(ctx: Context) -> str:
    return "\n".join([
        "# written by afbox; edit the facility spec instead",
        f"xrd.port {port(ctx.base, NAME)}",
        "xrd.allow host localhost",  # it listens on every interface: this host only
        "all.export /",
        f"oss.localroot {ctx.origin_dir}",
        f"all.adminpath {admin_dir(ctx)}",
        f"all.pidpath {admin_dir(ctx)}",
        *key_lines(ctx),
    ]) + "\n"


def keyed(ctx: Context) -> bool:
    """With [auth] only the facility's XCache reads (or writes) here: a token-less side door otherwise."""
    return ctx.facility.auth.enabled


def keytab_path(ctx: Context):
    """The origin's copy of the key it shares with the XCache, readable by xrootd's own user only."""
    return ctx.xrootd_dir / "origin-key" / "sss.keytab"


def key_lines(ctx: Context) -> list[str]:
    return sss_server_directives(keytab_path(ctx)) if keyed(ctx) else []


def key_files(ctx: Context) -> tuple[ConfigFile, ...]:
    return (ConfigFile(str(keytab_path(ctx)), secret=SSS_KEYTAB, mode=0o600),) if keyed(ctx) else ()


def render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, NAME)
    instance = f"afbox-{ctx.facility.name}-origin"
    argv = xrootd_argv(ctx, config_path(ctx), instance)
    return [ServiceSpec(
        name=NAME, argv=argv, ports=(("xroot", p),),
        health=HealthCheck("xrootd", host="127.0.0.1", port=p),
        urls=(("root", f"root://{ctx.bind}:{p}/"), ("data_dir", str(ctx.origin_dir))), primary="root",
        state_dirs=(str(ctx.xrootd_dir), str(admin_dir(ctx))),
        volumes=(Volume("data", str(ctx.origin_dir), parse_size(ctx.facility.k3s.origin_size), read_only=True),),
        files=(ConfigFile(str(config_path(ctx)), config_text(ctx)), *key_files(ctx)), image_role="xrootd",
        run_as=ctx.xrootd_user or "",
        unavailable=xrootd_missing(ctx), sockets=(xrootd_socket(admin_dir(ctx), instance),),
    )]
