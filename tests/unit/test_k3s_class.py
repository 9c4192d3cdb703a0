"""A class on k3s: the hub's rendered config, run by the real afbox.hub.setup, makes real KubeSpawner
build each student's pod; that pod is validated strictly, meets the restricted standard, mounts only
the student's own home, token and the class's public files, and is the pod the rendered
NetworkPolicies select as a student's. (A live cluster: tests/integration/test_k3s_real.py.)"""
from __future__ import annotations

import asyncio
import base64
import os
import stat
import sys
import time
from pathlib import Path

import jwt
import kubernetes_validate
import pytest
from traitlets.config import Config

from afbox.auth.identity import ensure_identity
from afbox.backends.k3s import manifests as k8s
from afbox.services import hub as hub_service
from test_k8s_audit import _selects
from test_k8s_manifests import VERSIONS, by, ctx, placed, stand_in

kubespawner = pytest.importorskip("kubespawner", reason="jupyterhub-kubespawner (./install.sh --dev) is not installed")
from kubernetes_asyncio.client import ApiClient  # noqa: E402
from kubernetes_asyncio.client.rest import ApiException  # noqa: E402

from afbox.hub.kube import ClassKubeSpawner  # noqa: E402
from afbox.hub.singleuser import copy_token, keep_token_copy  # noqa: E402

IDENTITY_IN_POD = "/var/lib/afbox/state/secrets/identity"


@pytest.fixture(autouse=True)
def _owner(monkeypatch):
    monkeypatch.setattr("afbox.services.issuer.owner", lambda: "physicist")
    monkeypatch.setenv("XDG_DATA_HOME", "/var/lib")


@pytest.fixture
def objs():
    c = ctx("class")
    specs = placed(c)
    return k8s.render(c, specs, stand_in(c, specs))


@pytest.fixture
def hub_config(objs, tmp_path, monkeypatch):
    """The hub's config as the pod reads it, run by the real afbox.hub.setup, its pod paths moved
    under tmp_path (the class claim, the identity) and its own programs (the proxy) found in this venv."""
    kube = tmp_path / "kubeconfig"  # KubeSpawner reads a config when it is made; nothing is ever sent
    kube.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: {server: "
                    "'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
                    "users: [{name: u, user: {token: unused}}]\n")
    monkeypatch.setattr("kubernetes_asyncio.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kube))
    ensure_identity(tmp_path / "identity")
    text = by(objs, "ConfigMap", "config")["data"]["jupyterhub_config.py"]
    text = (text.replace(str(hub_service.POD_CLASS_ROOT), str(tmp_path / "class"))
            .replace(IDENTITY_IN_POD, str(tmp_path / "identity"))
            .replace('"bin_dir": "/opt/afbox/venv/bin"', f'"bin_dir": "{Path(sys.executable).parent}"'))
    c = Config()
    exec(compile(text, "jupyterhub_config.py", "exec"), {"c": c})
    return c


def with_spawner(config: Config, use, name: str = "student01"):
    """use(spawner) run in an event loop (KubeSpawner's API client wants one when it is made)."""
    async def run():
        sp = ClassKubeSpawner(config=config, _mock=True)
        sp.user.name = name
        sp = ClassKubeSpawner(config=config, _mock=True, user=sp.user, hub=sp.hub)
        return await use(sp)
    return asyncio.run(run())


def pod_of(config: Config, name: str = "student01") -> dict:
    async def pod(sp):
        return ApiClient().sanitize_for_serialization(await sp.get_pod_manifest())
    return with_spawner(config, pod, name)


def test_the_hub_on_k3s_starts_students_as_pods_not_refused():
    c = ctx("class")
    h = next(s for s in placed(c) if s.name == "hub")
    assert h.unavailable is None and h.launches.kind == "jupyterhub"


def test_a_students_pod_is_valid_restricted_and_sees_only_their_own(hub_config, objs, tmp_path):
    assert hub_config.JupyterHub.spawner_class == "afbox.hub.kube.ClassKubeSpawner"
    pod = pod_of(hub_config)
    for version in VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    spec, box = pod["spec"], pod["spec"]["containers"][0]
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert box["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                      "readOnlyRootFilesystem": True, "runAsUser": 1000, "runAsGroup": 1000}
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert box["image"] == by(objs, "Deployment", "hub")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert box["args"][:3] == ["/opt/afbox/venv/bin/python", "-m", "afbox.hub.singleuser"]
    assert box["resources"]["limits"] == {"cpu": 1.0, "memory": 2 * 1024 ** 3}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"class": "class"}
    on_claim = {m["subPath"]: m.get("readOnly", False) for m in box["volumeMounts"] if m["name"] == "class"}
    assert on_claim == {"homes/student01": False, "class-public": True}
    secrets = [v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v]
    assert secrets == ["afbox-token-student01"]
    env = {e["name"]: e.get("value") for e in box["env"]}
    assert env["BEARER_TOKEN_FILE"] == "/tmp/afbox/data.token" and env["AFBOX_TOKEN_SOURCE"].startswith("/var/run/afbox/token/")
    assert env["AFBOX_STUDENT"] == "student01" and env["AFBOX_GATEWAY"] == "http://gateway.afbox-class.svc:8783"
    # students' servers reach the hub's API at its Service (the hub builds JUPYTERHUB_API_URL from it)
    assert hub_config.JupyterHub.hub_connect_url == "http://hub.afbox-class.svc:8792"
    assert hub_config.JupyterHub.hub_bind_url == "http://0.0.0.0:8792"
    assert env["AFBOX_AUTH_KEYS"] == str(tmp_path / "class" / "class-public" / "public-keys.json")
    assert not any("signing" in str(v) or "secrets/identity" in str(v) for v in env.values())


def test_the_network_policies_select_the_pod_kubespawner_makes(hub_config, objs):
    labels = pod_of(hub_config)["metadata"]["labels"]
    chosen = [p["metadata"]["name"] for p in objs if p["kind"] == "NetworkPolicy" and _selects(p["spec"]["podSelector"], labels)]
    assert sorted(chosen) == ["default-deny", "students"]
    other = pod_of(hub_config, "student02")["metadata"]["labels"]
    assert other["hub.jupyter.org/username"] == "student02" and _selects(by(objs, "NetworkPolicy", "students")["spec"]["podSelector"], other)


def test_the_hub_may_write_students_tokens_but_read_no_secret(objs):
    rules = by(objs, "Role", "hub")["rules"]
    secrets = next(r for r in rules if "secrets" in r["resources"])
    assert set(secrets["verbs"]) == {"create", "update", "delete"}
    pods = next(r for r in rules if "pods" in r["resources"])
    assert "create" in pods["verbs"] and all(r["resources"] != ["*"] for r in rules)
    assert by(objs, "Deployment", "hub")["spec"]["template"]["spec"]["serviceAccountName"] == "hub"
    assert by(objs, "RoleBinding", "hub")["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": "afbox-class"}]


