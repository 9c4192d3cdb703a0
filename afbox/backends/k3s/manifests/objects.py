"""Small builders shared by every manifest: names, labels, quantities, config and secret objects."""
from __future__ import annotations

import base64
import re

PART_OF = "afbox"
FACILITY_LABEL = "afbox.io/facility"


def labels(facility: str, component: str | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/managed-by": "afbox",
           "app.kubernetes.io/instance": facility, FACILITY_LABEL: facility}
    if component:
        out["app.kubernetes.io/name"] = component
    return out


def selector(facility: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/instance": facility, "app.kubernetes.io/name": component}


def meta(name: str, namespace: str | None, facility: str, component: str | None = None, **extra) -> dict:
    m = {"name": name, "labels": labels(facility, component)}
    if namespace:
        m["namespace"] = namespace
    return m | extra


def namespace(name: str, facility: str) -> dict:
    m = meta(name, None, facility)
    # every afbox pod meets the "restricted" Pod Security Standard; the API server enforces it
    m["labels"] |= {"pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": m}


def service_account(name: str, ns: str, facility: str, rules: list[dict]) -> list[dict]:
    """A ServiceAccount with a Role of its own in the namespace (these rules only), bound to it."""
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, ns, facility)},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(name, ns, facility),
             "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(name, ns, facility),
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}}]


def secret_key(path: str) -> str:
    """A Secret/ConfigMap key for a relative file path (keys allow only [-._a-zA-Z0-9])."""
    return re.sub(r"[^-._a-zA-Z0-9]", "_", path)


def secret(name: str, ns: str, facility: str, files: dict[str, bytes], type_: str = "Opaque") -> dict:
    """files: relative path -> content."""
    data = {secret_key(p): base64.b64encode(v).decode() for p, v in sorted(files.items())}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta(name, ns, facility), "type": type_, "data": data}


def config_map(name: str, ns: str, facility: str, files: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns, facility),
            "data": {secret_key(p): v for p, v in sorted(files.items())}}


def cpu(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else f"{round(n * 1000)}m"


def memory(n: int) -> str:
    for unit, size in (("Gi", 1024 ** 3), ("Mi", 1024 ** 2), ("Ki", 1024)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def claim_spec(size: int, storage_class: str) -> dict:
    return {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
            "resources": {"requests": {"storage": memory(size)}}}


def pvc(name: str, ns: str, facility: str, size: int, storage_class: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(name, ns, facility),
            "spec": claim_spec(size, storage_class)}
