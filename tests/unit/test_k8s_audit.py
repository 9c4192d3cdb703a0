"""An audit of the k3s objects as a real cluster would meet them, for every profile: the file modes
a pod's services see, the names on the certificates they present, who the NetworkPolicies let
reach whom, and checkov's Kubernetes checks (with the exceptions accepted, each with its reason).
Each check also runs once on a known-bad object, so that it is seen to fail."""
from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from afbox import lifecycle
from afbox.backends.k3s import manifests as k8s
from afbox.facility import load
from afbox.lifecycle import credentials
from afbox.services.context import Context
from afbox.services.sizing import DaskSize
from afbox.state import FacilityState
from test_k8s_manifests import A100, placed, stand_in

GiB = 1024 ** 3
PROFILES = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "bundles").glob("*.toml"))
CASES = [*PROFILES, "gpu", "remote-origin"]
PRIVATE = re.compile(r"(-key\.pem|tls\.key|token)$")  # keys and bearer tokens, by their Secret key


def case_ctx(case: str) -> Context:
    profile = case if case in PROFILES else "k3s-edge"
    over = {"facility": {"backend": "k3s", "workdir": "/srv/work"}}
    if case == "remote-origin":
        over["xcache"] = {"origin": "root://eospublic.cern.ch:1094"}
    if profile == "masterclass":
        over["masterclass"] = {"students": 3}  # the profile names no students: up's --students does
    fac = load(profile, None, over)
    return Context(facility=fac, state=FacilityState(fac.name), dask=DaskSize(2, 2, 2 * GiB), bin_dir="/venv/bin",
                   xrootd=None, xrootd_user=None, cache_dir=Path("/c/xcache"), xrootd_dir=Path("/c/xrootd"),
                   cache_size=20 * GiB, gpus=tuple(A100) if case == "gpu" else ())


def rendered(case: str) -> list[dict]:
    c = case_ctx(case)
    specs = placed(c)
    return k8s.render(c, specs, stand_in(c, specs))


@pytest.fixture(autouse=True)
def _owner(monkeypatch):
    monkeypatch.setattr("afbox.services.issuer.owner", lambda: "physicist")


