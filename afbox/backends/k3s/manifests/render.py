"""The whole facility as Kubernetes objects, in the order they are applied, rendered from the
ServiceSpecs the backend placed in pods (see pod.in_pods) and nothing else."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from ....services.context import Context
from ....spec import ServiceSpec
from . import gpu, network, objects, volumes, workloads
from .objects import secret_key
from .pod import namespace_name

# What a dry run puts in the identity Secret: the files `afbox up` creates (never the CA key).
IDENTITY_FILES = ("ca.pem", "dask-key.pem", "dask.pem", "public-keys.json", "server-key.pem", "server.pem",
                  "signing-key.pem", "xrootd-sss.keytab")
PLACEHOLDERS = {"identity": IDENTITY_FILES, "jupyter-token": ("jupyter_token",), "data-token": ("tokens/data.token",)}
VISIBLE_ENV = {"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"}  # the device plugin picks the GPU
POD_ENV = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]


@dataclass(frozen=True)
class Filled:
    """What only exists at apply time, read or made by the backend from the facility's state."""
    secrets: dict[str, dict[str, bytes]]                    # Secret name -> {relative path: content}
    fills: dict[str, bytes] = field(default_factory=dict)   # pod path of a ConfigFile with a fill -> content


def routes(ctx: Context, specs: list[ServiceSpec]) -> list[tuple[str, str, int]]:
    """(host, workload, port) for every port exposed through the ingress."""
    k = ctx.facility.k3s
    return sorted((f"{e.subdomain}.{k.host}" if e.subdomain else k.host, s.replica_of or s.name, s.port_dict[e.port])
                  for s in specs for e in s.expose)


def _pod_spec(g: workloads.Group) -> ServiceSpec:
    """The group's template spec as Kubernetes runs it: `$(` escaped (Kubernetes would expand it),
    each replica named after its pod and reached at its IP, devices picked by the device plugin."""
    s = g.spec
    argv = [a.replace("$(", "$$(") for a in s.argv]
    if g.replicated:
        for flag, value in (("--host", "$(POD_IP)"), ("--name", "$(POD_NAME)")):
            if flag in argv[:-1]:
                argv[argv.index(flag) + 1] = value
    return replace(s, argv=tuple(argv), env=tuple((k, v) for k, v in s.env if k not in VISIBLE_ENV))


def render(ctx: Context, specs: list[ServiceSpec], filled: Filled | None = None) -> list[dict]:
    """specs: placed in pods. filled: None renders empty placeholders, so written manifests hold no
    key (dry run); `afbox up` fills them."""
    fac = ctx.facility
    name, ns, k = fac.name, namespace_name(fac), fac.k3s
    groups = [replace(g, spec=_pod_spec(g)) for g in workloads.group(specs)]
    texts = "\n".join(volumes.mentioned(g.spec) for g in groups)

    taken: dict[str, str] = {}
    keys, config_data, fill_keys, fill_data = {}, {}, {}, {}
    for g in groups:
        for f in g.spec.files:
            if f.fill:
                fill_keys[f.path] = secret_key(Path(f.path).name)
                fill_data[fill_keys[f.path]] = (filled.fills.get(f.path, b"") if filled else b"")
            elif not f.secret:
                keys[f.path] = volumes.config_key(g.name, f.path, taken)
                config_data[keys[f.path]] = f.text

    wanted = {n for n, prefix in volumes.SECRET_PATHS.items() if str(volumes.SECRETS / prefix.rstrip("/")) in texts}
    wanted |= {volumes.secret_of(f.secret)[0] for g in groups for f in g.spec.files if f.secret}
    secret_files = {n: dict.fromkeys(PLACEHOLDERS[n]) for n in wanted} if filled is None else \
        {n: files for n, files in filled.secrets.items() if n in wanted}
    listing = {n: tuple(p.removeprefix(volumes.SECRET_PATHS[n]) if volumes.SECRET_PATHS[n].endswith("/") else p
                        for p in secret_files[n]) for n in secret_files}
    ingress = routes(ctx, specs)
    if ingress:
        secret_files[network.INGRESS_TLS] = filled.secrets.get(network.INGRESS_TLS, {}) if filled else \
            {"tls.crt": None, "tls.key": None}

    out: list[dict] = [objects.namespace(ns, name)]
    out += network.policies(ns, name, {w: p for _, w, p in ingress})
    if any(g.spec.gpu == "nvidia" for g in groups):
        out += [gpu.runtime_class(), gpu.device_plugin(k.device_plugin_image)]
    for sname, files in sorted(secret_files.items()):
        type_ = "kubernetes.io/tls" if sname == network.INGRESS_TLS else "Opaque"
        source = "secrets/identity" if sname != "jupyter-token" else "secrets/jupyter_token"
        out.append(objects.secret(sname, ns, name, files, source, type_))
    if config_data:
        out.append(objects.config_map(volumes.CONFIG, ns, name, config_data))
    if fill_data:
        cm = objects.config_map(volumes.FILLS, ns, name, {})
        del cm["data"]
        cm["binaryData"] = {key: base64.b64encode(v).decode() for key, v in sorted(fill_data.items())}
        if not filled:
            cm["metadata"]["annotations"] = {objects.FILLED_AT_APPLY: "afbox up makes these files when it applies"}
        out.append(cm)
    shared = {v.name: v for g in groups for v in g.spec.volumes if v.shared}
    for v in shared.values():
        out.append(objects.pvc(v.name, ns, name, v.size, k.storage_class))
    for g in groups:
        image = k.xcache_image if g.spec.image_role == "xrootd" else k.analysis_image
        v = volumes.for_spec(g.spec, listing, keys, fill_keys, 0, image, workloads.RESTRICTED)
        if svc := workloads.service(g, ns, name):
            out.append(svc)
        out.append(workloads.workload(g, ns, name, image, v.volumes, v.mounts, POD_ENV if g.replicated else [],
                                      v.claims, k.storage_class, v.init))
    if ingress:
        out.append(network.ingress(ns, name, ingress))
    return out


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
