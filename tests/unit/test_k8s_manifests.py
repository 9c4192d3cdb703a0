"""The facility as Kubernetes objects: golden files, strict schema validation, and the properties a
site admin relies on (private namespace, least-privilege secrets, one worker Deployment, GPUs)."""
import ast
import hashlib
import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from afbox import services
from afbox.backends.k3s import manifests as k8s
from afbox.facility import load
from afbox.gpu.model import Device
from afbox.backends.k3s.manifests import secrets
from afbox.backends.k3s.manifests.images import normalized
from afbox.backends.k3s.manifests.render import Filled
from afbox.services.context import Context
from afbox.services.sizing import DaskSize
from afbox.spec import HealthCheck, ServiceSpec
from afbox.state import FacilityState

GiB = 1024 ** 3
GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "k3s" / "golden"
VERSIONS = ("1.31", kubernetes_validate.latest_version())
A100 = [Device(f"gpu-{i}", f"GPU-4b1f6c2e-9d3a-4e7f-8a5b-0c1d2e3f4a5{i}", "NVIDIA A100-SXM4-40GB", 40 * GiB, "nvidia", i)
        for i in range(2)]


def placed(c: Context):
    return k8s.in_pods(k8s.pod_context(c), services.render(k8s.pod_context(c)))


def stand_in(c: Context, specs, content: bytes = b"", digests: bool = True) -> Filled:
    """What `afbox up` reads and makes, with these bytes as every file: the names are the real ones
    (the CA's hash aside), each image pinned as an air-gap set pins it."""
    ns = k8s.namespace_name(c.facility)
    ident = ("ca.pem", "dask.pem", "dask-key.pem", "public-keys.json", "signing-key.pem", "ca-hashed/1a2b3c4d.0")
    found = {"identity": dict.fromkeys(ident, content), "data-token": {"tokens/data.token": content},
             "jupyter-token": {"jupyter_token": content}, "ingress-tls": {"tls.crt": content, "tls.key": content}}
    for w in secrets.server_workloads(specs):
        found[secrets.server_secret(w)] = {"tls.crt": content, "tls.key": content}
    k = c.facility.k3s
    images = (k.analysis_image, k.xcache_image, k.device_plugin_image, k.gateway_proxy_image)
    pins = {normalized(i): "sha256:" + hashlib.sha256(i.encode()).hexdigest() for i in images} if digests else {}
    return Filled(found, digests=pins)


def render(case: str, filled: Filled | None = None) -> list[dict]:
    """The case's objects, from its services placed in pods."""
    c = ctx(case)
    specs = placed(c)
    return k8s.render(c, specs, filled or stand_in(c, specs))


def ctx(case: str) -> Context:
    over = {"facility": {"name": "edge", "workdir": "/srv/work"}}
    size, gpus = DaskSize(2, 2, 2 * GiB), ()
    if case == "gpu":
        gpus = tuple(A100)
    if case == "masterclass":
        over = {"facility": {"name": "masterclass", "workdir": "/srv/work"}, "dask": {"workers": 8}}
        size = DaskSize(8, 1, GiB)
    if case == "class":  # a class on k3s: the hub starts students' servers as pods
        over = {"facility": {"name": "class", "workdir": "/srv/work"}, "masterclass": {"enabled": True, "students": 3}}
    fac = load("k3s-edge", None, over)
    return Context(facility=fac, state=FacilityState(fac.name), dask=size, bin_dir="/venv/bin", xrootd=None,
                   xrootd_user=None, cache_dir=Path("/c/xcache"), xrootd_dir=Path("/c/xrootd"),
                   cache_size=20 * GiB, gpus=gpus)


@pytest.fixture(autouse=True)
def _owner(monkeypatch):
    # the issuer names the facility's owner in the data token; the golden files do not depend on who runs them
    monkeypatch.setattr("afbox.services.issuer.owner", lambda: "physicist")
    # nor on the data dir of whoever runs them (named environments' kernels are looked up there)
    monkeypatch.setenv("XDG_DATA_HOME", "/var/lib")


