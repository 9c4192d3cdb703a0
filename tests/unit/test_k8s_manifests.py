"""The facility as Kubernetes objects: golden files, strict schema validation, and the properties a
site admin relies on (private namespace, least-privilege secrets, one worker Deployment, GPUs)."""
import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from afbox import services
from afbox.backends.k3s import manifests as k8s
from afbox.facility import load
from afbox.gpu.model import Device
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


def render(case: str, filled: Filled | None = None) -> list[dict]:
    """The case's objects, from its services placed in pods."""
    c = ctx(case)
    return k8s.render(c, k8s.in_pods(k8s.pod_context(c), services.render(k8s.pod_context(c))), filled)


def ctx(case: str) -> Context:
    over = {"facility": {"name": "edge", "workdir": "/srv/work"}}
    size, gpus = DaskSize(2, 2, 2 * GiB), ()
    if case == "gpu":
        gpus = tuple(A100)
    if case == "masterclass":
        over = {"facility": {"name": "masterclass", "workdir": "/srv/work"}, "dask": {"workers": 8}}
        size = DaskSize(8, 1, GiB)
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


@pytest.mark.parametrize("case", ["laptop", "gpu", "masterclass"])
def test_manifests_match_golden_and_validate_strictly(case):
    objs = render(case)
    text = k8s.dump(objs)
    assert text == k8s.dump(render(case))  # deterministic
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("AFBOX_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; write it with AFBOX_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{case}: manifests differ from {golden} (AFBOX_UPDATE_GOLDEN=1 rewrites it)"
    errors = []
    for obj in yaml.safe_load_all(text):
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
    assert res == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
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
    assert pols["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    traefik = pols["allow-ingress-controller"]
    assert traefik["podSelector"]["matchExpressions"][0]["values"] == ["dask-scheduler", "jupyter"]
    assert [p["port"] for p in traefik["ingress"][0]["ports"]] == [8787, 8788]
    ing = by(objs, "Ingress", "afbox")
    assert [(r["host"], r["http"]["paths"][0]["backend"]["service"]["name"]) for r in ing["spec"]["rules"]] == [
        ("afbox.localhost", "jupyter"), ("dask.afbox.localhost", "dask-scheduler")]
    assert ing["spec"]["tls"][0]["secretName"] == "ingress-tls"
    assert by(objs, "Namespace")[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for w in by(objs, "Deployment") + by(objs, "StatefulSet"):
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
        assert all(c["securityContext"]["capabilities"]["drop"] == ["ALL"] for c in pod["containers"])


def test_dry_run_secrets_are_empty_and_filled_ones_reach_only_who_needs_them():
    objs = render("laptop")
    for s in by(objs, "Secret"):
        assert set(s["data"].values()) == {""}, s["metadata"]["name"]
    files = {"identity": {"ca.pem": b"CA", "dask.pem": b"C", "dask-key.pem": b"K", "server.pem": b"S",
                          "server-key.pem": b"SK", "signing-key.pem": b"SIGN", "ca-hashed/1a2b3c4d.0": b"CA",
                          "public-keys.json": b"[]", "xrootd-sss.keytab": b"SSS"},
             "jupyter-token": {"jupyter_token": b"tok"}, "data-token": {"tokens/data.token": b"jwt"},
             "ingress-tls": {"tls.crt": b"c", "tls.key": b"k"}}
    keycache = "/etc/afbox/xrootd/cache/scitokens/scitokens_cpp.sqllite"
    objs = render("laptop", Filled(files, fills={keycache: b"SQLite format 3\0"}))
    assert by(objs, "Secret", "identity")["data"]["signing-key.pem"] == "U0lHTg=="
    assert by(objs, "ConfigMap", "fills")["binaryData"]["scitokens_cpp.sqllite"]

    def items(name):
        vols = by(objs, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        srcs = next(v["projected"]["sources"] for v in vols if v["name"] == "secrets")
        return {i["path"] for s in srcs for i in s["secret"]["items"]}
    # token checks (Jupyter, gateway, dashboards) read the public keys; only the issuer signs
    assert items("dask-worker") == {"identity/ca.pem", "identity/dask.pem", "identity/dask-key.pem",
                                    "identity/ca-hashed/1a2b3c4d.0", "tokens/data.token", "identity/public-keys.json"}
    # with [auth] Jupyter has no token of its own: no jupyter-token Secret at all
    assert "identity/public-keys.json" in items("jupyter")
    assert not [o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"] == "jupyter-token"]
    # the key the origin asks for reaches the XCache and the origin only, 0600
    keyed = {w["metadata"]["name"]: v["secret"] for w in by(objs, "StatefulSet") + by(objs, "Deployment")
             for v in w["spec"]["template"]["spec"]["volumes"]
             if any(i["key"] == "xrootd-sss.keytab" for i in v.get("secret", {}).get("items", []))}
    assert set(keyed) == {"xcache", "origin"} and {s["defaultMode"] for s in keyed.values()} == {0o600}
    assert "identity/signing-key.pem" not in items("jupyter")
    assert "identity/signing-key.pem" in items("issuer")
    assert "jupyter_token" not in items("dask-scheduler") and "identity/signing-key.pem" not in items("dask-scheduler")


def test_gpu_workers_request_the_device_through_the_plugin():
    objs = render("gpu")
    assert by(objs, "RuntimeClass", "nvidia")["handler"] == "nvidia"
    plugin = by(objs, "DaemonSet", "nvidia-device-plugin-daemonset")
    assert plugin["metadata"]["namespace"] == "kube-system"
    gpu = by(objs, "Deployment", "dask-gpu")
    assert gpu["spec"]["replicas"] == 2 and gpu["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
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
