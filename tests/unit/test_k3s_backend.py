"""The k3s backend against a fake `k3s` (tests/fakebin/k3s) that records every call and answers
with recorded output: the exact calls for up, scale, down, join and an air-gap install, and the
errors a user meets (no k3s, node not Ready, a pod in CrashLoopBackOff)."""
import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
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
DELETE = [["kubectl", "delete", kinds, "-n", NS, "-l", SEL, "--ignore-not-found", "--wait=true", "--timeout=120s"]
          for kinds in ("daskclusters.gateway.dask.org",
                        "deployments,statefulsets,services,configmaps,secrets,ingresses,networkpolicies,"
                        "serviceaccounts,roles,rolebindings,ingressroutes.traefik.io,pods")]


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
    be, ctx, specs = lifecycle.placed(fac)
    objs = be.objects(ctx, specs)
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
    assert env.calls() == DELETE
    assert record.read(FacilityState("edge")) is None
    assert not K3sBackend(FacilityState("edge")).running()


def test_a_class_on_k3s_runs_its_hub_and_prints_the_sheet_made_in_its_pod(env, tmp_path):
    fac = env.facility(masterclass={"enabled": True, "students": 3})
    list(lifecycle.up(fac))
    applied = env.calls(stdin=True)[2]["stdin"]
    assert "afbox.hub.kube.ClassKubeSpawner" in applied and "kind: Role" in applied
    assert rollout("deployment", "hub") in env.calls()
    rec = record.read(FacilityState("edge"))
    assert "hub" in rec.services and rec.backend == "k3s"

    env.reset()
    sheet = tmp_path / "sheet.html"
    r = CliRunner().invoke(main, ["class", "sheet", "-o", str(sheet), "--tutors"])
    assert r.exit_code == 0, r.output
    assert sheet.read_text() == (FIXTURES / "exec-hub-sheet.html").read_text()
    assert oct(sheet.stat().st_mode & 0o777) == "0o600"
    assert env.calls() == [["kubectl", "exec", "-n", NS, "deployment/hub", "-c", "hub", "--", "/opt/afbox/venv/bin/python",
                            "-m", "afbox.hub.sheet", "/var/lib/afbox/class/state/hub/jupyterhub_config.py",
                            "https://afbox.localhost", "--tutors"]]
    r = CliRunner().invoke(main, ["class", "status"])
    assert r.exit_code != 0 and "runs its class on k3s" in r.output and "/hub/admin" in r.output


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
    assert calls[-4:] == [["kubectl", "get", "pods", "-n", NS, "-l", f"{SEL},app.kubernetes.io/name=jupyter", "-o", "json"],
                          ["kubectl", "logs", "jupyter-7c9d8b6f5-x2x7k", "-n", NS, "-c", "jupyter", "--tail=20", "--previous"],
                          *DELETE]  # what this up started is removed again; volumes stay
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
    assert files[0] == "00-namespace-afbox-edge.yaml" and any(f.endswith("-configmap-config.yaml") for f in files)
    assert not any("PRIVATE KEY" in (out / f).read_text() for f in files)
    assert env.calls() == []
    r = CliRunner().invoke(main, ["up", "-p", "k3s-edge", "--dry-run", "--gpus", "0"])
    assert r.output.startswith("---\napiVersion: v1\nkind: Namespace")


def test_dry_run_is_what_up_applies_with_the_secret_values_blanked(env):
    """Nothing but the values differs: the hashed CA file X509_CERT_DIR points at, each pod's own
    certificate, the token Secrets are there in both."""
    from afbox.backends.k3s import manifests as k8s
    work = str(env.path / "work")
    r = CliRunner().invoke(main, ["up", "-p", "k3s-edge", "--dry-run", "--gpus", "0", "--workdir", work])
    assert r.exit_code == 0, r.output
    list(lifecycle.up(env.facility()))
    applied = env.calls(stdin=True)[2]["stdin"]
    assert "PRIVATE KEY" in base64.b64decode(_secret(applied, "xcache-tls")["data"]["tls.key"]).decode()
    assert r.output == k8s.dump(k8s.blank(list(yaml.safe_load_all(applied))))
    dry = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(r.output)}
    assert any(k.startswith("ca-hashed_") for k in dry[("Secret", "identity")]["data"])
    assert set(dry[("Secret", "identity")]["data"].values()) == {""}


