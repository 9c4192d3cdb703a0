"""Deployments, StatefulSets and Services from (pod-translated) ServiceSpecs.

Replicas of one group (spec.replica_of: the Dask workers) become ONE workload with `replicas`;
a service with data of its own (spec.stateful) is a StatefulSet with a claim; anything else is a
Deployment, plus a Service for its ports.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ....spec import ServiceSpec
from ....units import parse_size
from .objects import claim_spec, cpu, labels, memory, meta, selector
from .pod import UID, VENV_BIN, workload_of

GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
# the root filesystem stays read-only: a service writes only to its declared dirs, /tmp and its home
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}
HOME = "/home/afbox"           # the analysis image's home (images/analysis.Containerfile)
READY = {"periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3}
# a service that stops answering for two minutes is restarted
ALIVE = {"initialDelaySeconds": 30, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 6}
RETIRE = "afbox.backends.k3s.retire"
RETIRE_TIMEOUT = 120           # seconds a worker has to hand its data over


@dataclass(frozen=True)
class Group:
    name: str                 # the workload's (and Service's) name
    spec: ServiceSpec         # the first member's spec: every replica runs this template
    members: tuple[str, ...]  # the facility's service names it stands for

    @property
    def replicated(self) -> bool:
        return bool(self.spec.replica_of)

    @property
    def kind(self) -> str:
        return "StatefulSet" if self.spec.stateful else "Deployment"


def group(specs: list[ServiceSpec]) -> list[Group]:
    """Workloads in the order their first member appears among the specs."""
    out: dict[str, list[ServiceSpec]] = {}
    for s in specs:
        out.setdefault(workload_of(s), []).append(s)
    return [Group(name, members[0], tuple(s.name for s in members)) for name, members in out.items()]


def port_name(label: str) -> str:
    """IANA service names: at most 15 lowercase letters, digits and single dashes."""
    name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    if len(name) > 15:
        *head, last = name.split("-")
        name = "-".join([*(h[0] for h in head), last])[:15].strip("-")
    return name


def probe(spec: ServiceSpec) -> dict | None:
    """What a probe asks, with the meaning of the service's health check."""
    h = spec.health
    ports = spec.port_dict
    if h is None or not ports:
        return None
    own = h.port if h.port in ports.values() else next(iter(ports.values()))
    if h.kind == "dask-worker":  # the worker's own dashboard answers once it runs
        dash = next((p for label, p in spec.ports if "dashboard" in label), own)
        return {"httpGet": {"path": "/health", "port": dash}}
    if h.kind in ("http", "https") and any(k in ("token-file", "bearer-file") for k, _ in h.headers):
        # a token-protected server: its unauthenticated version endpoint (Jupyter's /api)
        return {"httpGet": {"path": "/api", "port": own}}
    if h.kind in ("http", "https"):
        return {"httpGet": {"path": h.path, "port": own, "scheme": h.kind.upper()}}
    return {"tcpSocket": {"port": own}}


def resources(s: ServiceSpec, replicated: bool, k) -> dict:
    """Every container asks for memory (none is evicted first for having asked for nothing); a
    service's own size is its limit; replicas (workers) get their CPUs as a limit too, so they
    are never throttled below nor burst above what they were sized for."""
    requests = {"cpu": cpu(s.cpus) if s.cpus else k.cpu_request,
                "memory": memory(s.memory) if s.memory else memory(parse_size(k.memory_request))}
    limits = {}
    if s.memory:
        limits["memory"] = memory(s.memory)
    if replicated and s.cpus:
        limits["cpu"] = cpu(s.cpus)
    if s.gpu:
        limits[GPU_RESOURCE.get(s.gpu, "nvidia.com/gpu")] = 1
    return {"requests": requests, **({"limits": limits} if limits else {})}


