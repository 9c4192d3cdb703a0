"""The k3s backend against a fake `k3s` (tests/fakebin/k3s) that records every call and answers
with recorded output: the exact calls for up, scale, down, join and an air-gap install, and the
errors a user meets (no k3s, node not Ready, a pod in CrashLoopBackOff)."""
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from afbox import record
from afbox.backends.k3s import install as k3smod
from afbox.backends.k3s.kubectl import K3s
from afbox import lifecycle
from afbox.backends.k3s.backend import K3sBackend
from afbox.cli import main
from afbox.errors import AfboxError, MissingBinary, ServiceFailed
from afbox.facility import load
from afbox.state import FacilityState

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "fakebin" / "k3s"
FIXTURES = ROOT / "fixtures" / "k3s"
NS, SEL = "afbox-edge", "afbox.io/facility=edge"
GET_NODES = ["kubectl", "get", "nodes", "-o", "json"]
APPLY = ["kubectl", "apply", "--server-side", "--field-manager=afbox", "--force-conflicts", "-f", "-"]
RUNNING = ["kubectl", "get", "deployments,statefulsets", "-n", NS, "-l", SEL, "-o", "name"]
DELETE = ["kubectl", "delete", "deployments,statefulsets,services,configmaps,secrets,ingresses,networkpolicies",
          "-n", NS, "-l", SEL, "--ignore-not-found", "--wait=true", "--timeout=120s"]


def rollout(kind, name, timeout=300):
    return ["kubectl", "rollout", "status", f"{kind}/{name}", "-n", NS, f"--timeout={timeout}s"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A PATH with the fake k3s (or without: env.remove()), state and data under tmp."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "k3s").symlink_to(FAKE)
    log = tmp_path / "k3s-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("AFBOX_FAKE_K3S_LOG", str(log))
    monkeypatch.setenv("AFBOX_FAKE_K3S_FIXTURES", str(FIXTURES))
    for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))

    class Env:
        path, bin = tmp_path, bindir

        @staticmethod
        def calls(stdin=False):
            if not log.exists():
                return []
            rows = [json.loads(line) for line in log.read_text().splitlines()]
            return rows if stdin else [r["argv"] for r in rows]

        @staticmethod
        def reset():
            log.unlink(missing_ok=True)

        @staticmethod
        def facility(**over):
            return load("k3s-edge", None, {"facility": {"workdir": str(tmp_path / "work")}, "dask": {"gpus": 0},
                                           **over})
    return Env


