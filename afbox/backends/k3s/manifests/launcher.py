"""A service that starts Dask clusters on demand (spec.launches: the Dask gateway), run on k3s as
dask-gateway's Helm chart runs it: the gateway's API with dask-gateway-server's Kubernetes backend,
its controller starting one pod per cluster scheduler and per worker with requests and limits (so
the Kubernetes scheduler sees and bounds them), and Traefik as its proxy, here beside the API in
the gateway's pod so that the service's ports stay where its clients look for them.

Roles are namespaced (the chart's are cluster-wide): the API and Traefik read, the controller
creates only in the facility's namespace. The clusters' pods get the facility's data credentials
copied in at mode 0600, as every other pod does (secrets.py).
"""
from __future__ import annotations

from dataclasses import replace

from ....spec import ServiceSpec
from .objects import labels, meta, service_account
from .pod import UID, VENV_BIN, workload_of
from .workloads import RESTRICTED, port_name

KIND = "dask-gateway"
CRD_GROUP = "gateway.dask.org"
CONTROLLER_CONFIG = "/etc/afbox/gateway-controller/config.py"
WEB, TCP, PING = "web", "tcp", 9000
API_SERVER_PORTS = (443, 6443)
ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]  # the chart's "*", spelt out  # the Kubernetes API, as the Service and as k3s serves it


def instance(facility: str) -> str:
    return f"afbox-{facility}"


def cluster_labels(facility: str) -> dict[str, str]:
    """Labels of everything the gateway's backend and controller create (clusters, their pods)."""
    return {**labels(facility), "gateway.dask.org/instance": instance(facility)}


def controller_name(workload: str) -> str:
    return f"{workload}-controller"


def adapted(spec: ServiceSpec, ns: str, facility: str, image: str, pod: dict) -> ServiceSpec:
    """The spec with its config file telling dask-gateway-server to start clusters as pods; pod:
    what those pods get besides (volumes, init container, security: cluster_pod)."""
    la = spec.launches
    w = workload_of(spec)
    api = spec.port_dict[la.api]
    settings = {
        "DaskGateway.backend_class": "dask_gateway_server.backends.kubernetes.KubeBackend",
        "KubeBackend.gateway_instance": instance(facility),
        "KubeBackend.common_labels": cluster_labels(facility),
        "KubeBackend.api_url": f"http://{w}.{ns}.svc:{api}/api",
        "KubeClusterConfig.namespace": ns,
        "KubeClusterConfig.image": image,
        "KubeClusterConfig.image_pull_policy": "IfNotPresent",
        "KubeClusterConfig.environment": dict(la.env),
        "KubeClusterConfig.scheduler_extra_pod_config": pod["pod"],
        "KubeClusterConfig.worker_extra_pod_config": pod["pod"],
        "KubeClusterConfig.scheduler_extra_container_config": pod["container"],
        "KubeClusterConfig.worker_extra_container_config": pod["container"],
    }
    text = "\n".join(["", "# k3s: each cluster's scheduler and workers are pods of their own, with limits",
                      *(f"c.{k} = {v!r}" for k, v in settings.items())]) + "\n"
    files = tuple(replace(f, text=f.text + text) if f.path == la.config else f for f in spec.files)
    return replace(spec, files=files)


def cluster_pod(v) -> dict:
    """What every cluster pod gets besides dask-gateway's own: the restricted security context and
    the facility's credentials copied in (v: volumes.for_spec of the clusters' environment)."""
    pod = {"securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                               "seccompProfile": {"type": "RuntimeDefault"}},
           "enableServiceLinks": False,
           "volumes": [*v.volumes, {"name": "tmp", "emptyDir": {}}, {"name": "home", "emptyDir": {}}]}
    if v.init:
        pod["initContainers"] = v.init
    container = {"securityContext": RESTRICTED,
                 "volumeMounts": [*v.mounts, {"name": "tmp", "mountPath": "/tmp"},
                                  {"name": "home", "mountPath": "/home/afbox"}]}
    return {"pod": pod, "container": container}


