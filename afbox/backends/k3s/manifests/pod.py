"""What changes when a service runs in a pod rather than on the host: paths and addresses.

The services render for a pod Context (container paths, listening on 0.0.0.0, links through the
ingress host); `in_pods` then points addresses of other services (`127.0.0.1:PORT`,
`https://0.0.0.0:PORT`) at their Service's DNS name, and URLs people open at the ingress.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ....services.context import Context
from ....spec import ServiceSpec
from ....state import FacilityState

VENV_BIN = "/opt/afbox/venv/bin"        # where images/analysis installs afbox, dask and jupyter
STATE = Path("/var/lib/afbox/state")    # secrets (projected), run dirs (emptyDir)
WORKDIR = "/home/afbox/work"            # the workdir PVC
CACHE = Path("/var/cache/afbox/xcache")  # the xcache PVC
ORIGIN = Path("/var/lib/afbox/origin")  # the origin PVC
XROOTD_DIR = Path("/etc/afbox/xrootd")  # config from a ConfigMap, admin dir an emptyDir
XROOTD = "/usr/bin/xrootd"
UID = 1000                              # the user both images run as (see images/)


class PodState(FacilityState):
    """A facility's state dir as seen inside its pods."""

    @property
    def dir(self) -> Path:
        return STATE


def namespace_name(fac) -> str:
    return fac.k3s.namespace or f"afbox-{fac.name}"


def pod_context(ctx: Context) -> Context:
    fac = ctx.facility
    fac = fac.model_copy(update={"facility": fac.facility.model_copy(update={"bind": "0.0.0.0", "workdir": WORKDIR})})
    # xrootd is in the xcache image whether or not the host has it; no root inside, so no -R.
    return replace(ctx, facility=fac, state=PodState(fac.name), bin_dir=VENV_BIN, xrootd=XROOTD, xrootd_user=None,
                   cache_dir=CACHE, xrootd_dir=XROOTD_DIR, as_root=False, origin_dir=ORIGIN,
                   ingress_host=fac.k3s.host)


def host_path(ctx: Context, pod_path: str) -> Path:
    """Where a file of the pods' state dir is kept on the host running afbox."""
    p = Path(pod_path)
    return ctx.state.dir / p.relative_to(STATE) if p.is_relative_to(STATE) else p


ADDRESS = re.compile(r"(?<![\w.-])(?P<scheme>[a-z][a-z0-9+.-]*://)?(?P<host>0\.0\.0\.0|127\.0\.0\.1|localhost)"
                     r":(?P<port>\d+)\b")


def translate(text: str, own_ports: set[int], owners: dict[int, str], namespace: str) -> str:
    """Point addresses of other services at their Service; a URL naming this service's own port
    (an issuer URL) gets its Service name too; a bare listen address of its own stays as it is."""
    def sub(m: re.Match) -> str:
        port = int(m["port"])
        scheme = m["scheme"] or ""
        if port in owners and (scheme or port not in own_ports):
            return f"{scheme}{owners[port]}.{namespace}.svc:{port}"
        return m[0]
    return ADDRESS.sub(sub, text)


def without_allow(config: str) -> str:
    """In the cluster NetworkPolicies say who may connect; xrootd's own host allow-list would
    refuse pod addresses, so it is left out."""
    return "".join(line for line in config.splitlines(keepends=True) if not line.startswith("xrd.allow"))


def workload_of(spec: ServiceSpec) -> str:
    """Replicas of a group are one workload, named after the group."""
    return spec.replica_of or spec.name


def in_pods(ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]:
    """Pure: specs rendered for the pod Context, with other services' addresses as their DNS names
    and the URLs of exposed ports as the ingress serves them."""
    ns = namespace_name(ctx.facility)
    owners = {p: workload_of(s) for s in specs for _, p in s.ports}
    out = []
    for s in specs:
        own = set(s.port_dict.values())
        tr = lambda text: translate(text, own, owners, ns)  # noqa: E731
        urls = {label: translate(url, set(), owners, ns) for label, url in s.urls}
        for e in s.expose:
            host = f"{e.subdomain}.{ctx.ingress_host}" if e.subdomain else ctx.ingress_host
            urls[e.url] = f"https://{host}{e.path}"
        files = tuple(replace(f, text=without_allow(tr(f.text))) for f in s.files)
        launches = s.launches and replace(s.launches, env=tuple((k, tr(v)) for k, v in s.launches.env))
        out.append(replace(s, argv=tuple(tr(a) for a in s.argv), env=tuple((k, tr(v)) for k, v in s.env),
                           urls=tuple(urls.items()), files=files, unavailable=None, launches=launches))
    return out