def workloads(fac):
    """deployment/statefulset names in the order the facility's services come (one per worker group)."""
    from afbox.backends.k3s import manifests as k8s
    _, ctx, specs = lifecycle.placed(fac)
    objs = k8s.render(ctx, specs)
    return [(o["kind"].lower(), o["metadata"]["name"]) for o in objs
            if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"].get("namespace") == NS]


def test_up_scale_down_make_exactly_these_calls(env):
    fac = env.facility()
    events = list(lifecycle.up(fac))
    wl = workloads(fac)
    assert wl[:3] == [("deployment", "issuer"), ("deployment", "dask-scheduler"), ("deployment", "dask-worker")]
    assert {("deployment", "jupyter"), ("statefulset", "xcache"), ("statefulset", "origin")} <= set(wl)
    assert env.calls() == [RUNNING, GET_NODES, APPLY, *(rollout(k, n) for k, n in wl)]
    applied = env.calls(stdin=True)[2]["stdin"]
    assert "kind: Namespace" in applied and "replicas: 2" in applied
    ident = (FacilityState("edge").secrets / "identity" / "ca.pem").read_bytes()
    import base64
    assert base64.b64encode(ident).decode() in applied         # filled from the facility's state ...
    assert "ca-key.pem" not in applied                           # ... but never the CA's key
    assert [e.service for e in events if e.kind == "healthy"][:3] == ["issuer", "dask-scheduler", "dask-worker-1"]
    rec = record.read(FacilityState("edge"))
    assert rec.backend == "k3s"
    assert rec.urls()["jupyter"] == "https://afbox.localhost/lab"
    assert rec.urls()["scheduler"] == "tls://dask-scheduler.afbox-edge.svc:8786"

    # again: already up, nothing applied
    env.reset()
    assert [e.message for e in lifecycle.up(fac)] == ["facility 'edge' is already up"]
    assert env.calls() == [RUNNING]

    env.reset()
    events = list(lifecycle.scale("edge", 3))
    assert env.calls() == [RUNNING, APPLY, rollout("deployment", "dask-worker")]
    assert "replicas: 3" in env.calls(stdin=True)[1]["stdin"]
    assert [(e.kind, e.service) for e in events if e.service] == [("starting", "dask-worker-3"),
                                                                   ("healthy", "dask-worker-3")]

    env.reset()
    list(lifecycle.down("edge"))
    assert env.calls() == [DELETE]
    assert record.read(FacilityState("edge")) is None
    assert not K3sBackend(FacilityState("edge")).running()


def test_status_reads_the_pods(env):
    list(lifecycle.up(env.facility()))
    env.reset()
    rows = {s.name: s for s in K3sBackend(FacilityState("edge")).status()}
    assert env.calls() == [["kubectl", "get", "pods", "-n", NS, "-l", SEL, "-o", "json"]]
    assert rows["dask-worker-2"].state == "running" and rows["dask-worker-2"].health == "healthy"
    assert rows["dask-worker-2"].detail == "pod dask-worker-7b9c5d8f6-wx8rp"
    assert rows["xcache"].uptime > 0
    st = lifecycle.status("edge").to_dict()  # the status contract: same keys as the local backend
    assert st["backend"] == "k3s" and st["urls"]["dashboard"] == "https://dask.afbox.localhost/status"
    assert {r["name"]: r["state"] for r in st["services"]}["dask-worker-1"] == "running"


def test_crashloop_names_the_pod_and_shows_its_last_lines(env, monkeypatch):
    monkeypatch.setenv("AFBOX_FAKE_K3S_CRASH", "jupyter")
    with pytest.raises(ServiceFailed) as err:
        list(lifecycle.up(env.facility()))
    e = err.value
    assert e.service == "jupyter" and "pod jupyter-7c9d8b6f5-x2x7k is in CrashLoopBackOff" in e.reason
    assert any("TraitError: No such directory" in line for line in e.log_tail)
    calls = env.calls()
    assert calls[-3:] == [["kubectl", "get", "pods", "-n", NS, "-l", f"{SEL},app.kubernetes.io/name=jupyter", "-o", "json"],
                          ["kubectl", "logs", "jupyter-7c9d8b6f5-x2x7k", "-n", NS, "-c", "jupyter", "--tail=20", "--previous"],
                          DELETE]  # what this up started is removed again; volumes stay
    assert rollout("deployment", "jupyter") in calls


def test_node_not_ready_in_time_shows_the_node_conditions(env, monkeypatch):
    monkeypatch.setenv("AFBOX_FAKE_K3S_NODES", "notready")
    with pytest.raises(AfboxError) as err:
        K3s().wait_node_ready(timeout=0.3, poll=0.1)
    assert "no k3s node became Ready within 0.3s" in err.value.message
    assert any("node edge01: Ready=False (KubeletNotReady: container runtime network not ready" in d
               for d in err.value.details)


def test_without_k3s_up_says_how_to_install_it(env):
    (env.bin / "k3s").unlink()
    with pytest.raises(MissingBinary) as err:
        list(lifecycle.up(env.facility()))
    assert "afbox k3s install --bundle DIR" in err.value.hint and "needs network" in err.value.hint
    r = CliRunner().invoke(main, ["up", "-p", "k3s-edge", "--workdir", str(env.path / "work"), "--gpus", "0"])
    assert r.exit_code == 1 and "error: `k3s` not found on PATH" in r.output and "Traceback" not in r.output


def test_dry_run_writes_manifests_without_a_cluster_or_a_key(env):
    out = env.path / "manifests"
    r = CliRunner().invoke(main, ["up", "-p", "k3s-edge", "--dry-run", "-o", str(out), "--gpus", "0"])
    assert r.exit_code == 0, r.output
    files = sorted(p.name for p in out.iterdir())
    assert files[0] == "00-namespace-afbox-edge.yaml" and "07-configmap-config.yaml" in files
    assert not any("PRIVATE KEY" in (out / f).read_text() for f in files)
    assert env.calls() == []
    r = CliRunner().invoke(main, ["up", "-p", "k3s-edge", "--dry-run", "--gpus", "0"])
    assert r.output.startswith("---\napiVersion: v1\nkind: Namespace")


@pytest.fixture
def bundle(env):
    d = env.path / "bundle"
    d.mkdir()
    for name in ("install.sh", "k3s-airgap-images-amd64.tar.zst"):
        shutil.copy(FIXTURES / "bundle" / name, d / name)
    shutil.copy(FAKE, d / "k3s")
    return d


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="afbox k3s install/join refuse to run without root")


