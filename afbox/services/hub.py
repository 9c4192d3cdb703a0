"""JupyterHub for a class: students log in on the hub's HTTPS port and get their own JupyterLab, token
and Dask cluster (see afbox.hub). Only with [masterclass] enabled.

The hub's config file holds facts only (JSON); afbox.hub.setup turns them into JupyterHub settings
inside the hub process, where the host's isolation is checked and secrets are read.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..auth.facility_auth import ENV_ISSUER
from ..facility import Facility
from ..hub import isolation, roster
from ..hub.paths import ClassPaths, class_paths
from ..ports import port
from ..spec import ConfigFile, Expose, HealthCheck, Launcher, ServiceSpec, Volume
from ..units import parse_duration, parse_size
from . import gateway, issuer, xcache
from .context import Context

NAME = "hub"
CULL_EVERY_MAX = 60.0
POD_CLASS_ROOT = Path("/var/lib/afbox/class")  # k3s: the class claim in the hub's pod (see paths)


def enabled(fac: Facility) -> bool:
    return fac.masterclass.enabled


def on_k3s(ctx: Context) -> bool:
    return ctx.facility.facility.backend == "k3s"


def listen(ctx: Context) -> str:
    return ctx.bind if on_k3s(ctx) else ctx.facility.masterclass.listen  # k3s: the ingress reaches the pod


def paths(ctx: Context) -> ClassPaths:
    """On k3s one claim holds the whole class: homes, the accounts and the hub's database (a pod's
    state dir is its own, gone with it); students' pods mount only their home and the public files.
    Students read the class data through the XCache there."""
    return pod_paths() if on_k3s(ctx) else class_paths(ctx.facility, ctx.origin_dir)


def pod_paths() -> ClassPaths:
    root = POD_CLASS_ROOT
    return ClassPaths(root / "state", root, root / "data", root / "homes")


def reach(ctx: Context) -> str:
    """Where afbox itself reaches the hub (a wildcard listen address is reached on loopback)."""
    return "127.0.0.1" if listen(ctx) in ("0.0.0.0", "::") else listen(ctx)


def url(ctx: Context) -> str:
    return f"https://{reach(ctx)}:{port(ctx.base, NAME)}"


def cert_paths(ctx: Context) -> tuple[str, str]:
    """k3s: none, the ingress presents the certificate (as zero-to-jupyterhub's proxy does)."""
    m = ctx.facility.masterclass
    if on_k3s(ctx):
        return "", ""
    if m.tls_cert:
        return m.tls_cert, m.tls_key
    return str(ctx.identity_dir / "hub.pem"), str(ctx.identity_dir / "hub-key.pem")


def settings(ctx: Context) -> dict:
    m = ctx.facility.masterclass
    where = paths(ctx)
    cert, key = cert_paths(ctx)
    idle = parse_duration(m.server_idle)
    return {
        "facility": ctx.facility.name, "isolation": m.isolation, "as_root": ctx.as_root,
        "spawner": "kubespawner" if on_k3s(ctx) else "local",
        "listen": listen(ctx), "port": port(ctx.base, NAME), "api_port": port(ctx.base, "hub-api"),
        "hub_port": port(ctx.base, "hub-internal"), "tls_cert": cert, "tls_key": key,
        "state_dir": str(where.state_dir), "root": str(where.root), "data": str(where.data),
        "homes": str(where.homes_dir), "content": m.notebooks,
        "identity_dir": str(ctx.identity_dir), "issuer": issuer.url(ctx),
        "token_lifetime": parse_duration(m.token_lifetime), "tutors": list(m.tutors),
        "people": [list(p) for p in roster.wanted(m)],
        "memory": parse_size(m.memory), "cpus": m.cpus, "admit_free": parse_size(m.admit_free),
        "concurrent_spawns": m.concurrent_spawns or 4, "server_idle": idle,
        "cull_every": max(1.0, min(CULL_EVERY_MAX, idle / 4)), "prestart": m.prestart,
        "gateway": gateway.address(ctx), "gateway_proxy": gateway.proxy_address(ctx),
        "xcache": f"root://{ctx.bind}:{port(ctx.base, xcache.NAME)}" if ctx.facility.xcache.enabled else "",
        "bin_dir": ctx.bin_dir,
    }


def config_text(ctx: Context) -> str:
    facts = json.dumps(settings(ctx), sort_keys=True)
    return ("# written by afbox; edit the facility spec instead\n"
            "import json\n\nfrom afbox.hub.setup import configure\n\n"
            f"SETTINGS = {facts!r}\n"
            "configure(c, json.loads(SETTINGS))\n")


def unavailable(ctx: Context) -> str | None:
    if on_k3s(ctx):
        return None  # students' servers are pods, isolated by Kubernetes
    mode, why = isolation.choose(ctx.facility.masterclass.isolation, ctx.as_root, ctx.bwrap)
    return None if mode else why


def render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, NAME)
    where = paths(ctx)
    argv = (f"{ctx.bin_dir}/jupyterhub", "-f", str(where.config))
    size = parse_size(ctx.facility.k3s.workdir_size)
    volume = (Volume("class", str(where.root), size, shared=True) if on_k3s(ctx)
              else Volume("homes", str(where.homes_dir), size, shared=True))
    return [ServiceSpec(
        name=NAME, argv=argv, cwd=str(where.hub_dir), needs=(issuer.NAME, gateway.NAME),
        ports=(("https", p), ("api", port(ctx.base, "hub-api")), ("internal", port(ctx.base, "hub-internal"))),
        health=(HealthCheck("http", host=reach(ctx), port=p, path="/hub/health") if on_k3s(ctx) else
                HealthCheck("https", host=reach(ctx), port=p, path="/hub/health", ca_file=str(ctx.identity_dir / "ca.pem"))),
        env=(("X509_CERT_DIR", str(ctx.identity_dir / "ca-hashed")),),  # published for students (hub.setup)
        urls=(("hub", url(ctx) + "/hub/"),), primary="hub", links=(("hub", "hub"),),
        state_dirs=(str(where.hub_dir),),
        files=(ConfigFile(str(where.config), config_text(ctx), mode=0o600),),
        volumes=(volume,),
        singleton=True, expose=(Expose("https", "", "hub", "/hub/"),), manages_pods=True,
        launches=Launcher("jupyterhub", str(where.config), student_env(ctx), api="internal"),
        unavailable=unavailable(ctx),
    )]


def student_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    """The addresses students' servers use (on k3s their pods' NetworkPolicy opens exactly these)."""
    env = [("AFBOX_GATEWAY", gateway.address(ctx)), ("AFBOX_GATEWAY_PROXY", gateway.proxy_address(ctx)),
           (ENV_ISSUER, issuer.url(ctx))]
    if ctx.facility.xcache.enabled:
        env.append(("AFBOX_XCACHE", f"root://{ctx.bind}:{port(ctx.base, xcache.NAME)}"))
    return tuple(env)