def _secret(text, name):
    return next(o for o in yaml.safe_load_all(text) if o["kind"] == "Secret" and o["metadata"]["name"] == name)


def test_an_air_gap_set_is_placed_for_every_start_and_pins_each_image(env, monkeypatch, tmp_path):
    """Each image the pods run is in the set and named by its digest there; the set goes where k3s
    imports it whenever a node starts, and is imported now."""
    images = tmp_path / "images"
    images.mkdir()
    fac = env.facility(k3s={"images_dir": str(images)})
    digests = {}
    digests[fac.k3s.analysis_image] = oci_archive(images / "image0.tar", fac.k3s.analysis_image)
    data = tmp_path / "rancher"
    monkeypatch.setattr("afbox.backends.k3s.backend.data_dir", lambda: data)
    with pytest.raises(AfboxError) as err:  # the XCache's image (and the gateway's proxy) not in the set yet
        list(lifecycle.up(fac))
    assert "ghcr.io/afbox/xcache:0.1.0" in err.value.message and "oci-archive" in err.value.hint
    env.reset()
    digests[fac.k3s.xcache_image] = oci_archive(images / "image1.tar", fac.k3s.xcache_image)
    with pytest.raises(AfboxError) as err:  # nor the Dask gateway's proxy
        list(lifecycle.up(fac))
    assert "lacks docker.io/rancher/mirrored-library-traefik:2.11.18" in err.value.message
    env.reset()
    digests[fac.k3s.gateway_proxy_image] = oci_archive(images / "proxy.tar", fac.k3s.gateway_proxy_image)
    list(lifecycle.up(fac))
    assert sorted(p.name for p in (data / "agent" / "images").iterdir()) == ["image0.tar", "image1.tar", "proxy.tar"]
    calls = env.calls()
    assert [c for c in calls if c[0] == "ctr"] == [["ctr", "images", "import", str(images / n)]
                                                   for n in ("image0.tar", "image1.tar", "proxy.tar")]
    applied = env.calls(stdin=True)[[c[0] for c in calls].index("kubectl", 2)]["stdin"]
    for ref, digest in digests.items():
        assert f"image: {ref}@{digest}" in applied
    assert "image: ghcr.io/afbox/analysis:0.1.0\n" not in applied


def oci_archive(path: Path, ref: str) -> str:
    """A tarball as `podman save --format oci-archive` writes it: index.json naming the image."""
    digest = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": digest, "size": 1,
                                                "annotations": {"org.opencontainers.image.ref.name": ref}}]}
    data = json.dumps(index).encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return digest


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
    facility_images = env.path / "air-gap"
    facility_images.mkdir()
    oci_archive(facility_images / "analysis.tar", "ghcr.io/afbox/analysis:0.1.0")
    oci_archive(bundle / "k8s-device-plugin.tar", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0")
    args = ["join", "--server", "https://10.0.0.5:6443", "--token-file", str(token), "--bundle", str(bundle),
            "--bin-dir", str(env.path / "b"), "--data-dir", str(env.path / "d"), "--images", str(facility_images)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    # the new node imports k3s' images, the bundle's others and the facility's when its agent starts
    assert sorted(p.name for p in (env.path / "d" / "agent" / "images").iterdir()) == [
        "analysis.tar", "k3s-airgap-images-amd64.tar.zst", "k8s-device-plugin.tar"]
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


def test_the_retire_hook_hands_a_workers_data_to_the_others_before_it_stops():
    """The preStop hook of the worker pods, against a real scheduler and two workers in this process."""
    import asyncio

    from distributed import Client, Scheduler, Worker

    from afbox.backends.k3s.retire import retire

    async def main():
        async with Scheduler(protocol="inproc", dashboard_address=":0") as s, \
                Worker(s.address, name="dask-worker-7b9c5d8f6-wx8rp") as w1, Worker(s.address, name="other") as w2:
            async with Client(s.address, asynchronous=True) as c:
                [fut] = await c.scatter([41], workers=[w1.address])
                assert await retire(s.address, "dask-worker-7b9c5d8f6-wx8rp", 30) == [w1.address]
                assert list(s.workers) == [w2.address] and await fut == 41  # the data moved, not lost
                assert await retire(s.address, "gone", 30) == []
    asyncio.run(main())
