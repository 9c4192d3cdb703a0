"""Which of the facility's secrets each pod gets, and how they reach it at mode 0600.

A pod gets only the files its service names: a path in its argv, environment or config, or a
ConfigFile copied from the secrets dir. Naming the identity dir gives the identity's own files (the
signing key, the CA, the server certificate: afbox.auth.identity), never the certificates made for
other purposes, which a service names one by one (the Dask certificate).

With an fsGroup, Kubernetes adds group read to every file of a Secret volume (0400 becomes 0440),
and xrootd refuses a key file with any group or other bit, as XrdCl's ztn does a token file. So no
container reads a Secret volume itself: an init container copies each file into a memory-backed
emptyDir with `install -m 0600` (or the ConfigFile's mode), and the service reads only the copy.

Every server presents a certificate naming its own Service (<workload>.<namespace>.svc), made by
`afbox up` from the facility CA on the host: the CA key never leaves it.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ....auth.identity import CA_CERT, PUBLIC_KEYS, RETIRED, SERVER_CERT, SERVER_KEY, SIGNING_KEY
from ....spec import ServiceSpec
from .objects import secret_key
from .pod import STATE, workload_of

SECRETS = STATE / "secrets"
# Secret name -> the path under <state>/secrets it provides (a dir when it ends in "/").
SECRET_PATHS = {"identity": "identity/", "jupyter-token": "jupyter_token", "data-token": "tokens/data.token"}
OPTIONAL = {"data-token"}  # the data token exists only once the issuer has minted one
IDENTITY_OWN = (CA_CERT, PUBLIC_KEYS, RETIRED, SERVER_CERT, SERVER_KEY, SIGNING_KEY)
# the server certificate of the identity dir is, in a pod, the one made for the pod's own Service
SERVER_FILES = {f"identity/{SERVER_CERT}": "tls.crt", f"identity/{SERVER_KEY}": "tls.key"}
FILLS = "fills"           # the ConfigMap holding files made at apply time (binaryData)
SOURCE = "/afbox/source"   # where the init container sees the Secrets and fills it copies
PRIVATE = 0o600


@dataclass(frozen=True)
class Copy:
    """One file the init container copies: from `key` of Secret (or fills ConfigMap) `source`."""
    source: str
    key: str
    dest: str
    mode: int = PRIVATE
    optional: bool = False
    config_map: bool = False   # from a ConfigMap (files made at apply time), not a Secret
    writable: bool = False     # the service writes to it too

    @property
    def path(self) -> str:
        return f"{SOURCE}/{self.source}/{self.key}"


def server_secret(workload: str) -> str:
    return f"{workload}-tls"


def server_hosts(workload: str, ns: str) -> tuple[str, ...]:
    """Every name a pod may use for a Service, then the pod's own loopback (its health checks)."""
    svc = f"{workload}.{ns}.svc"
    return svc, f"{workload}.{ns}", workload, f"{svc}.cluster.local", "localhost", "127.0.0.1"


def mentioned(spec: ServiceSpec) -> str:
    """What the service itself reads paths from (a fill's text is for the one who makes the file)."""
    return "\n".join([*spec.argv, *(v for _, v in spec.env), *spec.state_dirs, spec.cwd or "",
                      *(f.text for f in spec.files if not f.fill)])


def references(spec: ServiceSpec) -> list[str]:
    """Paths under the secrets dir the service names (relative to it)."""
    return sorted(set(re.findall(re.escape(str(SECRETS)) + r"/([\w.\-/]*)", mentioned(spec))))


def presents_server_cert(spec: ServiceSpec) -> bool:
    refs = references(spec) + [f.secret for f in spec.files if f.secret]
    return any(r in SERVER_FILES or r.rstrip("/") == SECRET_PATHS["identity"].rstrip("/") for r in refs)


def server_workloads(specs: list[ServiceSpec]) -> list[str]:
    """The workloads whose pods present the facility's server certificate: each gets its own."""
    return sorted({workload_of(s) for s in specs if presents_server_cert(s)})


