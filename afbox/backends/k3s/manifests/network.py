"""Who may reach whom: one NetworkPolicy per component, for ingress and egress, from the flows the
facility's own specs name.

A flow is an address a service's argv, environment or config names: `<workload>.<ns>.svc:PORT`
(pod.in_pods put it there) lets that service reach that port of that workload, and nothing else
does. Replicas without a Service (Dask workers) are reached at their pod addresses by the servers
their command line names (their scheduler) and by each other. An address outside the cluster (a remote origin, a
trusted issuer) opens egress to its port anywhere. Traefik reaches the exposed ports; every pod may
ask the cluster DNS. Everything else is denied, as zero-to-jupyterhub does per component.
"""
from __future__ import annotations

import re
from .objects import meta, selector
from .secrets import mentioned

INGRESS_TLS = "ingress-tls"
DNS = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
       "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
TRAEFIK = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
           "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}}}
DEFAULT_PORTS = {"https": 443, "http": 80, "root": 1094, "roots": 1094, "xroots": 1094}
LOCAL = {"localhost", "127.0.0.1", "0.0.0.0", "::1"}
URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://([\w.-]+)(?::(\d+))?")
HOST_PORT = re.compile(r"(?<![\w./:-])([a-z0-9-]+(?:\.[a-z0-9-]+)+):(\d+)\b")  # xrootd's pss.origin host:port


def flows(groups, ns: str) -> dict[tuple[str, str], set[int]]:
    """(client, server) -> ports, between the facility's own workloads."""
    ports = {g.name: {p for _, p in g.spec.ports} for g in groups}
    out: dict[tuple[str, str], set[int]] = {}
    named = re.compile(r"(?<![\w.-])([a-z0-9][a-z0-9-]*)\." + re.escape(ns) + r"(?:\.svc(?:\.cluster\.local)?)?:(\d+)")
    for g in groups:
        for server, port in named.findall(mentioned(g.spec)):
            if server != g.name and int(port) in ports.get(server, ()):
                out.setdefault((g.name, server), set()).add(int(port))
    for g in groups:  # replicas are reached by the servers their command line names, and each other
        if g.replicated and ports[g.name]:
            peers = {server for server, _ in named.findall("\n".join(g.spec.argv)) if server in ports}
            for peer in sorted(peers - {g.name}) + [g.name]:
                out.setdefault((peer, g.name), set()).update(ports[g.name])
    return out


def external(spec, ns: str, public: set[str]) -> set[int]:
    """Ports of addresses outside the cluster the service names (a remote origin, other issuers);
    public: the ingress' hosts, which only browsers open."""
    text = mentioned(spec)
    found = [(host, int(port) if port else DEFAULT_PORTS[scheme])
             for scheme, host, port in URL.findall(text) if scheme in DEFAULT_PORTS]
    found += [(host, int(port)) for host, port in HOST_PORT.findall(URL.sub(" ", text))]

    def outside(host: str) -> bool:
        in_cluster = ".svc" in host or host.split(".")[1:2] == [ns]
        return host not in LOCAL | public and not in_cluster and bool(re.search(r"[a-z]", host))
    return {port for host, port in found if outside(host)}


def _ports(ports) -> list[dict]:
    return [{"port": p, "protocol": "TCP"} for p in sorted(ports)]


def policies(ns: str, facility: str, groups, routes: list[tuple[str, str, int]], clients=(),
             extra: dict[str, dict] | None = None) -> list[dict]:
    """The namespace's default deny, then one policy per component. clients: (name, pod selector,
    spec) of pods that only connect (a launcher's clusters: their own policy comes from it); extra:
    component -> rules its policy gains ({"ingress": [...], "egress": [...]})."""
    from .workloads import Group
    selectors = {name: sel for name, sel, _ in clients}

    def peer(name: str) -> dict:
        return {"podSelector": selectors.get(name) or {"matchLabels": selector(facility, name)}}
    fl = flows([*groups, *(Group(name, spec, ()) for name, _, spec in clients)], ns)
    exposed: dict[str, set[int]] = {}
    for _, workload, port in routes:
        exposed.setdefault(workload, set()).add(port)
    out = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta("default-deny", ns, facility),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}]
    for g in groups:
        ingress = [{"from": [peer(c)], "ports": _ports(p)} for (c, s), p in sorted(fl.items()) if s == g.name]
        if g.name in exposed:
            ingress.append({"from": [TRAEFIK], "ports": _ports(exposed[g.name])})
        egress = [{"to": [peer(s)], "ports": _ports(p)} for (c, s), p in sorted(fl.items()) if c == g.name]
        egress.append(DNS)
        if ext := external(g.spec, ns, {h for h, _, _ in routes}):
            egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _ports(ext)})
        more = (extra or {}).get(g.name, {})
        spec = {"podSelector": {"matchLabels": selector(facility, g.name)}, "policyTypes": ["Ingress", "Egress"],
                "ingress": ingress + more.get("ingress", []), "egress": egress + more.get("egress", [])}
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": meta(g.name, ns, facility, g.name), "spec": spec})
    return out


def ingress(ns: str, facility: str, routes: list[tuple[str, str, int]]) -> dict:
    """routes: (host, service, port). HTTPS only, with a certificate from the facility CA."""
    rules = [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": svc, "port": {"number": port}}}}]}} for host, svc, port in routes]
    m = meta("afbox", ns, facility, annotations={
        "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
        "traefik.ingress.kubernetes.io/router.tls": "true"})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": m,
            "spec": {"ingressClassName": "traefik",
                     "tls": [{"hosts": [h for h, _, _ in routes], "secretName": INGRESS_TLS}],
                     "rules": rules}}

