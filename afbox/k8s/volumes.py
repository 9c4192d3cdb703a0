"""Which volumes a container gets, decided by the paths its argv and environment mention.

A service names the files it needs (its TLS key, its token file, its config); the pod gets those
and nothing more: a Dask worker sees the Dask certificate, not the token-signing key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..spec import ServiceSpec
from .objects import secret_key
from .pod import CACHE, ORIGIN, STATE, WORKDIR, XROOTD_DIR

SECRETS = STATE / "secrets"
# Secret name -> the path under <state>/secrets it provides (a dir when it ends in "/").
SECRET_PATHS = {"identity": "identity/", "jupyter-token": "jupyter_token", "data-token": "tokens/data.token"}
OPTIONAL = {"data-token"}  # the data token exists only once the issuer has minted one
CLAIMS = {str(CACHE): "cache", str(ORIGIN): "data", WORKDIR: "workdir"}
SETTINGS = "jupyterlab-settings"
TLS_COPIES = XROOTD_DIR / "tls"      # xrootd's copies of the facility certificate (from `identity`)
KEYCACHE = XROOTD_DIR / "cache"      # libSciTokens' key cache: writable, seeded by an init container


@dataclass
class Volumes:
    volumes: list[dict] = field(default_factory=list)
    mounts: list[dict] = field(default_factory=list)

    def add(self, name: str, source: dict, path: str, **mount) -> None:
        self.volumes.append({"name": name, **source})
        self.mounts.append({"name": name, "mountPath": path, **mount})


def mentioned(spec: ServiceSpec) -> str:
    return "\n".join([*spec.argv, *(v for _, v in spec.env), *spec.state_dirs, spec.cwd or ""])


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


def for_spec(spec: ServiceSpec, secret_files: dict[str, tuple[str, ...]], configs: dict[str, str],
             claims: dict[str, str], config_text: str = "") -> Volumes:
    """configs: pod path of a config file -> its key in the `config` ConfigMap; claims: mount path
    -> volume name for the PVCs this workload has; config_text: what the service's config files say."""
    text = mentioned(spec) + "\n" + config_text
    v = Volumes()
    tls = sorted(set(re.findall(re.escape(str(TLS_COPIES)) + r"/([\w.\-]+)", text)))
    if tls:
        v.add("tls", {"secret": {"secretName": "identity", "defaultMode": 0o400,
                                 "items": [{"key": secret_key(f), "path": f} for f in tls]}},
              str(TLS_COPIES), readOnly=True)
    if str(KEYCACHE) in text:
        v.add("keycache", {"emptyDir": {}}, str(KEYCACHE))
    sources = secret_sources(text, secret_files)
    if sources:
        # 0400 with fsGroup: readable by the pod's group, never by others
        v.add("secrets", {"projected": {"sources": sources, "defaultMode": 0o400}}, str(SECRETS), readOnly=True)
    if str(STATE / "run") in text:
        v.add("run", {"emptyDir": {}}, str(STATE / "run"))
    if str(STATE / SETTINGS) in text:
        v.add("settings", {"configMap": {"name": "config", "items": [
            {"key": SETTINGS, "path": "dask-labextension/plugin.jupyterlab-settings"}]}},
            str(STATE / SETTINGS), readOnly=True)
    for path, key in sorted(configs.items()):
        if path in text:
            v.add(re.sub(r"[^a-z0-9-]", "-", key.lower()), {"configMap": {"name": "config", "items": [{"key": key, "path": key}]}},
                  path, subPath=key, readOnly=True)
    for path, name in sorted(claims.items()):
        if path in text:
            source = {"persistentVolumeClaim": {"claimName": name}} if name == "workdir" else None
            if source:
                v.add(name, source, path)
            else:  # a StatefulSet's claim template: the volume comes from volumeClaimTemplates
                v.mounts.append({"name": name, "mountPath": path})
    covered = [m["mountPath"] for m in v.mounts]
    # any other dir a service writes to (xrootd's admin dir, ...) is scratch space of the pod
    for i, d in enumerate(sorted(spec.state_dirs)):
        if not any(d == c or d.startswith(c + "/") for c in covered):
            v.add(f"scratch-{i}", {"emptyDir": {}}, d)
    return v
