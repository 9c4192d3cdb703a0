"""Which volumes a container gets: what its spec declares (files, volumes, scratch dirs), and the
facility secrets its argv, environment and config name, copied in by an init container
(afbox.backends.k3s.manifests.secrets says why and which).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ....spec import ServiceSpec
from .objects import secret_key
from .secrets import FILLS, SOURCE, Copy, roots, script, source_volume

CONFIG = "config"          # the ConfigMap holding every service's config files
SECRET_SIZE = "16Mi"       # the memory-backed dirs secrets are copied into


@dataclass
class Volumes:
    volumes: list[dict] = field(default_factory=list)
    mounts: list[dict] = field(default_factory=list)
    claims: list[tuple[str, int]] = field(default_factory=list)  # a StatefulSet's own claims: (name, size)
    init: list[dict] = field(default_factory=list)               # what copies secrets and fills in
    copies: list[Copy] = field(default_factory=list)

    def add(self, name: str, source: dict, path: str, **mount) -> None:
        self.volumes.append({"name": name, **source})
        self.mounts.append({"name": name, "mountPath": path, **mount})


def config_key(service: str, path: str, taken: dict[str, str]) -> str:
    """The file's key in the config ConfigMap: its name, unless another service's file has it."""
    key = secret_key(Path(path).name)
    if taken.get(key, service) != service:
        key = secret_key(f"{service}-{Path(path).name}")
    taken[key] = service
    return key


def for_spec(spec: ServiceSpec, copies: list[Copy], keys: dict[str, str], init_image: str,
             security: dict) -> Volumes:
    """keys: path -> key of the spec's config files in the config ConfigMap."""
    v = Volumes(copies=copies)
    if copies:
        init_mounts = [{"name": "source", "mountPath": SOURCE, "readOnly": True}]
        v.volumes.append({"name": "source", **source_volume(copies)})
        for root, writable in sorted(roots(copies).items()):
            name = _name(root)
            v.add(name, {"emptyDir": {"medium": "Memory", "sizeLimit": SECRET_SIZE}}, root,
                  **({} if writable else {"readOnly": True}))
            init_mounts.append({"name": name, "mountPath": root})
        v.init.append({"name": "copy-files", "image": init_image, "imagePullPolicy": "IfNotPresent",
                       "command": ["sh", "-c", script(copies)], "securityContext": security,
                       "resources": {"requests": {"cpu": "10m", "memory": SECRET_SIZE},
                                     "limits": {"cpu": "100m", "memory": "64Mi"}},
                       "volumeMounts": init_mounts})
    for vol in spec.volumes:
        if vol.shared:
            v.add(vol.name, {"persistentVolumeClaim": {"claimName": vol.name}}, vol.path)
        else:  # a StatefulSet's claim template: the volume comes from volumeClaimTemplates
            v.mounts.append({"name": vol.name, "mountPath": vol.path})
            v.claims.append((vol.name, vol.size or 0))
    covered = [m["mountPath"] for m in v.mounts]
    # any other dir a service writes to (xrootd's admin dir, run dirs, ...) is scratch space of the pod
    for i, d in enumerate(sorted(spec.state_dirs)):
        if not any(d == c or d.startswith(c + "/") for c in covered):
            v.add(f"scratch-{i}", {"emptyDir": {}}, d)
            covered.append(d)
    for f in spec.files:
        if not f.secret and not f.fill:
            v.add(_name(keys[f.path]), {"configMap": {"name": CONFIG, "items": [{"key": keys[f.path],
                                                                                   "path": keys[f.path]}]}},
                  f.path, subPath=keys[f.path], readOnly=True)
    return v


def _name(text: str) -> str:
    """A volume name (DNS label) for a path or key."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", Path(text).name.lower())).strip("-")[:63] or "files"
