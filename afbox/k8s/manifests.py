"""The whole facility as Kubernetes objects, in the order they are applied."""
from __future__ import annotations

import base64
from dataclasses import dataclass, replace

import yaml

from .. import services
from ..facility import Facility, parse_size
from ..services import jupyter, origin, xcache
from ..services.context import Context
from . import gpu, network, objects, volumes, workloads
from .pod import CACHE, ORIGIN, WORKDIR, pod_context, translate, without_allow

# What a dry run puts in the identity Secret: the files `afbox up` creates (never the CA key).
IDENTITY_FILES = ("ca.pem", "dask-key.pem", "dask.pem", "public-keys.json", "server-key.pem", "server.pem",
                  "signing-key.pem")
VISIBLE_ENV = {"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"}  # the device plugin picks the GPU
KEYS, KEYCACHE_FILE = "xcache-keys", "scitokens_cpp.sqllite"
POD_ENV = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]


def namespace_name(fac: Facility) -> str:
    return fac.k3s.namespace or f"afbox-{fac.name}"


def hosts(fac: Facility) -> dict[str, str]:
    """Ingress host names: Jupyter at the facility's host, the Dask dashboard at dask.<host>."""
    return {"jupyter": fac.k3s.host, "dashboard": f"dask.{fac.k3s.host}"}


def urls(fac: Facility) -> dict[str, str]:
    h = hosts(fac)
    return {"lab": f"https://{h['jupyter']}/lab", "dashboard": f"https://{h['dashboard']}/status"}


def config_modules() -> dict:
    """Services whose module writes a config file (config_path/config_text) that their argv names."""
    from ..services import gateway
    return {"xcache": xcache, "origin": origin, gateway.NAME: gateway}


def _pod_spec(g: workloads.Group, owners: dict[int, str], ns: str, fac: Facility):
    """The group's template spec with addresses, names and devices as the pod sees them."""
    s = g.spec
    own = set(s.port_dict.values())
    argv = [translate(a.replace("$(", "$$("), own, owners, ns) for a in s.argv]
    if g.replicated:  # each replica is its own Dask worker: named after its pod, reached at its IP
        for flag, value in (("--host", "$(POD_IP)"), ("--name", "$(POD_NAME)")):
            if flag in argv[:-1]:
                argv[argv.index(flag) + 1] = value
    env = [(k, translate(v, own, owners, ns)) for k, v in s.env if k not in VISIBLE_ENV]
    if s.name == jupyter.NAME:  # links the user's browser follows go through the ingress
        env = [(k, urls(fac)["dashboard"] if k == "DASK_DISTRIBUTED__DASHBOARD__LINK" else v) for k, v in env]
    return replace(s, argv=tuple(argv), env=tuple(env))


@dataclass(frozen=True)
class Filled:
    """What only exists at apply time, read or made by the backend from the facility's state."""
    secrets: dict[str, dict[str, bytes]]   # Secret name -> {relative path: content}
    keycache: bytes | None = None           # libSciTokens' key cache with the issuer's public keys


