"""The whole facility as Kubernetes objects, in the order they are applied, rendered from the
ServiceSpecs the backend placed in pods (see pod.in_pods) and nothing else."""
from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from ....services.context import Context
from ....spec import ServiceSpec
from . import gpu, hub_pods, images, launcher, network, objects, secrets, volumes, workloads
from .objects import secret_key
from .pod import namespace_name

VISIBLE_ENV = {"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"}  # the device plugin picks the GPU
CONTROLLER_KEY = "launcher-controller.py"  # the launcher's controller config in the config ConfigMap
POD_ENV = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]


@dataclass(frozen=True)
class Filled:
    """What only exists at apply time, read or made by the backend from the facility's state."""
    secrets: dict[str, dict[str, bytes]]                    # Secret name -> {relative path: content}
    fills: dict[str, bytes] = field(default_factory=dict)   # pod path of a ConfigFile with a fill -> content
    digests: dict[str, str] = field(default_factory=dict)   # image -> its digest in the air-gap set


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


def render(ctx: Context, specs: list[ServiceSpec], filled: Filled) -> list[dict]:
    """specs: placed in pods; filled: what `afbox up` read and made for them (a dry run blanks the
    secret values of the result, nothing else)."""
    fac = ctx.facility
    name, ns, k = fac.name, namespace_name(fac), fac.k3s
    groups = [replace(g, spec=_pod_spec(g)) for g in workloads.group(specs)]
    listing = {n: tuple(p.removeprefix(secrets.SECRET_PATHS.get(n, "")) for p in files)
               for n, files in filled.secrets.items()}
    analysis = images.pinned(k.analysis_image, filled.digests)
    launching = {g.name: _clusters(g, listing, analysis) for g in groups if _launches(g)}
    groups = [replace(g, spec=launcher.adapted(g.spec, ns, name, analysis, launching[g.name][2]))
              if g.name in launching else g for g in groups]
    hubs = [g.name for g in groups if g.spec.launches and g.spec.launches.kind == hub_pods.KIND]
    groups = [replace(g, spec=hub_pods.adapted(g.spec, ns, name, analysis, class_limits(ctx)))
              if g.name in hubs else g for g in groups]

    taken: dict[str, str] = {}
    keys, config_data, fill_keys, fill_data = {}, {}, {}, {}
    for g in groups:
        for f in g.spec.files:
            if f.fill:
                fill_keys[f.path] = secret_key(Path(f.path).name)
                fill_data[fill_keys[f.path]] = filled.fills.get(f.path, b"")
            elif not f.secret:
                keys[f.path] = volumes.config_key(g.name, f.path, taken)
                config_data[keys[f.path]] = f.text

    for w in launching:
        config_data[CONTROLLER_KEY] = launcher.controller_config(w, ns, name, groups_by(groups, w).spec.port_dict[
            groups_by(groups, w).spec.launches.api])
    copies = {g.name: secrets.copies(g.spec, listing, fill_keys) for g in groups}
    copies |= {f"{w}-clusters": c for w, (c, _, _) in launching.items()}
    used = {c.source for cs in copies.values() for c in cs if not c.config_map}
    ingress = routes(ctx, specs)
    if ingress:
        used.add(network.INGRESS_TLS)
    missing = sorted(used - set(filled.secrets) - secrets.OPTIONAL)
    if missing:
        raise ValueError(f"no content for Secret(s) {', '.join(missing)}")

    out: list[dict] = [objects.namespace(ns, name)]
    clients, extra, launched = [], {}, []
    for w, (_, pseudo, _) in launching.items():
        fl = network.flows([*groups, workloads.Group(pseudo.name, pseudo, ())], ns)
        pols, extra[w] = launcher.policies(groups_by(groups, w).spec, ns, name,
                                           {k: p for k, p in fl.items() if k[0] == pseudo.name},
                                           network.external(pseudo, ns, {h for h, _, _ in ingress}))
        launched += pols
        clients.append((pseudo.name, pols[0]["spec"]["podSelector"], pseudo))
    for h in hubs:
        pseudo = ServiceSpec(hub_pods.STUDENTS, (), env=groups_by(groups, h).spec.launches.env)
        fl = network.flows([*groups, workloads.Group(pseudo.name, pseudo, ())], ns)
        pols, extra[h] = hub_pods.policies(groups_by(groups, h).spec, ns, name,
                                           {k: p for k, p in fl.items() if k[0] == pseudo.name})
        launched += pols
        clients.append((pseudo.name, hub_pods.student_selector(name), pseudo))
    out += network.policies(ns, name, groups, ingress, clients, extra) + launched
    if any(g.spec.gpu == "nvidia" for g in groups):
        out += [gpu.runtime_class(), gpu.device_plugin(images.pinned(k.device_plugin_image, filled.digests))]
    for sname in sorted(used & set(filled.secrets)):
        tls = sname == network.INGRESS_TLS or sname.endswith("-tls")
        out.append(objects.secret(sname, ns, name, filled.secrets[sname], "kubernetes.io/tls" if tls else "Opaque"))
    if config_data:
        out.append(objects.config_map(volumes.CONFIG, ns, name, config_data))
    if fill_data:
        cm = objects.config_map(volumes.FILLS, ns, name, {})
        del cm["data"]
        cm["binaryData"] = {key: base64.b64encode(v).decode() for key, v in sorted(fill_data.items())}
        out.append(cm)
    shared = {v.name: v for g in groups for v in g.spec.volumes if v.shared}
    for v in shared.values():
        out.append(objects.pvc(v.name, ns, name, v.size, k.storage_class))
    for g in groups:
        image = images.pinned(k.xcache_image if g.spec.image_role == "xrootd" else k.analysis_image, filled.digests)
        v = volumes.for_spec(g.spec, copies[g.name], keys, image, workloads.RESTRICTED)
        if svc := workloads.service(g, ns, name):
            out.append(svc)
        w = workloads.workload(g, ns, name, image, v, POD_ENV if g.replicated else [], k)
        if g.name in launching:
            w = launcher.in_pod(w, g.spec, ns, name, images.pinned(k.gateway_proxy_image, filled.digests))
        if g.name in hubs:
            w = hub_pods.in_pod(w, g.spec)
        out.append(w)
    for w in launching:
        mounts = {"mounts": [{"name": "config", "mountPath": launcher.CONTROLLER_CONFIG, "subPath": CONTROLLER_KEY,
                              "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
                  "volumes": [{"name": "config", "configMap": {"name": volumes.CONFIG, "items": [
                      {"key": CONTROLLER_KEY, "path": CONTROLLER_KEY}]}}, {"name": "tmp", "emptyDir": {}}]}
        out += launcher.objects(groups_by(groups, w).spec, ns, name, analysis, mounts)
    for h in hubs:
        out += hub_pods.objects(groups_by(groups, h).spec, ns, name)
    if ingress:
        out.append(network.ingress(ns, name, ingress))
    return out


def class_limits(ctx: Context) -> dict:
    """What each student's pod gets (afbox.class_spec), and where the class's public files are."""
    from ....services.hub import paths
    from ....units import parse_size
    m = ctx.facility.masterclass
    return {"memory": parse_size(m.memory), "cpus": m.cpus, "admit": parse_size(m.admit_free),
            "public": str(paths(ctx).public)}


def _launches(g: workloads.Group) -> bool:
    return bool(g.spec.launches) and g.spec.launches.kind == launcher.KIND


def _clusters(g: workloads.Group, listing: dict, image: str):
    """(copies, spec, pod settings) of the pods a launcher starts: its clusters' environment as a spec."""
    pseudo = ServiceSpec(f"{g.name}-clusters", (), env=g.spec.launches.env)
    copies = secrets.copies(pseudo, listing, {})
    v = volumes.for_spec(pseudo, copies, {}, image, workloads.RESTRICTED)
    return copies, pseudo, launcher.cluster_pod(v)


def groups_by(groups: list[workloads.Group], name: str) -> workloads.Group:
    return next(g for g in groups if g.name == name)


def blank(objs: list[dict]) -> list[dict]:
    """The objects as a dry run shows them: every Secret value and every file made at apply time
    empty, everything else as applied."""
    out = copy.deepcopy(objs)
    for o in out:
        if o["kind"] == "Secret":
            o["data"] = dict.fromkeys(o.get("data", {}), "")
        elif o["kind"] == "ConfigMap" and "binaryData" in o:
            o["binaryData"] = dict.fromkeys(o["binaryData"], "")
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
