"""Cluster-wide GPU plumbing: the `nvidia` RuntimeClass and NVIDIA's device plugin.

k3s registers the `nvidia` containerd runtime by itself when it finds nvidia-container-runtime on
the node; the device plugin then advertises `nvidia.com/gpu`. Both are shared by every facility on
the cluster, so `afbox down` leaves them (uninstalling k3s removes them).
"""
from __future__ import annotations

from .objects import PART_OF

PLUGIN = "nvidia-device-plugin-daemonset"
PLUGIN_DIR = "/var/lib/kubelet/device-plugins"


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/managed-by": "afbox",
            "app.kubernetes.io/name": name}


def runtime_class() -> dict:
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": "nvidia", "labels": _labels("nvidia")}, "handler": "nvidia"}


def device_plugin(image: str) -> dict:
    """As NVIDIA's static nvidia-device-plugin.yml, run with the nvidia runtime."""
    sel = {"name": "nvidia-device-plugin-ds"}
    pod = {
        "runtimeClassName": "nvidia",
        "priorityClassName": "system-node-critical",
        "automountServiceAccountToken": False,  # it talks to the kubelet's socket, not the API
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{
            "name": "nvidia-device-plugin-ctr", "image": image, "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True},
            "volumeMounts": [{"name": "device-plugin", "mountPath": PLUGIN_DIR}]}],
        "volumes": [{"name": "device-plugin", "hostPath": {"path": PLUGIN_DIR}}],
    }
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": PLUGIN, "namespace": "kube-system", "labels": _labels("nvidia-device-plugin")},
            "spec": {"selector": {"matchLabels": sel}, "updateStrategy": {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": sel}, "spec": pod}}}