def pods(objs: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objs
            if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")}


# -- file modes --------------------------------------------------------------------------------
def effective_files(pod: dict) -> dict[str, tuple[int, str]]:
    """Path -> (mode, Secret/key it holds) of every secret file the main container sees, as the
    kubelet makes them: a Secret or projected volume's items get defaultMode (0644 if unset), and
    with an fsGroup the kubelet adds group read to them; files an init container copies into an
    emptyDir keep the mode it gave them (`install -m`)."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    fs_group = pod.get("securityContext", {}).get("fsGroup") is not None
    copied: dict[str, tuple[int, str]] = {}
    for init in pod.get("initContainers", []):
        sources = {m["mountPath"]: volumes[m["name"]] for m in init.get("volumeMounts", [])}
        for line in " ".join(init.get("command", [])).splitlines():
            if m := re.search(r"install -D -m (\d+) (\S+) (\S+)", line):
                src = shlex.split(m[2])[0]
                root = next(p for p in sources if src.startswith(p + "/"))
                copied[shlex.split(m[3])[0]] = (int(m[1], 8), src.removeprefix(root + "/"))
    out = {}
    for mount in pod["containers"][0].get("volumeMounts", []):
        vol, at = volumes.get(mount["name"], {}), mount["mountPath"]
        for kind in ("secret", "projected"):
            if kind not in vol:
                continue
            src = vol[kind]
            default = src.get("defaultMode", 0o644)
            items = [(s["secret"]["name"], i) for s in src.get("sources", []) if "secret" in s
                     for i in s["secret"].get("items", [])] if kind == "projected" else \
                [(src["secretName"], i) for i in src.get("items", [])]
            for name, item in items:
                mode = item.get("mode", default) | (0o440 if fs_group else 0)
                out[f"{at}/{item['path']}"] = (mode, f"{name}/{item['key']}")
        if "emptyDir" in vol:
            out |= {p: v for p, v in copied.items() if p.startswith(at + "/")}
    return out


def refused(objs: list[dict]) -> list[str]:
    """Every private file a pod sees with a group or other bit: xrootd refuses such a key ("has
    excessive access rights"), XrdCl's ztn such a token file."""
    return [f"{name}: {path} ({src}) is {mode:04o}" for name, pod in pods(objs).items()
            for path, (mode, src) in effective_files(pod).items() if PRIVATE.search(src) and mode & 0o077]


@pytest.mark.parametrize("case", CASES)
def test_every_private_key_and_token_a_pod_reads_is_0600(case):
    objs = rendered(case)
    assert not refused(objs)
    xcache = pods(objs)["xcache"]
    seen = effective_files(xcache)
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "config")
    cert, key = re.search(r"^xrd\.tls (\S+) (\S+)$", config["data"]["xcache.cfg"], re.M).groups()
    assert seen[key] == (0o600, "xcache-tls/tls.key") and seen[cert][1] == "xcache-tls/tls.crt"
    env = {e["name"]: e["value"] for e in pods(objs)["dask-worker"]["containers"][0]["env"] if "value" in e}
    assert effective_files(pods(objs)["dask-worker"])[env["BEARER_TOKEN_FILE"]][0] == 0o600


def test_the_mode_check_fails_for_a_key_mounted_from_a_secret_with_an_fsgroup():
    """Kubernetes' own way: defaultMode 0400 and fsGroup make the key 0440, which xrootd refuses."""
    pod = {"securityContext": {"fsGroup": 1000},
           "volumes": [{"name": "tls", "secret": {"secretName": "identity", "defaultMode": 0o400,
                                                  "items": [{"key": "server-key.pem", "path": "server-key.pem"}]}}],
           "containers": [{"volumeMounts": [{"name": "tls", "mountPath": "/etc/tls"}]}]}
    obj = {"kind": "StatefulSet", "metadata": {"name": "xcache"}, "spec": {"template": {"spec": pod}}}
    assert refused([obj]) == ["xcache: /etc/tls/server-key.pem (identity/server-key.pem) is 0440"]


# -- certificate names -------------------------------------------------------------------------
def names_used(objs: list[dict], ns: str) -> dict[str, set[str]]:
    """Workload -> the host names pods use for it in https:// and root:// addresses (which check
    the name; Dask's tls:// does not: distributed turns the hostname check off)."""
    text = yaml.safe_dump([o for o in objs if o["kind"] != "Secret"])
    out: dict[str, set[str]] = {}
    for host in re.findall(r"\b(?:https|roots?)://([a-z0-9.-]+)", text):
        if f".{ns}" in host:
            out.setdefault(host.split(".")[0], set()).add(host)
    return out


def presented(objs: list[dict], workload: str, filled: k8s.Filled) -> x509.Certificate:
    """The certificate a workload's server presents: xrootd's `xrd.tls`, else the server
    certificate of the identity dir the service is given (the issuer)."""
    pod = pods(objs)[workload]
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "config")["data"]
    tls = [m for text in config.values() for m in re.findall(r"^xrd\.tls (\S+)", text, re.M)
           if any(m.startswith(v["mountPath"]) for v in pod["containers"][0]["volumeMounts"])]
    argv = pod["containers"][0]["command"]
    path = tls[0] if tls else f"{argv[argv.index('--identity-dir') + 1]}/server.pem"
    secret, key = effective_files(pod)[path][1].split("/", 1)
    return x509.load_pem_x509_certificate(filled.secrets[secret][key])


@pytest.mark.parametrize("case", ["k3s-edge", "remote-origin"])
def test_each_server_presents_a_certificate_for_every_name_pods_use(case, tmp_path, monkeypatch):
    for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    fac = case_ctx(case).facility
    be, ctx, specs = lifecycle.placed(fac)
    credentials.prepare(ctx)  # the facility CA on this host, as `afbox up` makes it
    filled = be.filled(ctx, specs)
    objs = k8s.render(ctx, specs, filled)
    used = names_used(objs, k8s.namespace_name(fac))
    assert set(used) == {"issuer", "xcache"}
    for workload, hosts in used.items():
        sans = presented(objs, workload, filled).extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value.get_values_for_type(x509.DNSName)
        assert hosts <= set(sans), f"{workload} presents {sans}, pods use {hosts}"
    assert "ca-key.pem" not in filled.secrets["identity"]  # the CA key never leaves the host


def test_the_name_check_fails_for_the_hosts_own_server_certificate(tmp_path, monkeypatch):
    """The certificate `afbox up` makes for the host names 127.0.0.1 and localhost only."""
    for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    _, ctx, _ = lifecycle.placed(case_ctx("k3s-edge").facility)
    credentials.prepare(ctx)
    host = x509.load_pem_x509_certificate((ctx.identity_dir / "server.pem").read_bytes())
    sans = host.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert "xcache.afbox-edge.svc" not in sans.get_values_for_type(x509.DNSName)