def secret_of(path: str, workload: str) -> tuple[str, str] | None:
    """(Secret name, key) of a path relative to the secrets dir, as the workload's pod gets it."""
    if path in SERVER_FILES:
        return server_secret(workload), SERVER_FILES[path]
    for name, prefix in SECRET_PATHS.items():
        if prefix.endswith("/") and path.startswith(prefix):
            return name, secret_key(path.removeprefix(prefix))
        if path == prefix:
            return name, secret_key(path)
    return None


def chosen(refs: list[str], name: str, files: tuple[str, ...]) -> list[str]:
    """The files (relative to the secrets dir) of Secret `name` that these references name."""
    prefix = SECRET_PATHS[name]
    if not prefix.endswith("/"):
        return [prefix] if prefix in refs else []
    whole = prefix.rstrip("/")
    out = []
    if prefix in refs or whole in refs:  # the whole dir: the identity's own files
        out = [prefix + f for f in IDENTITY_OWN if f in files or prefix + f in SERVER_FILES]
    parts = [r for r in refs if r.rstrip("/") != whole]  # and what is named inside it (its hashed CA dir)
    return out + [prefix + f for f in files if prefix + f not in out
                  and any(prefix + f == r or (prefix + f).startswith(r.rstrip("/") + "/") for r in parts)]


def copies(spec: ServiceSpec, listing: dict[str, tuple[str, ...]], fill_keys: dict[str, str]) -> list[Copy]:
    """Every file the pod's init container copies: secrets the service names, its ConfigFiles copied
    from the secrets dir, and files made at apply time (fill_keys: pod path -> fills key)."""
    workload = workload_of(spec)
    refs = references(spec)
    out: dict[str, Copy] = {}
    for f in spec.files:
        if f.secret and (src := secret_of(f.secret, workload)):
            out[f.path] = Copy(*src, dest=f.path, mode=f.mode, writable=f.writable)
        elif f.fill:
            out[f.path] = Copy(FILLS, fill_keys[f.path], f.path, f.mode, config_map=True, writable=f.writable)
    for name in SECRET_PATHS:
        for rel in chosen(refs, name, listing.get(name, ())):
            src = secret_of(rel, workload)
            if src[0] in listing or src[0] == server_secret(workload):
                dest = str(SECRETS / rel)
                out.setdefault(dest, Copy(*src, dest=dest, optional=name in OPTIONAL))
    return sorted(out.values(), key=lambda c: c.dest)


def roots(cs: list[Copy]) -> dict[str, bool]:
    """The dirs the copies land in, each an emptyDir -> whether the service writes there."""
    out: dict[str, bool] = {}
    for c in cs:
        root = str(SECRETS) if Path(c.dest).is_relative_to(SECRETS) else str(Path(c.dest).parent)
        out[root] = out.get(root, False) or c.writable
    return out


def source_volume(cs: list[Copy]) -> dict:
    """The Secrets and fills the init container reads, each under SOURCE/<its name>/."""
    by_source: dict[tuple[str, bool], list[Copy]] = {}
    for c in cs:
        by_source.setdefault((c.source, c.config_map), []).append(c)
    sources = []
    for (name, config_map), group in sorted(by_source.items()):
        items = [{"key": k, "path": f"{name}/{k}"} for k in sorted({c.key for c in group})]
        src = {"name": name, "items": items}
        if all(c.optional for c in group):
            src["optional"] = True
        sources.append({"configMap" if config_map else "secret": src})
    return {"projected": {"sources": sources, "defaultMode": 0o400}}


def script(cs: list[Copy]) -> str:
    """The init container's copy script: one `install` per file, ending at the file's mode."""
    lines = ["set -e"]
    for c in cs:
        cmd = f"install -D -m {c.mode:04o} {shlex.quote(c.path)} {shlex.quote(c.dest)}"
        lines.append(f"[ ! -e {shlex.quote(c.path)} ] || {cmd}" if c.optional else cmd)
    return "\n".join(lines) + "\n"
