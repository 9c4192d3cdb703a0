"""JupyterLab on the workdir, token-protected, with the Dask panel pointed at this facility.

The Dask dashboards are reached through JupyterLab itself (afbox.plugins.lab_dashboards, on
jupyter-server-proxy) at paths relative to it, so they work under any host name JupyterLab is opened
by (127.0.0.1, localhost, one ssh-tunnelled port) and keep their own token check.
"""
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
from .dask import scheduler_address, tls_env

NAME = "jupyter"
IDENTITY_PROVIDER = "afbox.plugins.jupyter_identity.FacilityIdentityProvider"
EXTENSION = "afbox.plugins.lab_extension"
# where JupyterLab serves a cluster's dashboard (afbox.plugins.lab_dashboards): {cluster} is "default"
# for the facility's own, else a named cluster's name
DASHBOARD_PATH = "proxy/dask/{cluster}/"
GATEWAY_PATH = "proxy/dask-gateway"   # the gateway's clusters' dashboards, under their own routes


def enabled(fac: Facility) -> bool:
    return fac.jupyter.enabled


def settings_dir(ctx: Context):
    return ctx.state.dir / "jupyterlab-settings"


def config_dir(ctx: Context):
    return ctx.state.dir / "jupyter-config"


def workspaces_dir(ctx: Context):
    """JupyterLab's saved layouts: this facility's own, not shared with every Jupyter of the user."""
    return ctx.state.dir / "jupyterlab-workspaces"


def dashboard_path(cluster: str = "default") -> str:
    """A cluster's dashboard as JupyterLab serves it, relative to JupyterLab's root."""
    return DASHBOARD_PATH.format(cluster=cluster)


def render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, "jupyter")
    workdir = str(ctx.facility.workdir)
    auth = ctx.facility.auth
    provider = (f"--ServerApp.identity_provider_class={IDENTITY_PROVIDER}",) if auth.enabled else ()
    argv = (f"{ctx.bin_dir}/jupyter", "lab", "--no-browser", f"--ServerApp.ip={ctx.bind}", *provider,
            f"--ServerApp.port={p}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={workdir}",
            *(("--allow-root",) if ctx.as_root else ()), *ctx.facility.jupyter.extra_args)
    env = (
        # with [auth] only facility tokens open Jupyter; without, its own token, kept out of argv
        *(() if auth.enabled else (("JUPYTER_TOKEN_FILE", str(ctx.jupyter_token_file)),)),
        ("JUPYTERLAB_SETTINGS_DIR", str(settings_dir(ctx))),
        ("JUPYTERLAB_WORKSPACES_DIR", str(workspaces_dir(ctx))),
        ("JUPYTER_RUNTIME_DIR", str(ctx.state.run / "jupyter")),
        ("JUPYTER_CONFIG_PATH", str(config_dir(ctx))),
        # kernels of named environments (afbox env create) appear without symlinks, also ones made later
        ("JUPYTER_PATH", os.pathsep.join((str(facility_jupyter_dir(ctx.state.dir)), str(jupyter_dir())))),
        ("AFBOX_FACILITY", ctx.facility.name),
        ("AFBOX_SCHEDULER", scheduler_address(ctx)),
        # where the dashboard proxy sends /proxy/dask/default/ (a Service name on k3s)
        ("AFBOX_DASHBOARD", f"http://{ctx.bind}:{port(ctx.base, 'dashboard')}"),
        ("DASK_SCHEDULER_ADDRESS", scheduler_address(ctx)),  # a bare Client() connects here
        ("DASK_DISTRIBUTED__DASHBOARD__LINK", "/" + dashboard_path() + "status"),
        *tls_env(ctx, client=True),  # so kernels hold the facility's Dask credentials
        *ctx.data_env,               # and the data token, for root:// reads through the XCache
        *issuer.validator_env(ctx),
        *new_cluster_env(ctx),
    )
    settings = settings_dir(ctx) / "dask-labextension" / "plugin.jupyterlab-settings"
    notifications = settings_dir(ctx) / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    # with [auth] it answers the owner's token; without, its own
    check_token = ("bearer-file", str(ctx.token_file)) if auth.enabled else ("token-file", str(ctx.jupyter_token_file))
    return [ServiceSpec(
        name=NAME, argv=argv, env=env, cwd=workdir, ports=(("http", p),),
        health=HealthCheck("http", host=ctx.bind, port=p, path="/api/status", headers=(check_token,)),
        urls=(("lab", f"http://{ctx.bind}:{p}/lab"),), primary="lab", links=(("jupyter", "lab"),),
        state_dirs=(str(settings_dir(ctx)), str(workspaces_dir(ctx)), str(ctx.state.run / "jupyter")),
        files=(ConfigFile(str(settings), json.dumps(labextension_settings(), indent=2)),
               ConfigFile(str(notifications), json.dumps(OFFLINE_NOTIFICATIONS, indent=2)),
               ConfigFile(str(config_dir(ctx) / "jupyter_server_config.json"),
                          json.dumps(server_config(), indent=2))),
        volumes=(Volume("workdir", workdir, parse_size(ctx.facility.k3s.workdir_size), shared=True),),
        singleton=True, expose=(Expose("http", "", "lab", "/lab"),),
    )]


def labextension_settings() -> dict:
    """dask-labextension user settings: its panel shows this facility's dashboard with no clicks, at a
    path relative to JupyterLab (so under whatever host name JupyterLab was opened by)."""
    return {"defaultURL": dashboard_path(), "browserDashboardCheck": False}


# an offline facility neither asks about nor fetches Jupyter news and update notices
OFFLINE_NOTIFICATIONS = {"fetchNews": "false", "checkForUpdates": False}


def server_config() -> dict:
    """What Jupyter reads from the facility's config dir (after the user's own ~/.jupyter)."""
    return {"ServerApp": {"jpserver_extensions": {EXTENSION: True}},
            "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate"}}


def new_cluster_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    """The Dask panel's "+ NEW" makes a cluster through the facility's gateway, as the user whose
    token the Jupyter server holds; kernels get the same, so a bare dask_gateway.Gateway() works.
    Its clusters' dashboards open under JupyterLab too."""
    if not gateway.enabled(ctx.facility):
        return ()
    return (("DASK_GATEWAY__ADDRESS", gateway.address(ctx)),
            ("DASK_GATEWAY__PROXY_ADDRESS", gateway.proxy_address(ctx)),
            ("DASK_GATEWAY__PUBLIC_ADDRESS", "/" + GATEWAY_PATH),
            ("DASK_GATEWAY__AUTH__TYPE", "afbox.plugins.gateway_token.TokenFileAuth"),
            ("DASK_LABEXTENSION__FACTORY__MODULE", "dask_gateway"),
            ("DASK_LABEXTENSION__FACTORY__CLASS", "GatewayCluster"),
            ("DASK_LABEXTENSION__DEFAULT__WORKERS", "1"))