# -- flows -------------------------------------------------------------------------------------
TRAEFIK = ("kube-system", {"app.kubernetes.io/name": "traefik"})
OUTSIDE = ("", {})  # an address outside the cluster
CLUSTERS = "gateway clusters"  # the schedulers and workers the Dask gateway starts as pods
STUDENTS = "students' servers"  # the pods a class's hub starts (KubeSpawner)
# (client, server, port or the server's port label, why): what the facility needs ...
NEEDED = [
    ("jupyter", "dask-scheduler", "scheduler", "kernels' Client"),
    ("jupyter", "dask-scheduler", "dashboard", "the Dask panel"),
    ("dask-worker", "dask-scheduler", "scheduler", "workers join"),
    ("dask-scheduler", "dask-worker", "worker", "the scheduler sends tasks"),
    ("dask-worker", "dask-worker", "worker", "workers exchange data"),
    ("jupyter", "xcache", "xroot", "kernels read root:// through the cache"),
    ("dask-worker", "xcache", "xroot", "workers read root:// through the cache"),
    ("xcache", "origin", "xroot", "the cache fills from the origin"),
    ("xcache", "issuer", "https", "libSciTokens refreshes the issuer's keys"),
    ("jupyter", "gateway", "http", "kernels ask the gateway for clusters"),
    ("jupyter", "gateway", "scheduler-proxy", "and talk to them through its proxy"),
    (TRAEFIK, "jupyter", "http", "people open JupyterLab"),
    (TRAEFIK, "dask-scheduler", "dashboard", "people open the dashboard"),
    ("gateway", CLUSTERS, 8786, "the gateway's proxy reaches its clusters' schedulers"),
    ("gateway", CLUSTERS, 8787, "and their dashboards"),
    (CLUSTERS, "gateway", "api", "the clusters report to the gateway"),
    (CLUSTERS, CLUSTERS, 40123, "their workers and scheduler talk on ports of their own choosing"),
    (CLUSTERS, "xcache", "xroot", "their workers read root:// through the cache"),
    (TRAEFIK, "hub", "https", "students open the hub"),
    ("hub", STUDENTS, 8888, "the hub's proxy reaches students' servers"),
    (STUDENTS, "hub", "internal", "students' servers report to the hub"),
    (STUDENTS, "gateway", "http", "students ask the gateway for their clusters"),
    (STUDENTS, "gateway", "scheduler-proxy", "and reach them through its proxy"),
    (STUDENTS, "xcache", "xroot", "students read root:// through the cache"),
    (STUDENTS, "issuer", "https", "students' servers check tokens against the issuer's keys"),
]
# ... and what it must not allow
FORBIDDEN = [
    ("jupyter", "origin", "xroot", "user code around the cache and its token check"),
    ("dask-worker", "origin", "xroot", "the same from workers"),
    ("gateway", "origin", "xroot", "the same from the gateway"),
    (TRAEFIK, "origin", "xroot", "from outside"),
    (TRAEFIK, "xcache", "xroot", "from outside"),
    (TRAEFIK, "issuer", "https", "from outside"),
    ("dask-worker", "jupyter", "http", "user code on workers reaching the notebook server"),
    ("issuer", "dask-worker", "worker", "a component reaching workers it never names"),
    ("origin", OUTSIDE, 1094, "the origin calling out"),
    (CLUSTERS, "origin", "xroot", "gateway clusters around the cache"),
    (CLUSTERS, "jupyter", "http", "gateway clusters reaching the notebook server"),
    ("jupyter", CLUSTERS, 8786, "kernels reach gateway clusters only through the gateway's proxy"),
    ("jupyter", OUTSIDE, 1094, "kernels reading a remote origin around the cache"),
    (STUDENTS, STUDENTS, 8888, "a student reaching another student's server"),
    (TRAEFIK, STUDENTS, 8888, "from outside, around the hub's login"),
    (STUDENTS, "jupyter", "http", "a student reaching the owner's JupyterLab"),
    (STUDENTS, "dask-scheduler", "scheduler", "a student using the owner's cluster"),
    (STUDENTS, "origin", "xroot", "students around the cache"),
    (STUDENTS, CLUSTERS, 8786, "students reach clusters only through the gateway's proxy"),
    (STUDENTS, OUTSIDE, 443, "students calling out"),
]