def proxy_container(spec: ServiceSpec, ns: str, facility: str, image: str) -> dict:
    """Traefik serving the service's proxy ports from the routes the controller makes."""
    web, tcp = (spec.port_dict[label] for label in spec.launches.proxy)
    args = ["--global.checknewversion=false", "--global.sendanonymoususage=false", "--ping=true",
            f"--entrypoints.traefik.address=:{PING}", f"--entrypoints.{WEB}.address=:{web}",
            f"--entrypoints.{TCP}.address=:{tcp}", "--providers.kubernetescrd",
            f"--providers.kubernetescrd.namespaces={ns}",
            f"--providers.kubernetescrd.labelselector=gateway.dask.org/instance={instance(facility)}",
            "--providers.kubernetescrd.throttleduration=2", "--log.level=WARN"]
    probe = {"httpGet": {"path": "/ping", "port": PING}, "periodSeconds": 10, "timeoutSeconds": 2}
    return {"name": "proxy", "image": image, "imagePullPolicy": "IfNotPresent", "args": args,
            "ports": [{"name": port_name(label), "containerPort": spec.port_dict[label], "protocol": "TCP"}
                      for label in spec.launches.proxy],
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
            "readinessProbe": {**probe, "failureThreshold": 3},
            "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 6},
            "securityContext": RESTRICTED}


def in_pod(workload: dict, spec: ServiceSpec, ns: str, facility: str, proxy_image: str) -> dict:
    """The gateway's workload with Traefik beside its API, under its own service account."""
    pod = workload["spec"]["template"]["spec"]
    api = pod["containers"][0]
    proxied = {port_name(label) for label in spec.launches.proxy}
    api["ports"] = [p for p in api.get("ports", []) if p["name"] not in proxied]
    pod["containers"].append(proxy_container(spec, ns, facility, proxy_image))
    pod["serviceAccountName"] = workload_of(spec)
    pod["automountServiceAccountToken"] = True  # the Kubernetes backend and Traefik read the API
    return workload