def by(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert found, f"no {kind} {name or ''}"
    return found if name is None else found[0]


def container(obj):
    return obj["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("case", ["laptop", "gpu", "masterclass", "class"])
def test_manifests_match_golden_and_validate_strictly(case):
    objs = k8s.blank(render(case))
    text = k8s.dump(objs)
    assert text == k8s.dump(k8s.blank(render(case)))  # deterministic
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("AFBOX_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; write it with AFBOX_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{case}: manifests differ from {golden} (AFBOX_UPDATE_GOLDEN=1 rewrites it)"
    errors = []
    for obj in yaml.safe_load_all(text):
        if obj["apiVersion"].startswith("traefik.io/"):  # Traefik's own kinds: no schema here (see the gateway test)
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                errors.append(f"{version} {obj['kind']}/{obj['metadata']['name']} at {list(e.path)}: {e.message}")
    assert not errors, "\n".join(errors)


def test_validation_catches_a_bad_manifest():
    """The check above can fail: a misspelt field is refused in strict mode."""
    dep = by(render("laptop"), "Deployment", "jupyter")
    container(dep)["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, VERSIONS[0], strict=True)


def test_workers_are_one_deployment_named_after_their_pods():
    objs = render("masterclass")
    workers = by(objs, "Deployment", "dask-worker")
    assert workers["spec"]["replicas"] == 8
    assert not [o for o in objs if o["metadata"]["name"].startswith("dask-worker-")]
    argv = container(workers)["command"]
    assert argv[argv.index("--name") + 1] == "$(POD_NAME)" and argv[argv.index("--host") + 1] == "$(POD_IP)"
    assert argv[2] == "tls://dask-scheduler.afbox-masterclass.svc:8786"
    res = container(workers)["resources"]
    # requests = limits: the workers are sized by Dask, never throttled below it nor evicted first
    assert res == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    hook = container(workers)["lifecycle"]["preStop"]["exec"]["command"]
    assert hook == ["/opt/afbox/venv/bin/python", "-m", "afbox.backends.k3s.retire",
                    "tls://dask-scheduler.afbox-masterclass.svc:8786", "120"]
    assert workers["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 120
    assert {e["name"] for e in container(workers)["env"]} >= {"POD_NAME", "POD_IP"}


def test_no_host_address_or_host_path_reaches_a_pod():
    text = k8s.dump([o for o in render("laptop") if o["kind"] in ("Deployment", "StatefulSet", "ConfigMap")])
    assert "127.0.0.1" not in text and "localhost:" not in text
    assert "/venv/bin" not in text.replace("/opt/afbox/venv/bin", "") and "/c/xcache" not in text
    cfg = by(render("laptop"), "ConfigMap", "config")["data"]
    assert "pss.origin origin.afbox-edge.svc:8782" in cfg["xcache.cfg"]
    assert "xrd.allow" not in cfg["xcache.cfg"]  # NetworkPolicies decide who connects


def test_namespace_is_private_except_the_ingress():
    objs = render("laptop")
    pols = {p["metadata"]["name"]: p["spec"] for p in by(objs, "NetworkPolicy")}
    assert pols["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    workloads = by(objs, "Deployment") + by(objs, "StatefulSet")
    # one per component, and one for the pods the gateway starts
    assert set(pols) == {"default-deny", "gateway-clusters"} | {w["metadata"]["name"] for w in workloads}
    traefik = {w: [r["ports"] for r in p["ingress"] if "namespaceSelector" in r["from"][0]]
               for w, p in pols.items() if p.get("ingress")}
    assert {w: [[x["port"] for x in ports] for ports in rules] for w, rules in traefik.items() if rules} == {
        "dask-scheduler": [[8787]], "jupyter": [[8788]]}
    ing = by(objs, "Ingress", "afbox")
    assert [(r["host"], r["http"]["paths"][0]["backend"]["service"]["name"]) for r in ing["spec"]["rules"]] == [
        ("afbox.localhost", "jupyter"), ("dask.afbox.localhost", "dask-scheduler")]
    assert ing["spec"]["tls"][0]["secretName"] == "ingress-tls"
    assert by(objs, "Namespace")[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        api = w["metadata"]["name"] in ("gateway", "gateway-controller")  # dask-gateway's Kubernetes backend
        assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is api
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["resources"]["requests"]["memory"], c["name"]  # none is evicted first for asking nothing
        assert all(c["livenessProbe"] and c["readinessProbe"] for c in pod["containers"])


def test_secrets_reach_only_the_pods_that_name_them():
    c = ctx("laptop")
    specs = placed(c)
    filled = stand_in(c, specs, b"x")
    objs = k8s.render(c, specs, filled)
    assert by(objs, "Secret", "identity")["data"]["signing-key.pem"] == "eA=="
    for s in by(k8s.blank(objs), "Secret"):
        assert set(s["data"].values()) == {""}, s["metadata"]["name"]

    def items(name):
        pod = next(w for w in by(objs, "Deployment") + by(objs, "StatefulSet") if w["metadata"]["name"] == name)
        vols = pod["spec"]["template"]["spec"]["volumes"]
        srcs = next((v["projected"]["sources"] for v in vols if v["name"] == "source"), [])  # none: no files
        return {f"{s['secret']['name']}/{i['key']}" for s in srcs if "secret" in s for i in s["secret"]["items"]}
    # token checks (Jupyter, gateway, dashboards) read the public keys; only the issuer signs
    assert items("dask-worker") == {"identity/ca.pem", "identity/dask.pem", "identity/dask-key.pem",
                                    "identity/ca-hashed_1a2b3c4d.0", "data-token/tokens_data.token",
                                    "identity/public-keys.json"}
    # with [auth] Jupyter opens to facility tokens only: it has no token of its own
    assert "identity/public-keys.json" in items("jupyter")
    assert not [i for i in items("jupyter") if i.startswith("jupyter-token/")]
    assert "identity/signing-key.pem" not in items("jupyter")
    # the issuer names its identity dir: the identity's own files and its own certificate, not the Dask key
    assert items("issuer") == {"identity/ca.pem", "identity/public-keys.json", "identity/signing-key.pem",
                               "issuer-tls/tls.crt", "issuer-tls/tls.key", "data-token/tokens_data.token"}
    assert items("xcache") == {"identity/ca.pem", "xcache-tls/tls.crt", "xcache-tls/tls.key", "identity/xrootd-sss.keytab"}
    # the key the origin asks for reaches the XCache and the origin only
    pods = [w["metadata"]["name"] for w in by(objs, "Deployment") + by(objs, "StatefulSet")]
    assert {p for p in pods if "identity/xrootd-sss.keytab" in items(p)} == {"xcache", "origin"}
    assert "jupyter-token/jupyter_token" not in items("dask-scheduler")
    assert "identity/signing-key.pem" not in items("dask-scheduler")


def test_gpu_workers_request_the_device_through_the_plugin():
    objs = render("gpu")
    assert by(objs, "RuntimeClass", "nvidia")["handler"] == "nvidia"
    plugin = by(objs, "DaemonSet", "nvidia-device-plugin-daemonset")
    assert plugin["metadata"]["namespace"] == "kube-system"
    gpu = by(objs, "Deployment", "dask-gpu")
    assert gpu["spec"]["replicas"] == 2 and gpu["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    # GPU nodes are usually tainted so that only pods asking for a GPU land there
    assert gpu["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "tolerations" not in by(objs, "Deployment", "dask-worker")["spec"]["template"]["spec"]
    # the plugin comes from the air-gap set like every other image
    assert "@sha256:" in plugin["spec"]["template"]["spec"]["containers"][0]["image"]
    c = container(gpu)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "CUDA_VISIBLE_DEVICES" not in {e["name"] for e in c["env"]}  # the plugin picks the device
    assert c["command"][c["command"].index("--resources") + 1] == "GPU=1"
    assert not [o for o in render("laptop") if o["kind"] in ("RuntimeClass", "DaemonSet")]


def test_a_service_afbox_does_not_know_yet_gets_a_deployment_and_service(monkeypatch):
    real = services.render

    def with_hub(c):
        hub = ServiceSpec("hub", (f"{c.bin_dir}/jupyterhub", f"--ip={c.bind}", "--port", "8790"),
                          env=(("DASK_GATEWAY", f"http://{c.bind}:{c.base + 3}"),), ports=(("http", 8790),),
                          health=HealthCheck("http", port=8790, path="/hub/health"))
        return [*real(c), hub]
    monkeypatch.setattr(services, "render", with_hub)
    objs = render("laptop")
    hub = container(by(objs, "Deployment", "hub"))
    assert hub["command"] == ["/opt/afbox/venv/bin/jupyterhub", "--ip=0.0.0.0", "--port", "8790"]
    assert hub["readinessProbe"]["httpGet"] == {"path": "/hub/health", "port": 8790, "scheme": "HTTP"}
    assert by(objs, "Service", "hub")["spec"]["ports"][0]["port"] == 8790
    # an address of another service becomes its Service name (when that service exists)
    gateway = [o for o in objs if o["kind"] == "Service" and 8783 in [p["port"] for p in o["spec"]["ports"]]]
    want = f"http://{gateway[0]['metadata']['name']}.afbox-edge.svc:8783" if gateway else "http://0.0.0.0:8783"
    assert hub["env"] == [{"name": "DASK_GATEWAY", "value": want}]


def test_file_names_sort_in_apply_order():
    objs = render("laptop")
    names = [k8s.file_name(i, o) for i, o in enumerate(objs)]
    assert names == sorted(names) and names[0] == "00-namespace-afbox-edge.yaml"


def test_the_gateway_starts_each_cluster_as_pods_with_limits():
    """dask-gateway's Kubernetes backend, as its chart runs it: the API, a controller, Traefik as
    the proxy (here beside the API), the clusters' pods with requests and limits."""
    objs = render("laptop")
    config = by(objs, "ConfigMap", "config")["data"]
    gw = config["gateway_config.py"]
    assert "c.DaskGateway.backend_class = 'dask_gateway_server.backends.kubernetes.KubeBackend'" in gw
    assert "c.KubeClusterConfig.namespace = 'afbox-edge'" in gw
    assert "c.ClusterConfig.worker_memory = 2147483648" in gw  # the limit too: dask-gateway's default
    pod_config = re.search(r"^c\.KubeClusterConfig\.worker_extra_pod_config = (.*)$", gw, re.M)[1]
    pod = ast.literal_eval(pod_config)
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]
    script = pod["initContainers"][0]["command"][2]
    assert "install -D -m 0600 /afbox/source/data-token/tokens_data.token /var/lib/afbox/state/secrets/tokens/data.token" \
        in script
    env = ast.literal_eval(re.search(r"^c\.KubeClusterConfig\.environment = (.*)$", gw, re.M)[1])
    assert env["AFBOX_XCACHE"] == "root://xcache.afbox-edge.svc:8780"
    assert env["AFBOX_AUTH_ISSUER"] == "https://issuer.afbox-edge.svc:8781"
    gateway = by(objs, "Deployment", "gateway")["spec"]["template"]["spec"]
    assert [c["name"] for c in gateway["containers"]] == ["gateway", "proxy"]
    assert [p["containerPort"] for p in gateway["containers"][1]["ports"]] == [8783, 8784]
    assert by(objs, "Service", "gateway")["spec"]["ports"][0]["targetPort"] == "http"
    controller = container(by(objs, "Deployment", "gateway-controller"))
    assert controller["command"][1:] == ["kube-controller", "--config", "/etc/afbox/gateway-controller/config.py"]
    assert "c.KubeController.api_url = 'http://gateway.afbox-edge.svc:8785/api'" in config["launcher-controller.py"]
    assert by(objs, "CustomResourceDefinition")[0]["metadata"]["name"] == "daskclusters.gateway.dask.org"
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]  # namespaced only
    route = by(objs, "IngressRoute", "gateway-api")
    assert route["spec"]["routes"][0]["services"] == [{"name": "gateway", "port": 8785}]
    assert route["metadata"]["labels"]["gateway.dask.org/instance"] == "afbox-edge"


def test_the_dask_panel_finds_the_dashboard_inside_the_cluster():
    """In the Jupyter pod the panel's URL is relative to JupyterLab (no ingress host name to resolve there)
    and JupyterLab proxies it to the scheduler's Service, which the NetworkPolicies let it reach."""
    import json
    objs = render("laptop")
    cm = next(o for o in by(objs, "ConfigMap") if "plugin.jupyterlab-settings" in o.get("data", {}))
    url = json.loads(cm["data"]["plugin.jupyterlab-settings"])["defaultURL"]
    assert not re.match(r"\w+://", url) and not url.startswith("/"), url
    jupyter = next(o for o in objs if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] == "jupyter")
    env = {e["name"]: e.get("value") for e in container(jupyter)["env"]}
    ns = by(objs, "Namespace")[0]["metadata"]["name"]
    assert env["AFBOX_DASHBOARD"] == f"http://dask-scheduler.{ns}.svc:8787"
    svc = by(objs, "Service", "dask-scheduler")
    assert 8787 in [p["port"] for p in svc["spec"]["ports"]]
