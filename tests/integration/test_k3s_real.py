"""The facility on a real k3s: `afbox up --backend k3s` as root, then the checks the local
integration tests make (a Dask computation, Jupyter 200 with a facility token and 403 without, a read
through the XCache), reached with `kubectl port-forward`. Needs the k3s binary on PATH (a Ready
node) and the afbox images imported or pullable; skips, saying which, otherwise."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from harness import afbox, free_port, isolated_env, shared_tmpdir, wait_for

pytestmark = pytest.mark.integration
K3S = shutil.which("k3s")
if not K3S:
    pytest.skip("k3s not found on PATH (install it with: afbox k3s install [--bundle DIR])", allow_module_level=True)
if "fakebin" in os.path.realpath(K3S):
    pytest.skip(f"k3s on PATH is the test fake ({K3S}), not k3s", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("the real-k3s tests need root (k3s' kubeconfig is root's)", allow_module_level=True)

NAME, NS = "k3stest", "afbox-k3stest"


def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([K3S, "kubectl", *args], input=input, capture_output=True, text=True, timeout=120,
                          check=check)


@contextlib.contextmanager
def port_forward(target: str, port: int):
    local = free_port()
    p = subprocess.Popen([K3S, "kubectl", "port-forward", "-n", NS, target, f"{local}:{port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: p.poll() is None and _open(local), timeout=30, what=f"port-forward to {target}")
        yield local
    finally:
        p.terminate()
        p.wait(10)


def _open(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def fac():
    if kubectl("get", "nodes", check=False).returncode != 0:
        pytest.skip("k3s is installed but its API server does not answer (is the k3s service running?)")
    base = shared_tmpdir("afbox-k3s-")
    env = isolated_env(base, 19680)
    out = afbox("up", "--profile", "k3s-edge", "--name", NAME, "--workdir", str(base / "work"), env=env, timeout=900)
    rec = json.loads(Path(env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
    yield dict(env=env, out=out, rec=rec, base=base)
    afbox("down", "--name", NAME, env=env, check=False, timeout=300)
    afbox("k3s", "purge", "--name", NAME, "--yes", env=env, check=False, timeout=400)


def test_every_workload_rolled_out(fac):
    deps = json.loads(kubectl("get", "deployments,statefulsets", "-n", NS, "-o", "json").stdout)["items"]
    assert deps, fac["out"].stdout
    for d in deps:
        assert d["status"].get("readyReplicas") == d["spec"]["replicas"], d["metadata"]["name"]


def test_dask_computes_over_tls(fac):
    from distributed import Client

    from afbox import record_security
    with port_forward("svc/dask-scheduler", 8786) as port:
        with Client(f"tls://127.0.0.1:{port}", security=record_security(fac["rec"]), timeout=30) as c:
            assert c.submit(sum, range(101)).result(timeout=60) == 5050
            assert len(c.scheduler_info()["workers"]) == 2


def test_jupyter_answers_200_with_a_facility_token_and_403_without(fac):
    from afbox.auth.identity import load
    from afbox.auth.tokens import mint
    issuer = f"https://issuer.{NS}.svc:8781"  # the issuer the pods check tokens against
    token = mint(load(Path(fac["rec"]["auth"]["identity_dir"])), issuer, "physicist", "jupyter.access", issuer)
    with port_forward("svc/jupyter", 8788) as port:
        url = f"http://127.0.0.1:{port}/api/contents"
        assert httpx.get(url, headers={"Authorization": f"token {token}"}, timeout=20).status_code == 200
        assert httpx.get(url, timeout=20).status_code == 403


def test_xcache_serves_a_file_of_the_origin(fac):
    payload = f"afbox k3s {time.time()}\n"
    kubectl("exec", "-n", NS, "origin-0", "--", "sh", "-c", f"printf %s {payload!r} > /var/lib/afbox/origin/k3s.txt")
    pod = json.loads(kubectl("get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=jupyter", "-o", "json").stdout)
    jpod = pod["items"][0]["metadata"]["name"]
    script = ("import os; from XRootD import client; f = client.File(); "
              "st, _ = f.open(f'root://xcache.{os.environ[\"NS\"]}.svc:8780//k3s.txt'); assert st.ok, st; "
              "st, data = f.read(); assert st.ok, st; print(data.decode(), end='')")
    r = kubectl("exec", "-n", NS, jpod, "--", "env", f"NS={NS}", "/opt/afbox/venv/bin/python", "-c", script)
    assert r.stdout == payload
    # the cached copy is on the xcache volume
    r = kubectl("exec", "-n", NS, "xcache-0", "--", "ls", "/var/cache/afbox/xcache/k3s.txt", check=False)
    assert r.returncode == 0, r.stderr


def test_secrets_in_cluster_never_hold_the_ca_key(fac):
    s = json.loads(kubectl("get", "secret", "identity", "-n", NS, "-o", "json").stdout)
    assert "ca-key.pem" not in s["data"]
    assert b"PRIVATE KEY" in base64.b64decode(s["data"]["dask-key.pem"])