def objects(spec: ServiceSpec, ns: str, facility: str, image: str, controller_pod: dict) -> list[dict]:
    """The CRD, service accounts, roles, the API's route and the controller."""
    w = workload_of(spec)
    ctl = controller_name(w)
    api = spec.port_dict[spec.launches.api]
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"daskclusters.{CRD_GROUP}", "labels": labels(facility)},
           "spec": {"group": CRD_GROUP, "scope": "Namespaced",
                    "names": {"kind": "DaskCluster", "listKind": "DaskClusterList", "plural": "daskclusters",
                              "singular": "daskcluster"},
                    "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    traefik_read = {"apiGroups": ["traefik.io", "traefik.containo.us"],
                    "resources": ["ingressroutes", "ingressroutetcps", "ingressrouteudps", "middlewares",
                                  "middlewaretcps", "serverstransports", "serverstransporttcps", "tlsoptions",
                                  "tlsstores", "traefikservices"], "verbs": ["get", "list", "watch"]}
    rules = {
        w: [{"apiGroups": [CRD_GROUP], "resources": ["daskclusters"], "verbs": ALL_VERBS},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["services", "endpoints", "secrets"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            traefik_read],
        ctl: [{"apiGroups": [CRD_GROUP], "resources": ["daskclusters", "daskclusters/status"], "verbs": ALL_VERBS},
              {"apiGroups": ["traefik.io"], "resources": ["ingressroutes", "ingressroutetcps"],
               "verbs": ["get", "create", "delete"]},
              {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
              {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list", "watch"]},
              {"apiGroups": [""], "resources": ["secrets", "services"], "verbs": ["create", "delete"]}],
    }
    out = [crd]
    for name, role_rules in rules.items():
        out += service_account(name, ns, facility, role_rules)
    out.append({"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute",
                "metadata": {**meta(f"{w}-api", ns, facility), "labels": cluster_labels(facility)},
                "spec": {"entryPoints": [WEB], "routes": [{"kind": "Rule", "match": "PathPrefix(`/`)",
                                                             "services": [{"name": w, "port": api}]}]}})
    out.append(controller(ctl, w, ns, facility, image, api, controller_pod))
    return out


def controller_config(workload: str, ns: str, facility: str, api: int) -> str:
    settings = {"KubeController.address": ":8000", "KubeController.api_url": f"http://{workload}.{ns}.svc:{api}/api",
                "KubeController.gateway_instance": instance(facility), "KubeController.common_labels":
                cluster_labels(facility), "KubeController.proxy_web_entrypoint": WEB,
                "KubeController.proxy_tcp_entrypoint": TCP}
    return "# written by afbox\n" + "".join(f"c.{k} = {v!r}\n" for k, v in settings.items())


def controller(name: str, workload: str, ns: str, facility: str, image: str, api: int, pod: dict) -> dict:
    """dask-gateway-server kube-controller: one replica, as the chart runs it."""
    probe = {"httpGet": {"path": "/api/health", "port": 8000}, "periodSeconds": 10, "timeoutSeconds": 3}
    c = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
         "command": [f"{VENV_BIN}/dask-gateway-server", "kube-controller", "--config", CONTROLLER_CONFIG],
         "ports": [{"name": "health", "containerPort": 8000, "protocol": "TCP"}],
         "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
         "readinessProbe": {**probe, "failureThreshold": 3},
         "livenessProbe": {**probe, "initialDelaySeconds": 30, "failureThreshold": 6},
         "securityContext": RESTRICTED, "volumeMounts": pod["mounts"]}
    spec = {"serviceAccountName": name, "automountServiceAccountToken": True, "enableServiceLinks": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [c], "volumes": pod["volumes"]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, ns, facility, name),
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                     "selector": {"matchLabels": {"app.kubernetes.io/instance": facility,
                                                  "app.kubernetes.io/name": name}},
                     "template": {"metadata": {"labels": labels(facility, name)}, "spec": spec}}}


def policies(spec: ServiceSpec, ns: str, facility: str, flows: dict, external: set[int]) -> tuple[list[dict], dict]:
    """NetworkPolicies of the clusters' pods and the controller, and the rules the service's own
    policy gains (extra: {"ingress": [...], "egress": [...]}). flows: (client, server) -> ports of
    what the clusters' environment names (the XCache, the issuer); external: ports outside."""
    from .network import DNS, _ports, selector
    w = workload_of(spec)
    clusters = {"podSelector": {"matchLabels": {"gateway.dask.org/instance": instance(facility)}}}
    service = {"podSelector": {"matchLabels": selector(facility, w)}}
    api = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _ports(API_SERVER_PORTS)}
    own = {"ingress": [{"from": [clusters], "ports": _ports([spec.port_dict[spec.launches.api]])}],
           "egress": [{"to": [clusters], "ports": _ports([8786, 8787, 8788])}, api]}
    egress = [{"to": [clusters]}, {"to": [service], "ports": _ports([spec.port_dict[spec.launches.api]])}]
    egress += [{"to": [{"podSelector": {"matchLabels": selector(facility, s)}}], "ports": _ports(p)}
               for (_, s), p in sorted(flows.items())]
    egress.append(DNS)
    if external:
        egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _ports(external)})
    out = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta(f"{w}-clusters", ns, facility),
            "spec": {"podSelector": clusters["podSelector"], "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"from": [clusters]}, {"from": [service], "ports": _ports([8786, 8787, 8788])}],
                     "egress": egress}},
           {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta(controller_name(w), ns, facility, controller_name(w)),
            "spec": {"podSelector": {"matchLabels": selector(facility, controller_name(w))},
                     "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": [api, DNS]}}]
    return out, own