def labels_of(objs: list[dict], who) -> tuple[str, dict]:
    if isinstance(who, tuple):
        return who
    if who == CLUSTERS:  # the pods the gateway's controller starts, labelled as its config says
        config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "config")["data"]
        found = re.search(r"^c\.KubeController\.common_labels = (.*)$", config["launcher-controller.py"], re.M)
        ns = next(o for o in objs if o["kind"] == "Namespace")["metadata"]["name"]
        return ns, {**ast.literal_eval(found[1]), "gateway.dask.org/instance": f"afbox-{ns.removeprefix('afbox-')}",
                    "app.kubernetes.io/component": "dask-worker"}
    if who == STUDENTS:  # as the hub's config tells KubeSpawner to label them (test_k3s_class checks the pods)
        config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "config")["data"]
        found = re.search(r"^c\.KubeSpawner\.common_labels = (.*)$", config["jupyterhub_config.py"], re.M)
        ns = next(o for o in objs if o["kind"] == "Namespace")["metadata"]["name"]
        return ns, {**ast.literal_eval(found[1]), "component": "singleuser-server"}
    w = next(o for o in objs if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] == who)
    return w["metadata"]["namespace"], w["spec"]["template"]["metadata"]["labels"]


def port_of(objs: list[dict], server, port) -> int:
    if isinstance(port, int) or server in (CLUSTERS, STUDENTS):
        return port
    pod = pods(objs)[server]
    return next(p["containerPort"] for c in pod["containers"] for p in c.get("ports", []) if p["name"] == port)


def _selects(selector: dict, labels: dict) -> bool:
    ok = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    return ok and all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])
                      if e["operator"] == "In")


def _peer_matches(peer: dict, policy_ns: str, who: tuple[str, dict]) -> bool:
    ns, labels = who
    if "ipBlock" in peer:
        return ns == ""  # outside the cluster
    if ns == "":
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}):
            return False
    elif ns != policy_ns:
        return False
    return _selects(peer.get("podSelector", {}), labels)


def _admits(objs, direction: str, subject: tuple[str, dict], other: tuple[str, dict], port: int) -> bool:
    """Whether the policies selecting `subject` admit `other` in this direction on the port (no
    policy selecting it for the direction: everything is admitted)."""
    ns, labels = subject
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    chosen = [p for p in objs if p["kind"] == "NetworkPolicy" and p["metadata"]["namespace"] == ns
              and direction in p["spec"].get("policyTypes", ["Ingress"]) and _selects(p["spec"]["podSelector"], labels)]
    if not chosen or not ns:
        return True
    for p in chosen:
        for rule in p["spec"].get(key, []):
            ports_ok = not rule.get("ports") or any(r["port"] == port for r in rule["ports"])
            peers = rule.get(peers_key)
            if ports_ok and (peers is None or any(_peer_matches(peer, ns, other) for peer in peers)):
                return True
    return False


def allowed(objs: list[dict], client, server, port) -> bool:
    src, dst = labels_of(objs, client), labels_of(objs, server)
    port = port_of(objs, server, port)
    return _admits(objs, "Egress", src, dst, port) and _admits(objs, "Ingress", dst, src, port)


def flow_table(objs: list[dict]) -> list[str]:
    present = set(pods(objs))
    def there(*who):  # noqa: E306
        return all(isinstance(w, tuple) or w in present or (w == CLUSTERS and "gateway" in present)
                   or (w == STUDENTS and "hub" in present) for w in who)
    wrong = [f"needed but denied: {c} -> {s}:{p} ({why})" for c, s, p, why in NEEDED
             if there(c, s) and not allowed(objs, c, s, p)]
    wrong += [f"allowed but forbidden: {c} -> {s}:{p} ({why})" for c, s, p, why in FORBIDDEN
              if there(c, s) and allowed(objs, c, s, p)]
    return wrong


@pytest.mark.parametrize("case", CASES)
def test_network_policies_allow_the_flows_the_facility_needs_and_no_other(case):
    objs = rendered(case)
    assert not flow_table(objs)
    if case == "remote-origin":  # the XCache, and only it, reaches the remote origin
        assert allowed(objs, "xcache", OUTSIDE, 1094)
        assert not allowed(objs, "dask-worker", OUTSIDE, 1094)


