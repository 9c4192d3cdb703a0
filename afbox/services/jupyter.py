"""JupyterLab on the workdir, token-protected, with the Dask panel pointed at this facility."""
from __future__ import annotations

import json
import os

from ..envs.paths import facility_jupyter_dir, jupyter_dir
from ..facility import Facility
from ..ports import port
from ..spec import ConfigFile, Expose, HealthCheck, ServiceSpec, Volume
from ..units import parse_size
from . import gateway, issuer
from .context import Context
from .dask import dashboard_link, scheduler_address, tls_env

NAME = "jupyter"
IDENTITY_PROVIDER = "afbox.plugins.jupyter_identity.FacilityIdentityProvider"


def enabled(fac: Facility) -> bool:
    return fac.jupyter.enabled


def settings_dir(ctx: Context):
    return ctx.state.dir / "jupyterlab-settings"


def render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, "jupyter")
    workdir = str(ctx.facility.workdir)
    auth = ctx.facility.auth
    provider = (f"--ServerApp.identity_provider_class={IDENTITY_PROVIDER}",) if auth.enabled else ()
    argv = (f"{ctx.bin_dir}/jupyter", "lab", "--no-browser", f"--ServerApp.ip={ctx.bind}", *provider,
            f"--ServerApp.port={p}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={workdir}",
            *(("--allow-root",) if ctx.as_root else ()), *ctx.facility.jupyter.extra_args)
    dashboard = f"http://{ctx.bind}:{port(ctx.base, 'dashboard')}"
    env = (
        ("JUPYTER_TOKEN_FILE", str(ctx.jupyter_token_file)),  # keeps the token out of argv
        ("JUPYTERLAB_SETTINGS_DIR", str(settings_dir(ctx))),
        ("JUPYTER_RUNTIME_DIR", str(ctx.state.run / "jupyter")),
        # kernels of named environments (afbox env create) appear without symlinks, also ones made later
        ("JUPYTER_PATH", os.pathsep.join((str(facility_jupyter_dir(ctx.state.dir)), str(jupyter_dir())))),
        ("AFBOX_FACILITY", ctx.facility.name),
        ("AFBOX_SCHEDULER", scheduler_address(ctx)),
        ("AFBOX_DASHBOARD", dashboard),
        ("DASK_SCHEDULER_ADDRESS", scheduler_address(ctx)),  # a bare Client() connects here
        ("DASK_DISTRIBUTED__DASHBOARD__LINK", dashboard_link(ctx)),
        *tls_env(ctx, client=True),  # so kernels hold the facility's Dask credentials
        *ctx.data_env,               # and the data token, for root:// reads through the XCache
        *issuer.validator_env(ctx),
        *gateway_env(ctx),
    )
    settings = settings_dir(ctx) / "dask-labextension" / "plugin.jupyterlab-settings"
    return [ServiceSpec(
        name=NAME, argv=argv, env=env, cwd=workdir, ports=(("http", p),),
        health=HealthCheck("http", host=ctx.bind, port=p, path="/api/status",
                           headers=(("token-file", str(ctx.jupyter_token_file)),)),
        urls=(("lab", f"http://{ctx.bind}:{p}/lab"),), primary="lab", links=(("jupyter", "lab"),),
        state_dirs=(str(settings_dir(ctx)), str(ctx.state.run / "jupyter")),
        files=(ConfigFile(str(settings), json.dumps(labextension_settings(ctx), indent=2)),),
        volumes=(Volume("workdir", workdir, parse_size(ctx.facility.k3s.workdir_size), shared=True),),
        singleton=True, expose=(Expose("http", "", "lab", "/lab"),),
    )]


def gateway_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    """dask-gateway's own config: a bare dask_gateway.Gateway() in a kernel finds the facility's."""
    if not gateway.enabled(ctx.facility):
        return ()
    return (("DASK_GATEWAY__ADDRESS", gateway.address(ctx)), ("DASK_GATEWAY__PROXY_ADDRESS", gateway.proxy_address(ctx)))


def labextension_settings(ctx: Context) -> dict:
    """dask-labextension user settings: its panel shows this facility's dashboard with no clicks."""
    return {"defaultURL": dashboard_link(ctx).removesuffix("/status"), "browserDashboardCheck": False}