class Api:
    """The two calls the spawner makes for a token, as the API server answers them."""
    def __init__(self):
        self.secrets: dict[str, dict] = {}

    async def replace_namespaced_secret(self, name, namespace, body):
        if name not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        self.secrets[name] = body

    async def create_namespaced_secret(self, namespace, body):
        self.secrets[body["metadata"]["name"]] = body


def test_a_students_token_secret_names_them_and_is_renewed(hub_config):
    async def twice(sp):
        sp.api = Api()
        await sp.write_token()
        first = sp.api.secrets["afbox-token-student01"]
        sp._minted = time.time() - sp.token_lifetime  # past half its life: poll would write it again
        await sp.write_token()
        return sp, first, sp.api.secrets["afbox-token-student01"]
    sp, body, renewed = with_spawner(hub_config, twice)
    for version in VERSIONS:
        kubernetes_validate.validate(body, version, strict=True)
    token = base64.b64decode(body["data"]["data.token"]).decode().strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "student01" and claims["iss"] == "https://issuer.afbox-class.svc:8781"
    assert claims["exp"] - claims["iat"] == pytest.approx(sp.token_lifetime, abs=2)
    assert body["metadata"]["labels"]["hub.jupyter.org/username"] == "student01"
    assert base64.b64decode(renewed["data"]["data.token"]).decode().strip() != token


def test_a_students_home_gets_the_class_content_once(hub_config, tmp_path):
    async def ready(sp):
        return sp
    sp = with_spawner(hub_config, ready)
    sp.prepare_home()
    home = tmp_path / "class" / "homes" / "student01"
    notebooks = sorted(p.name for p in home.glob("*.ipynb"))
    assert notebooks, "the demo notebook is copied into a new home"
    (home / notebooks[0]).write_text("the student's edit")
    sp.prepare_home()
    assert (home / notebooks[0]).read_text() == "the student's edit"


def test_the_pod_keeps_a_0600_copy_of_its_token(tmp_path):
    source, dest = tmp_path / "secret" / "data.token", tmp_path / "tmp" / "afbox" / "data.token"
    source.parent.mkdir()
    source.write_text("first\n")
    os.chmod(source, 0o440)
    stop = keep_token_copy(source, dest, every=0.05)
    try:
        assert dest.read_text() == "first\n" and stat.S_IMODE(dest.stat().st_mode) == 0o600
        source.chmod(0o640)
        source.write_text("renewed\n")
        deadline = time.monotonic() + 5
        while dest.read_text() != "renewed\n" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dest.read_text() == "renewed\n" and stat.S_IMODE(dest.stat().st_mode) == 0o600
    finally:
        stop.set()
    assert copy_token(source, dest) is False