def test_the_flow_table_fails_for_a_namespace_open_to_itself():
    """The policies before components had their own: every pod reached every other."""
    objs = [o for o in rendered("k3s-edge") if o["kind"] != "NetworkPolicy"]
    objs.append({"kind": "NetworkPolicy", "metadata": {"name": "allow-same-namespace", "namespace": "afbox-edge"},
                 "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}], "policyTypes": ["Ingress"]}})
    assert "allowed but forbidden: jupyter -> origin:xroot (user code around the cache and its token check)" \
        in flow_table(objs)


# -- policy as code: checkov -------------------------------------------------------------------
# Checks accepted as failing, with why; keyed by check id, then by the workloads they fail for
# ("*": any). A check failing anywhere else fails the test, and so does an exception no longer needed.
ACCEPTED = {
    "CKV_K8S_40": ("*", "Containers run as uid 1000, the user afbox's images are built with (images/); no "
                        "host path is mounted, so sharing a uid with a host user grants nothing there."),
    "CKV_K8S_11": ("issuer dask-scheduler gateway jupyter xcache origin hub",
                   "No CPU limit where a service declares no size: a limit throttles interactive work "
                   "(kernels, the scheduler, xrootd serving reads) without protecting anyone the requests "
                   "do not already protect. Workers, sized by Dask, have requests = limits."),
    "CKV_K8S_13": ("issuer dask-scheduler gateway jupyter xcache origin hub",
                   "No memory limit where a service declares no size: JupyterLab holds every kernel, so a "
                   "limit would kill all of a user's kernels at once; every pod asks for memory instead "
                   "([k3s] memory_request). Workers have their Dask memory limit as their limit."),
    "CKV_K8S_38": ("gateway gateway-controller hub",
                   "The Dask gateway's API and its controller use the Kubernetes API (dask-gateway's Kubernetes "
                   "backend: clusters as DaskCluster objects, their pods), and a class's hub starts students' "
                   "servers as pods (KubeSpawner), each with a Role of its own in the facility's namespace "
                   "only; no other pod gets a service account token."),
    "CKV_K8S_23": ("nvidia-device-plugin-daemonset",
                   "NVIDIA's device plugin runs as root: it creates its socket in the kubelet's root-owned "
                   "device-plugins dir (as NVIDIA's own manifest does)."),
    "CKV_K8S_8": ("nvidia-device-plugin-daemonset",
                  "The device plugin serves no endpoint to probe; the kubelet watches its registration."),
    "CKV_K8S_9": ("nvidia-device-plugin-daemonset", "As for the liveness probe."),
}


def checkov(objs: list[dict], tmp_path: Path) -> list[tuple[str, str]]:
    """(check id, workload name) of every failed checkov Kubernetes check."""
    from checkov.kubernetes.runner import Runner
    from checkov.runner_filter import RunnerFilter
    d = tmp_path / "objects"
    d.mkdir(parents=True, exist_ok=True)
    for i, obj in enumerate(objs):
        (d / k8s.file_name(i, obj)).write_text(k8s.dump([obj]))
    report = Runner().run(root_folder=str(d), runner_filter=RunnerFilter(framework=["kubernetes"]))
    return sorted({(r.check_id, r.resource.split(".")[-1]) for r in report.failed_checks})


def unaccepted(failed: list[tuple[str, str]]) -> list[str]:
    def ok(check: str, name: str) -> bool:
        where = ACCEPTED.get(check, ("",))[0]
        return where == "*" or name in where.split()
    return [f"{check} {name}" for check, name in failed if not ok(check, name)]


def test_checkov_finds_nothing_but_the_accepted_exceptions(tmp_path):
    failed = []
    for case in CASES:
        objs = rendered(case)
        found = checkov(objs, tmp_path / case)
        assert not unaccepted(found), f"{case}: {unaccepted(found)}"
        failed += found
    assert {check for check, _ in failed} == set(ACCEPTED)  # each exception is still needed


def test_checkov_fails_a_root_container_with_a_writable_root(tmp_path):
    objs = rendered("k3s-edge")
    pod = pods(objs)["jupyter"]
    pod["containers"][0]["securityContext"] = {"runAsUser": 0}
    assert {"CKV_K8S_22 jupyter", "CKV_K8S_20 jupyter"} <= set(unaccepted(checkov(objs, tmp_path)))
