"""JupyterHub for a class: students log in on the hub's HTTPS port and get their own JupyterLab, token
and Dask cluster (see afbox.hub). Only with [masterclass] enabled.

The hub's config file holds facts only (JSON); afbox.hub.setup turns them into JupyterHub settings
inside the hub process, where the host's isolation is checked and secrets are read.
"""
from __future__ import annotations

import json

from ..facility import Facility
from ..hub import isolation, roster
from ..hub.paths import class_paths
from ..ports import port
from ..spec import ConfigFile, Expose, HealthCheck, ServiceSpec, Volume
from ..units import parse_duration, parse_size
from . import gateway, issuer, xcache
from .context import Context

NAME = "hub"
CULL_EVERY_MAX = 60.0


def enabled(fac: Facility) -> bool:
    return fac.masterclass.enabled


def listen(ctx: Context) -> str:
    return ctx.facility.masterclass.listen


def reach(ctx: Context) -> str:
    """Where afbox itself reaches the hub (a wildcard listen address is reached on loopback)."""
    return "127.0.0.1" if listen(ctx) in ("0.0.0.0", "::") else listen(ctx)


def url(ctx: Context) -> str:
    return f"https://{reach(ctx)}:{port(ctx.base, NAME)}"


def cert_paths(ctx: Context) -> tuple[str, str]:
    m = ctx.facility.masterclass
    if m.tls_cert:
        return m.tls_cert, m.tls_key
    return str(ctx.identity_dir / "hub.pem"), str(ctx.identity_dir / "hub-key.pem")


def settings(ctx: Context) -> dict:
    m = ctx.facility.masterclass
    paths = class_paths(ctx.facility, ctx.origin_dir)
    cert, key = cert_paths(ctx)
    idle = parse_duration(m.server_idle)
    on_k3s = ctx.facility.facility.backend == "k3s"
    return {
        "facility": ctx.facility.name, "isolation": m.isolation, "as_root": ctx.as_root,
        "spawner": "kubespawner" if on_k3s else "local",
        "listen": listen(ctx), "port": port(ctx.base, NAME), "api_port": port(ctx.base, "hub-api"),
        "hub_port": port(ctx.base, "hub-internal"), "tls_cert": cert, "tls_key": key,
        "state_dir": str(paths.state_dir), "root": str(paths.root), "data": str(paths.data),
        "homes": str(paths.homes_dir), "content": m.notebooks,
        "identity_dir": str(ctx.identity_dir), "issuer": issuer.url(ctx),
        "token_lifetime": parse_duration(m.token_lifetime), "tutors": list(m.tutors),
        "people": [list(p) for p in roster.wanted(m)],
        "memory": parse_size(m.memory), "cpus": m.cpus, "admit_free": parse_size(m.admit_free),
        "concurrent_spawns": m.concurrent_spawns or 4, "server_idle": idle,
        "cull_every": max(1.0, min(CULL_EVERY_MAX, idle / 4)), "prestart": m.prestart,
        "gateway": gateway.address(ctx), "gateway_proxy": gateway.proxy_address(ctx),
        "xcache": f"root://{ctx.bind}:{port(ctx.base, xcache.NAME)}" if ctx.facility.xcache.enabled else "",
        "bin_dir": ctx.bin_dir, "k3s": {"image": ctx.facility.k3s.analysis_image,
                                        "storage_class": ctx.facility.k3s.storage_class},
    }


def config_text(ctx: Context) -> str:
    facts = json.dumps(settings(ctx), sort_keys=True)
    return ("# written by afbox; edit the facility spec instead\n"
            "import json\n\nfrom afbox.hub.setup import configure\n\n"
            f"SETTINGS = {facts!r}\n"
            "configure(c, json.loads(SETTINGS))\n")


def unavailable(ctx: Context) -> str | None:
    if ctx.facility.facility.backend == "k3s":
        return ("a class on k3s needs the hub to start students' servers as pods (KubeSpawner), which afbox "
                "does not configure yet: use the local backend on the class machine")
    mode, why = isolation.choose(ctx.facility.masterclass.isolation, ctx.as_root, ctx.bwrap)
    return None if mode else why


def render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, NAME)
    paths = class_paths(ctx.facility, ctx.origin_dir)
    argv = (f"{ctx.bin_dir}/jupyterhub", "-f", str(paths.config))
    return [ServiceSpec(
        name=NAME, argv=argv, cwd=str(paths.hub_dir), needs=(issuer.NAME, gateway.NAME),
        ports=(("https", p), ("api", port(ctx.base, "hub-api")), ("internal", port(ctx.base, "hub-internal"))),
        health=HealthCheck("https", host=reach(ctx), port=p, path="/hub/health",
                           ca_file=str(ctx.identity_dir / "ca.pem")),
        urls=(("hub", url(ctx) + "/hub/"),), primary="hub", links=(("hub", "hub"),),
        state_dirs=(str(paths.hub_dir),),
        files=(ConfigFile(str(paths.config), config_text(ctx), mode=0o600),),
        volumes=(Volume("homes", str(paths.homes_dir), parse_size(ctx.facility.k3s.workdir_size), shared=True),),
        singleton=True, expose=(Expose("https", "", "hub", "/hub/"),), manages_pods=True,
        unavailable=unavailable(ctx),
    )]
