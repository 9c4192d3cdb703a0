"""A class on k3s (spec.launches of kind "jupyterhub"): the hub starts each student's server as a pod
of its own with KubeSpawner, as zero-to-jupyterhub runs it, with what afbox adds (afbox.hub.kube).

Here: the KubeSpawner settings appended to the hub's config (image, the restricted security
context, the student's limits, their home as a subPath of the class claim, their token Secret,
labels), the hub's namespaced role (pods; the students' token Secrets, which it writes but cannot
read back; events), and the NetworkPolicies: students' pods reach the hub's API, the gateway, the
XCache and the issuer, are reached by the hub (its proxy) only, and never reach each other.
"""
from __future__ import annotations

from dataclasses import replace

from ....hub.paths import TOKEN_SECRET, TOKEN_SOURCE
from ....spec import ServiceSpec
from .launcher import API_SERVER_PORTS
from .objects import labels, meta, selector, service_account
from .pod import UID, VENV_BIN, workload_of
from .workloads import HOME, RESTRICTED

KIND = "jupyterhub"
STUDENTS = "students"        # the app.kubernetes.io/name of students' pods
SERVER_PORT = 8888           # jupyterhub-singleuser in a student's pod
CLAIM = "class"              # the hub's shared volume (afbox.services.hub: homes, accounts, database)


def student_labels(facility: str) -> dict[str, str]:
    return labels(facility, STUDENTS)


def student_selector(facility: str) -> dict:
    return {"matchLabels": selector(facility, STUDENTS)}


def spawner_settings(spec: ServiceSpec, ns: str, facility: str, image: str, limits: dict) -> dict:
    """limits: memory (bytes), cpus, admit (bytes a pod requests: the scheduler admits it only
    where that much is free), public (the dir of the CA and the issuer's keys, on the claim)."""
    internal = spec.port_dict[spec.launches.api]
    root = next(v.path for v in spec.volumes if v.name == CLAIM)
    public = limits["public"]
    volumes = [{"name": CLAIM, "persistentVolumeClaim": {"claimName": CLAIM}},
               {"name": "token", "secret": {"secretName": TOKEN_SECRET, "defaultMode": 0o440}},
               {"name": "tmp", "emptyDir": {}}]
    mounts = [{"name": CLAIM, "mountPath": HOME, "subPath": "homes/{username}"},
              {"name": CLAIM, "mountPath": public, "subPath": public.removeprefix(root + "/"), "readOnly": True},
              {"name": "token", "mountPath": TOKEN_SOURCE, "readOnly": True},
              {"name": "tmp", "mountPath": "/tmp"}]
    return {
        "JupyterHub.hub_bind_url": f"http://0.0.0.0:{internal}",
        "JupyterHub.hub_connect_url": f"http://{workload_of(spec)}.{ns}.svc:{internal}",
        "KubeSpawner.namespace": ns,
        "KubeSpawner.image": image,
        "KubeSpawner.image_pull_policy": "IfNotPresent",
        "KubeSpawner.cmd": [f"{VENV_BIN}/python", "-m", "afbox.hub.singleuser"],
        "KubeSpawner.port": SERVER_PORT,
        "KubeSpawner.common_labels": student_labels(facility),
        "KubeSpawner.uid": UID, "KubeSpawner.gid": UID, "KubeSpawner.fs_gid": UID,
        "KubeSpawner.pod_security_context": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "KubeSpawner.container_security_context": RESTRICTED,
        "KubeSpawner.automount_service_account_token": False,
        "KubeSpawner.services_enabled": False,
        "KubeSpawner.storage_pvc_ensure": False,
        "KubeSpawner.mem_limit": limits["memory"], "KubeSpawner.mem_guarantee": min(limits["admit"], limits["memory"]),
        "KubeSpawner.cpu_limit": limits["cpus"], "KubeSpawner.cpu_guarantee": round(min(0.1, limits["cpus"]), 3),
        "KubeSpawner.volumes": volumes,
        "KubeSpawner.volume_mounts": mounts,
        "KubeSpawner.extra_pod_config": {"enableServiceLinks": False},
        "KubeSpawner.environment": {"HOME": HOME},
    }


def adapted(spec: ServiceSpec, ns: str, facility: str, image: str, limits: dict) -> ServiceSpec:
    """The hub's spec with KubeSpawner's settings after afbox's own (afbox.hub.setup)."""
    settings = spawner_settings(spec, ns, facility, image, limits)
    text = "\n".join(["", "# k3s: each student's server is a pod of its own (afbox.hub.kube.ClassKubeSpawner)",
                      *(f"c.{k} = {v!r}" for k, v in settings.items())]) + "\n"
    files = tuple(replace(f, text=f.text + text) if f.path == spec.launches.config else f for f in spec.files)
    return replace(spec, files=files)


def in_pod(workload: dict, spec: ServiceSpec) -> dict:
    """The hub under its own service account (KubeSpawner talks to the API)."""
    pod = workload["spec"]["template"]["spec"]
    pod["serviceAccountName"] = workload_of(spec)
    pod["automountServiceAccountToken"] = True
    return workload


def objects(spec: ServiceSpec, ns: str, facility: str) -> list[dict]:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
             {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "update", "delete"]},
             {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]}]
    return service_account(workload_of(spec), ns, facility, rules)


def policies(spec: ServiceSpec, ns: str, facility: str, flows: dict) -> tuple[list[dict], dict]:
    """The students' NetworkPolicy, and the rules the hub's own gains. flows: (students, server) ->
    ports of the addresses students are given (the gateway, the XCache, the issuer)."""
    from .network import DNS, _ports
    hub = {"podSelector": {"matchLabels": selector(facility, workload_of(spec))}}
    students = {"podSelector": student_selector(facility)}
    internal = spec.port_dict[spec.launches.api]
    egress = [{"to": [hub], "ports": _ports([internal])}]
    egress += [{"to": [{"podSelector": {"matchLabels": selector(facility, s)}}], "ports": _ports(p)}
               for (_, s), p in sorted(flows.items())]
    egress.append(DNS)
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": meta(STUDENTS, ns, facility, STUDENTS),
              "spec": {"podSelector": student_selector(facility), "policyTypes": ["Ingress", "Egress"],
                       "ingress": [{"from": [hub], "ports": _ports([SERVER_PORT])}], "egress": egress}}
    api = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _ports(API_SERVER_PORTS)}
    own = {"ingress": [{"from": [students], "ports": _ports([internal])}],
           "egress": [{"to": [students], "ports": _ports([SERVER_PORT])}, api]}
    return [policy], own
