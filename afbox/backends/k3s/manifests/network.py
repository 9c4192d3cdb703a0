"""Who may reach the facility's pods: only each other, and Traefik for Jupyter and the dashboard."""
from __future__ import annotations

from .objects import meta

INGRESS_TLS = "ingress-tls"


def policies(ns: str, facility: str, exposed: dict[str, int]) -> list[dict]:
    """exposed: component -> port that Traefik (in kube-system) may reach."""
    def policy(name: str, spec: dict) -> dict:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": meta(name, ns, facility), "spec": {**spec, "policyTypes": ["Ingress"]}}
    out = [policy("default-deny-ingress", {"podSelector": {}}),
           policy("allow-same-namespace", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})]
    if exposed:
        traefik = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                   "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}}}
        out.append(policy("allow-ingress-controller", {
            "podSelector": {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In",
                                                  "values": sorted(exposed)}]},
            "ingress": [{"from": [traefik],
                         "ports": [{"port": p, "protocol": "TCP"} for _, p in sorted(exposed.items())]}]}))
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