def render(ctx: Context, filled: Filled | None = None) -> list[dict]:
    """ctx: the facility as rendered for this host. filled: None renders empty placeholders, so
    written manifests hold no key (dry run); `afbox up` fills them."""
    secret_files = filled.secrets if filled else None
    fac = ctx.facility
    name, ns, k = fac.name, namespace_name(fac), fac.k3s
    pctx = pod_context(ctx)
    specs = services.render(pctx)
    vendors = {f"dask-gpu-{i}": d.vendor for i, d in enumerate(ctx.gpus)}
    groups = workloads.group(specs, vendors)
    owners = {p: g.name for g in groups if not g.replicated for _, p in g.spec.ports}
    groups = [replace(g, spec=_pod_spec(g, owners, ns, fac)) for g in groups]
    by_name = {g.name: g for g in groups}

    configs: dict[str, str] = {}      # pod path -> ConfigMap key
    config_data: dict[str, str] = {}  # ConfigMap key -> text
    config_of: dict[str, str] = {}    # service -> the text of its config files
    for svc, mod in config_modules().items():  # config files a service's argv names, rendered for the pod
        if svc in by_name:
            own = set(by_name[svc].spec.port_dict.values())
            key = mod.config_path(pctx).name
            configs[str(mod.config_path(pctx))] = key
            config_data[key] = config_of[svc] = without_allow(translate(mod.config_text(pctx), own, owners, ns))
    if "xcache" in by_name and fac.auth.enabled:
        configs[str(xcache.scitokens_path(pctx))] = "scitokens.cfg"
        config_data["scitokens.cfg"] = translate(xcache.scitokens_text(pctx), set(), owners, ns)
    if jupyter.NAME in by_name:
        settings = jupyter.labextension_settings(pctx) | {"defaultURL": urls(fac)["dashboard"].removesuffix("/status")}
        config_data[volumes.SETTINGS] = yaml.safe_dump(settings, sort_keys=True)  # JSON is YAML; kept readable

    if secret_files is None:
        secret_files = {"identity": dict.fromkeys(IDENTITY_FILES), "jupyter-token": {"jupyter_token": None},
                        "data-token": {"tokens/data.token": None},
                        network.INGRESS_TLS: {"tls.crt": None, "tls.key": None}}
    if not fac.auth.enabled:
        secret_files = {n: f for n, f in secret_files.items() if n not in ("identity", "data-token")}
    if jupyter.NAME not in by_name:
        secret_files = {n: f for n, f in secret_files.items() if n != "jupyter-token"}
    prefixes = {n: volumes.SECRET_PATHS[n] for n in secret_files if n in volumes.SECRET_PATHS}
    listing = {n: tuple(p.removeprefix(prefixes[n]) if prefixes[n].endswith("/") else p for p in secret_files[n])
               for n in prefixes}

    out: list[dict] = [objects.namespace(ns, name)]
    exposed = {}
    if jupyter.NAME in by_name:
        exposed[jupyter.NAME] = by_name[jupyter.NAME].spec.port_dict["http"]
    if "dask-scheduler" in by_name:
        exposed["dask-scheduler"] = by_name["dask-scheduler"].spec.port_dict["dashboard"]
    out += network.policies(ns, name, exposed)
    if any(v == "nvidia" for v in vendors.values()):
        out += [gpu.runtime_class(), gpu.device_plugin(k.device_plugin_image)]
    for sname, files in sorted(secret_files.items()):
        type_ = "kubernetes.io/tls" if sname == network.INGRESS_TLS else "Opaque"
        source = "secrets/identity" if sname != "jupyter-token" else "secrets/jupyter_token"
        out.append(objects.secret(sname, ns, name, files, source, type_))
    if config_data:
        out.append(objects.config_map("config", ns, name, config_data))
    seed = fac.auth.enabled and "xcache" in by_name
    if seed:
        keys = objects.config_map(KEYS, ns, name, {})
        del keys["data"]
        keys["binaryData"] = {KEYCACHE_FILE: base64.b64encode(filled.keycache if filled and filled.keycache
                                                               else b"").decode()}
        if not (filled and filled.keycache):
            keys["metadata"]["annotations"] = {objects.FILLED_AT_APPLY: "afbox up writes the issuer's public keys here"}
        out.append(keys)
    if jupyter.NAME in by_name:
        out.append(objects.pvc("workdir", ns, name, parse_size(k.workdir_size), k.storage_class))
    for g in groups:
        claims = {WORKDIR: "workdir"}
        if g.name == "xcache":
            claims[str(CACHE)] = "cache"
        if g.name == "origin":
            claims[str(ORIGIN)] = "data"
        v = volumes.for_spec(g.spec, listing, configs, claims, config_of.get(g.name, ""))
        image = k.xcache_image if g.spec.argv[0].endswith("/xrootd") else k.analysis_image
        init = []
        if seed and g.name == "xcache":
            init = [_seed_keycache(image, v)]
        size = ctx.cache_size if g.name == "xcache" else parse_size(k.origin_size)
        if svc := workloads.service(g, ns, name):
            out.append(svc)
        out.append(workloads.workload(g, ns, name, image, v.volumes, v.mounts,
                                      POD_ENV if g.replicated else [], size, k.storage_class, init))
    if exposed:
        h = hosts(fac)
        routes = [(h["jupyter"], jupyter.NAME, exposed[jupyter.NAME])] if jupyter.NAME in exposed else []
        if "dask-scheduler" in exposed:
            routes.append((h["dashboard"], "dask-scheduler", exposed["dask-scheduler"]))
        out.append(network.ingress(ns, name, routes))
    return out


def _seed_keycache(image: str, v: volumes.Volumes) -> dict:
    """libSciTokens writes to its key cache, so the keys go into a writable copy before xrootd starts."""
    v.add("keys", {"configMap": {"name": KEYS}}, "/afbox-keys", readOnly=True)
    v.mounts.pop()  # the main container needs only the copy
    target = f"{volumes.KEYCACHE}/scitokens"
    return {"name": "seed-keycache", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", f'mkdir -p {target} && cp /afbox-keys/{KEYCACHE_FILE} {target}/'],
            "securityContext": workloads.RESTRICTED,
            "volumeMounts": [{"name": "keys", "mountPath": "/afbox-keys", "readOnly": True},
                             {"name": "keycache", "mountPath": str(volumes.KEYCACHE)}]}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # shared sub-dicts are written out, never as &anchors
        return True


def _str(dumper: yaml.SafeDumper, s: str):
    style = "|" if "\n" in s else None  # configs stay readable in review
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


_Dumper.add_representer(str, _str)


def dump(objs: list[dict]) -> str:
    """Multi-document YAML, keys sorted: the same facility always gives the same text."""
    return yaml.dump_all(objs, Dumper=_Dumper, sort_keys=True, default_flow_style=False, explicit_start=True)


def file_name(index: int, obj: dict) -> str:
    return f"{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
