"""Which volumes a container gets: what its spec declares (files, volumes, scratch dirs) and the
facility secrets its argv and environment mention.

A service names the secrets it needs (its token file, the Dask certificate); the pod gets those and
nothing more: a Dask worker sees the Dask certificate, not the token-signing key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ....spec import ServiceSpec
from .objects import secret_key
from .pod import STATE

SECRETS = STATE / "secrets"
# Secret name -> the path under <state>/secrets it provides (a dir when it ends in "/").
SECRET_PATHS = {"identity": "identity/", "jupyter-token": "jupyter_token", "data-token": "tokens/data.token"}
OPTIONAL = {"data-token"}  # the data token exists only once the issuer has minted one
CONFIG = "config"          # the ConfigMap holding every service's config files
FILLS = "fills"            # the ConfigMap holding files made at apply time (binaryData)


@dataclass
class Volumes:
    volumes: list[dict] = field(default_factory=list)
    mounts: list[dict] = field(default_factory=list)
    claims: list[tuple[str, int]] = field(default_factory=list)  # a StatefulSet's own claims: (name, size)
    init: list[dict] = field(default_factory=list)               # what copies fills into writable dirs

    def add(self, name: str, source: dict, path: str, **mount) -> None:
        self.volumes.append({"name": name, **source})
        self.mounts.append({"name": name, "mountPath": path, **mount})


def mentioned(spec: ServiceSpec) -> str:
    """What the service itself reads paths from (a fill's text is for the one who makes the file)."""
    return "\n".join([*spec.argv, *(v for _, v in spec.env), *spec.state_dirs, spec.cwd or "",
                      *(f.text for f in spec.files if not f.fill)])


def secret_of(path: str) -> tuple[str, str] | None:
    """(Secret name, key) of a path relative to the secrets dir."""
    for name, prefix in SECRET_PATHS.items():
        if prefix.endswith("/") and path.startswith(prefix):
            return name, secret_key(path.removeprefix(prefix))
        if path == prefix:
            return name, secret_key(path)
    return None


def secret_sources(text: str, secret_files: dict[str, tuple[str, ...]]) -> list[dict]:
    """Projected-volume sources: for each Secret the files this service mentions (all of a dir
    Secret when the dir itself is mentioned)."""
    refs = set(re.findall(re.escape(str(SECRETS)) + r"/([\w.\-/]*)", text))
    out = []
    for name, prefix in SECRET_PATHS.items():
        files = secret_files.get(name, ())
        if prefix.endswith("/"):
            whole = prefix in refs or prefix.rstrip("/") in refs
            chosen = [f for f in files if whole or any(prefix + f == r or (prefix + f).startswith(r.rstrip("/") + "/")
                                                       for r in refs if r.startswith(prefix) and r != prefix)]
        else:
            chosen = [f for f in files if f in refs]
        if not chosen:
            continue
        base = prefix if prefix.endswith("/") else ""
        src = {"name": name, "items": [{"key": secret_key(f), "path": base + f} for f in sorted(chosen)]}
        if name in OPTIONAL:
            src["optional"] = True
        out.append({"secret": src})
    return out


def config_key(service: str, path: str, taken: dict[str, str]) -> str:
    """The file's key in the config ConfigMap: its name, unless another service's file has it."""
    key = secret_key(Path(path).name)
    if taken.get(key, service) != service:
        key = secret_key(f"{service}-{Path(path).name}")
    taken[key] = service
    return key


def for_spec(spec: ServiceSpec, secret_files: dict[str, tuple[str, ...]], keys: dict[str, str],
             fill_keys: dict[str, str], default_size: int, init_image: str, security: dict) -> Volumes:
    """keys: path -> key of the spec's config files in the config ConfigMap; fill_keys: the same
    for files made at apply time, in the fills ConfigMap."""
    v = Volumes()
    # files copied from the facility's secrets (xrootd's TLS files): one volume per dir
    by_dir: dict[str, list] = {}
    for f in spec.files:
        if f.secret:
            by_dir.setdefault(str(Path(f.path).parent), []).append(f)
    for d, files in sorted(by_dir.items()):
        items, name = [], None
        for f in files:
            name, key = secret_of(f.secret)
            items.append({"key": key, "path": Path(f.path).name})
        v.add(_name(d), {"secret": {"secretName": name, "defaultMode": min(f.mode for f in files), "items": items}},
              d, readOnly=True)
    # files made at apply time that the service also writes: copied into a writable dir first
    for f in spec.files:
        if f.fill:
            d = str(Path(f.path).parent)
            v.add(_name(d), {"emptyDir": {}}, d)
            key = fill_keys[f.path]
            v.add(f"{_name(d)}-seed", {"configMap": {"name": FILLS, "items": [{"key": key, "path": key}]}},
                  f"/afbox-seed/{key}", readOnly=True)
            v.mounts.pop()  # the main container needs only the copy
            v.init.append({"name": f"seed-{_name(d)}", "image": init_image, "imagePullPolicy": "IfNotPresent",
                           "command": ["cp", f"/afbox-seed/{key}/{key}", f.path],
                           "securityContext": security,
                           "volumeMounts": [{"name": f"{_name(d)}-seed", "mountPath": f"/afbox-seed/{key}",
                                             "readOnly": True},
                                            {"name": _name(d), "mountPath": d}]})
    sources = secret_sources(mentioned(spec), secret_files)
    if sources:
        # 0400 with fsGroup: readable by the pod's group, never by others
        v.add("secrets", {"projected": {"sources": sources, "defaultMode": 0o400}}, str(SECRETS), readOnly=True)
    for vol in spec.volumes:
        if vol.shared:
            v.add(vol.name, {"persistentVolumeClaim": {"claimName": vol.name}}, vol.path)
        else:  # a StatefulSet's claim template: the volume comes from volumeClaimTemplates
            v.mounts.append({"name": vol.name, "mountPath": vol.path})
            v.claims.append((vol.name, vol.size or default_size))
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