def container(g: Group, image: str, mounts: list[dict], extra_env: list[dict], k) -> dict:
    s = g.spec
    c: dict = {"name": g.name, "image": image, "imagePullPolicy": "IfNotPresent", "command": list(s.argv)}
    env = [*extra_env, *({"name": k, "value": v} for k, v in s.env)]
    if env:
        c["env"] = env
    if s.cwd:
        c["workingDir"] = s.cwd
    if s.ports:
        c["ports"] = [{"name": port_name(label), "containerPort": p, "protocol": "TCP"} for label, p in s.ports]
    c["resources"] = resources(s, g.replicated, k)
    if p := probe(s):
        c["readinessProbe"] = {**p, **READY}
        c["livenessProbe"] = {**p, **ALIVE}
    if hook := retire_hook(s):
        c["lifecycle"] = {"preStop": {"exec": {"command": hook}}}
    c["securityContext"] = RESTRICTED
    c["volumeMounts"] = mounts
    return c


def retire_hook(s: ServiceSpec) -> list[str] | None:
    """A Dask worker hands its data and tasks to the others before its pod stops (a Deployment
    scaled down, a node drained), as the dask-kubernetes operator retires workers first."""
    if not (s.replica_of and s.health and s.health.kind == "dask-worker"):
        return None
    scheduler = s.argv[s.argv.index("worker") + 1] if "worker" in s.argv[:-1] else ""
    return [f"{VENV_BIN}/python", "-m", RETIRE, scheduler, str(RETIRE_TIMEOUT)]


def workload(g: Group, ns: str, facility: str, image: str, v, extra_env: list[dict], k) -> dict:
    """v: the pod's Volumes (volumes.for_spec); k: the facility's [k3s] section."""
    writable = [("tmp", "/tmp")] + ([("home", HOME)] if g.spec.image_role != "xrootd" else [])
    mounts = [*v.mounts, *({"name": n, "mountPath": p} for n, p in writable)]
    pod = {
        "automountServiceAccountToken": False,  # no afbox service talks to the Kubernetes API
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container(g, image, mounts, extra_env, k)],
        "volumes": [*v.volumes, *({"name": n, "emptyDir": {}} for n, _ in writable)],
    }
    if v.init:
        pod["initContainers"] = list(v.init)
    if g.spec.gpu:
        pod["tolerations"] = [{"key": GPU_RESOURCE.get(g.spec.gpu, "nvidia.com/gpu"), "operator": "Exists",
                               "effect": "NoSchedule"}]
    if g.spec.gpu == "nvidia":
        pod["runtimeClassName"] = "nvidia"
    if retire_hook(g.spec):
        pod["terminationGracePeriodSeconds"] = RETIRE_TIMEOUT + 30
    spec = {"replicas": len(g.members), "selector": {"matchLabels": selector(facility, g.name)},
            "template": {"metadata": {"labels": labels(facility, g.name)}, "spec": pod}}
    if g.kind == "StatefulSet":
        spec |= {"serviceName": g.name,
                 # the claim outlives the StatefulSet: cached data survives `afbox down`
                 "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                 "volumeClaimTemplates": [{"metadata": {"name": claim, "labels": labels(facility, g.name)},
                                           "spec": claim_spec(size, k.storage_class)} for claim, size in v.claims]}
    elif g.spec.singleton:  # a second copy during an update would split the facility
        spec["strategy"] = {"type": "Recreate"}
    return {"apiVersion": "apps/v1", "kind": g.kind, "metadata": meta(g.name, ns, facility, g.name), "spec": spec}


def service(g: Group, ns: str, facility: str) -> dict | None:
    if g.replicated or not g.spec.ports:
        return None  # workers are reached by the scheduler at their pod addresses
    ports = [{"name": port_name(label), "port": p, "targetPort": port_name(label), "protocol": "TCP"}
             for label, p in g.spec.ports]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(g.name, ns, facility, g.name),
            "spec": {"type": "ClusterIP", "selector": selector(facility, g.name), "ports": ports}}