@needs_root
def test_install_from_bundle_then_uninstall(env, bundle):
    target, data = env.path / "usr-local-bin", env.path / "rancher"
    r = CliRunner().invoke(main, ["k3s", "install", "--bundle", str(bundle), "--bin-dir", str(target),
                                  "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    assert "node(s) Ready: edge01" in r.output
    rows = env.calls(stdin=True)
    assert rows[0] == {"argv": ["install.sh"], "env": {
        "INSTALL_K3S_SKIP_DOWNLOAD": "true", "INSTALL_K3S_BIN_DIR": str(target),
        "INSTALL_K3S_EXEC": f"server --write-kubeconfig-mode=0600 --data-dir {data}"}}
    assert [r["argv"] for r in rows[1:]] == [GET_NODES]
    assert os.access(target / "k3s", os.X_OK)
    assert (data / "agent" / "images" / "k3s-airgap-images-amd64.tar.zst").exists()
    env.reset()
    r = CliRunner().invoke(main, ["k3s", "uninstall", "--yes"])
    assert r.exit_code == 0 and env.calls() == [["k3s-uninstall.sh"]]
    r = CliRunner().invoke(main, ["k3s", "uninstall", "--yes"])
    assert r.exit_code == 1 and "afbox did not install k3s on this machine" in r.output


def test_an_incomplete_bundle_is_named(env, bundle):
    (bundle / "install.sh").unlink()
    with pytest.raises(AfboxError) as err:
        k3smod.bundle_parts(bundle)
    assert "missing: install.sh" in err.value.message


@needs_root
def test_join_passes_the_token_by_path_only(env, bundle):
    token = env.path / "node-token"
    token.write_text("K10abc::server:s3cr3t\n")
    token.chmod(0o600)
    args = ["join", "--server", "https://10.0.0.5:6443", "--token-file", str(token), "--bundle", str(bundle),
            "--bin-dir", str(env.path / "b"), "--data-dir", str(env.path / "d")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    rows = env.calls(stdin=True)
    assert rows == [{"argv": ["install.sh"], "env": {
        "INSTALL_K3S_SKIP_DOWNLOAD": "true", "INSTALL_K3S_BIN_DIR": str(env.path / "b"),
        "INSTALL_K3S_EXEC": f"agent --data-dir {env.path / 'd'}",
        "K3S_URL": "https://10.0.0.5:6443", "K3S_TOKEN_FILE": str(token)}}]
    assert "s3cr3t" not in json.dumps(rows) and "s3cr3t" not in r.output
    r = CliRunner().invoke(main, [*args[:2], "10.0.0.5", *args[3:]])
    assert r.exit_code == 1 and "--server must look like https://HOST:6443" in r.output


def test_k3s_token_prints_the_path_not_the_token(env):
    data = env.path / "rancher"
    r = CliRunner().invoke(main, ["k3s", "token", "--data-dir", str(data)])
    assert r.exit_code == 1 and "is not a k3s server" in r.output
    (data / "server").mkdir(parents=True)
    (data / "server" / "node-token").write_text("K10secret\n")
    r = CliRunner().invoke(main, ["k3s", "token", "--data-dir", str(data)])
    assert r.output.strip() == str(data / "server" / "node-token")


def test_the_fake_refuses_argv_afbox_never_sends(env):
    from afbox.errors import CommandError
    from afbox.run import run
    with pytest.raises(CommandError) as err:
        run(["k3s", "kubectl", "apply", "-f", "-"], input="kind: X\n")
    assert err.value.code == 2
