"""The Dask gateway: dask-gateway-server creating clusters on demand for holders of a facility token.

Bound to the facility's host and ports (proxy for HTTP and for schedulers, private API); its clusters
take ports from a window of the facility's range (afbox.plugins.gateway_backend).
"""
from __future__ import annotations

from ..facility import Facility
from ..ports import GATEWAY_FIRST, GATEWAY_SIZE, port
from ..sites import descriptor
from ..spec import ConfigFile, HealthCheck, Launcher, ServiceSpec
from . import dask, issuer
from .context import Context

NAME = "gateway"
MAX_WORKERS = 8  # per cluster: the port slot of each cluster holds 8 workers


def enabled(fac: Facility) -> bool:
    return fac.gateway.enabled and fac.auth.enabled


def config_path(ctx: Context):
    return ctx.state.dir / "gateway_config.py"


def federates(ctx: Context) -> bool:
    return bool(ctx.facility.facility.public_host)


def address(ctx: Context) -> str:
    if federates(ctx):
        return descriptor.gateway_api(ctx)
    return f"http://{ctx.bind}:{port(ctx.base, 'gateway')}"


def proxy_address(ctx: Context) -> str:
    if federates(ctx):
        return descriptor.gateway_proxy(ctx)
    return f"gateway://{ctx.bind}:{port(ctx.base, 'gateway-scheduler')}"


def cluster_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    """What its clusters' processes get: the XCache and data token, and the token check of their dashboards."""
    return (*ctx.data_env, *issuer.validator_env(ctx))


def federation_settings(ctx: Context) -> dict:
    """Reached by other sites: HTTPS with the facility's certificate and the schedulers on the same
    one port (routed by SNI, TLS passed through), at the public host; clusters still talk to the
    gateway's private API on loopback."""
    if not federates(ctx):
        return {}
    p, identity = port(ctx.base, "gateway"), ctx.identity_dir
    return {"Proxy.address": f"{ctx.public_host}:{p}", "Proxy.tcp_address": f"{ctx.public_host}:{p}",
            "Proxy.tls_cert": str(identity / "server.pem"), "Proxy.tls_key": str(identity / "server-key.pem"),
            "Backend.api_url": f"http://{ctx.bind}:{port(ctx.base, 'gateway-api')}/api"}


def site_lines(ctx: Context) -> list[str]:
    """Other sites' users get their site's limits and no owner token (afbox.plugins.site_limits)."""
    if not federates(ctx):
        return []
    env = {k: v for k, v in (*ctx.data_env, *issuer.validator_env(ctx)) if k != "BEARER_TOKEN_FILE"}
    env["AFBOX_FACILITY_RECORD"] = str(ctx.state.record_file)  # where they run (afbox.sites.locality reads it)
    return ["from afbox.plugins.site_limits import site_options",
            f"c.FacilityBackend.cluster_options = site_options({env!r})"]


def config_text(ctx: Context) -> str:
    b = ctx.bind
    settings = {
        "DaskGateway.address": f"{b}:{port(ctx.base, 'gateway-api')}",
        "DaskGateway.authenticator_class": "afbox.plugins.gateway_auth.FacilityAuthenticator",
        "DaskGateway.backend_class": "afbox.plugins.gateway_backend.FacilityBackend",
        "Proxy.address": f"{b}:{port(ctx.base, 'gateway')}",
        "Proxy.tcp_address": f"{b}:{port(ctx.base, 'gateway-scheduler')}",
        "FacilityBackend.port_first": ctx.base + GATEWAY_FIRST,
        "FacilityBackend.port_count": GATEWAY_SIZE,
        "FacilityBackend.clusters_directory": str(ctx.state.run / "gateway-clusters"),
        "FacilityBackend.use_forkserver": ctx.facility.gateway.warm,
        # its clusters' dashboards ask for a facility token like the facility's own
        "ClusterConfig.scheduler_cmd": [f"{ctx.bin_dir}/dask", "scheduler", "--preload", dask.PRELOAD],
        # no nanny: a second interpreter per worker would add ~0.4 s to every cluster's start on a small
        # box, and the gateway itself replaces a worker that dies (a few seconds later, same ports)
        "ClusterConfig.worker_cmd": [f"{ctx.bin_dir}/dask", "worker", "--no-nanny"],
        "ClusterConfig.worker_cores": ctx.dask.threads,
        "ClusterConfig.worker_threads": ctx.dask.threads,
        "ClusterConfig.worker_memory": ctx.dask.memory_limit,
        "ClusterConfig.cluster_max_workers": MAX_WORKERS,
        # workers read root:// through the XCache like the facility's own ones
        "ClusterConfig.environment": dict(cluster_env(ctx)),
        **federation_settings(ctx),
    }
    if ctx.facility.masterclass.enabled:
        from ..hub.class_gateway import gateway_settings
        settings |= gateway_settings(ctx)  # students' clusters: as the student, small, culled when idle
    lines = ["# written by afbox; edit the facility spec instead"]
    lines += [f"c.{k} = {v!r}" for k, v in settings.items()]
    return "\n".join(lines + site_lines(ctx)) + "\n"


def health(ctx: Context) -> HealthCheck:
    if federates(ctx):
        return HealthCheck("https", host=ctx.public_host, port=port(ctx.base, NAME), path="/api/health",
                           ca_file=str(ctx.identity_dir / "ca.pem"))
    return HealthCheck("http", host=ctx.bind, port=port(ctx.base, NAME), path="/api/health")


def render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, NAME)
    return [ServiceSpec(
        name=NAME, argv=(f"{ctx.bin_dir}/dask-gateway-server", "-f", str(config_path(ctx))),
        env=issuer.validator_env(ctx),
        ports=(("http", p), ("scheduler-proxy", port(ctx.base, "gateway-scheduler")),
               ("api", port(ctx.base, "gateway-api"))),
        health=health(ctx),
        urls=(("gateway", address(ctx)), ("proxy", proxy_address(ctx))), primary="gateway",
        links=(("gateway", "gateway"),),
        state_dirs=(str(ctx.state.run / "gateway-clusters"),),
        files=(ConfigFile(str(config_path(ctx)), config_text(ctx)),),
        launches=Launcher("dask-gateway", str(config_path(ctx)), cluster_env(ctx), api="api",
                          proxy=("http", "scheduler-proxy")),
        background=True,  # and its clusters, its children
    )]
