"""Container images as environments, through tests/fakebin/apptainer (it checks the argv afbox builds
and runs the inner command on the host, so the "image" holds the host's python and Dask): pulled once,
read inside, a kernel and a named cluster next to a running facility that run through `apptainer exec`.
tests/integration/test_apptainer_real.py runs the wrapper with a real apptainer where one is installed."""
from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import distributed
import httpx
import pytest

from harness import BIN, afbox, isolated_env, service, shared_tmpdir, status, wait_for, xrootd_available
from test_env_clusters import _execute  # one execute_request over a kernel's websocket

pytestmark = pytest.mark.integration
if not xrootd_available():
    pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)", allow_module_level=True)

FAKEBIN = Path(__file__).resolve().parent.parent / "fakebin"
NAME, ENV, PORT_BASE = "ci", "img", 26000
IMAGE = "docker://ghcr.io/afbox/analysis:0.1.0"
ADDRESS = f"tls://127.0.0.1:{PORT_BASE + 600}"  # named cluster 0 of this facility


@pytest.fixture(scope="module")
def fac():
    base = shared_tmpdir("afbox-envimg-")
    calls = base / "apptainer.jsonl"
    env = isolated_env(base, PORT_BASE) | {"XDG_DATA_HOME": str(base / "data"), "AFBOX_FAKE_APPTAINER_LOG": str(calls),
                                           "PATH": f"{FAKEBIN}:{BIN}:{os.environ['PATH']}"}
    t0 = time.monotonic()
    created = afbox("env", "create", ENV, "--image", IMAGE, env=env)
    create_s = time.monotonic() - t0
    again = afbox("env", "create", ENV, "--image", IMAGE, env=env)
    afbox("up", "--profile", "ci", "--port-base", str(PORT_BASE), "--workdir", str(base / "work"), env=env)
    t0 = time.monotonic()
    cl = afbox("cluster", "up", "--env", ENV, "--workers", "2", env=env)
    times = {"image_env_create": create_s, "cluster_up": time.monotonic() - t0}
    yield dict(env=env, base=base, calls=calls, created=created, again=again, cluster=cl)
    afbox("down", "--name", NAME, env=env, check=False)
    shutil.rmtree(base, ignore_errors=True)
    print("\ntimings (s):", json.dumps({k: round(v, 1) for k, v in times.items()}))


def calls(fac) -> list[list[str]]:
    return [json.loads(x) for x in fac["calls"].read_text().splitlines()]


def row(fac, name=ENV) -> dict:
    return next(r for r in json.loads(afbox("env", "list", "--json", env=fac["env"]).stdout) if r["name"] == name)


def kernel(fac, facility: bool = False) -> dict:
    root = Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME) if facility else Path(fac["env"]["XDG_DATA_HOME"],
                                                                                     "afbox", "envs")
    return json.loads((root / "jupyter" / "kernels" / f"afbox-{ENV}" / "kernel.json").read_text())


def test_image_is_pulled_once_and_read_inside(fac):
    r = row(fac)
    sif = Path(r["image"])
    assert sif.name == "analysis_0.1.0.sif" and sif.parent.name == r["digest"] and sif.is_file()
    assert r["python"] == platform.python_version() and r["packages"]["distributed"] == distributed.__version__
    pulls = [c for c in calls(fac) if c[0] == "pull"]
    assert len(pulls) == 1 and pulls[0][2] == IMAGE  # the second create reused it
    assert "reusing environment" in fac["again"].stdout and "pulling" not in fac["again"].stdout
    probe = next(c for c in calls(fac) if c[0] == "exec" and "-c" in c)
    assert probe[2:4] == ["python", "-c"] and probe[1].endswith(".sif")


def test_kernelspec_runs_the_kernel_in_the_image(fac):
    r, k = row(fac), kernel(fac)
    argv = k["argv"]
    assert argv[:3] == ["apptainer", "exec", "--bind"] and "--nv" not in argv
    assert argv[4:] == [r["image"], "python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    binds = argv[3].split(",")
    assert str(Path(fac["env"]["XDG_STATE_HOME"]) / "afbox") in binds  # Jupyter's connection files, credentials
    # the facility's own kernelspec also binds its workdir and cache, and points at the named cluster
    fk = kernel(fac, facility=True)
    assert str(fac["base"] / "work") in fk["argv"][3].split(",") and fk["env"]["DASK_SCHEDULER_ADDRESS"] == ADDRESS


def test_named_cluster_runs_through_the_runtime_wrapper_and_computes(fac):
    assert f"cluster '{ENV}' is up" in fac["cluster"].stdout
    sif = row(fac)["image"]
    dask_calls = [c for c in calls(fac) if c[0] == "exec" and c[4:6] in (["dask", "scheduler"], ["dask", "worker"])]
    assert sorted(c[5] for c in dask_calls) == ["scheduler", "worker", "worker"]
    for c in dask_calls:
        assert c[1] == "--bind" and c[3] == sif and "--nv" not in c
        assert {str(fac["base"] / "work"), str(Path(fac["env"]["XDG_STATE_HOME"]) / "afbox" / NAME)} <= set(
            c[2].split(","))
    # (before computing: distributed's /json/identity.json fails for a heartbeat after a computation)
    assert service(status(fac["env"], NAME), "cluster-img-worker-2")["health"] == "healthy"
    # a client in the image, as a notebook of its kernel would run it
    argv = kernel(fac)["argv"]
    code = """
import json, afbox, dask.array as da
with afbox.client(cluster="img") as c:
    print(json.dumps({"address": c.scheduler.address,
                      "names": sorted(w["id"] for w in c.scheduler_info()["workers"].values()),
                      "sum": float(da.ones((1000, 1000), chunks=250).sum().compute())}))
"""
    p = subprocess.run([*argv[:argv.index("python") + 1], "-c", code], capture_output=True, text=True, timeout=120,
                       env=fac["env"] | kernel(fac)["env"])
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got == {"address": ADDRESS, "names": ["cluster-img-worker-1", "cluster-img-worker-2"], "sum": 1e6}
    rec = json.loads(Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
    assert rec["clusters"][ENV]["image"] == sif


def test_kernel_started_by_jupyter_runs_in_the_image_and_reaches_the_cluster(fac):
    env = fac["env"]
    st = status(env, NAME)
    base_url = st["urls"]["jupyter"].removesuffix("/lab")
    rec = json.loads(Path(env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
    token = Path(rec["auth"]["token_file"]).read_text().strip()  # with [auth], Jupyter takes facility tokens only
    auth = {"Authorization": f"token {token}"}
    r = httpx.post(f"{base_url}/api/kernels", json={"name": f"afbox-{ENV}"}, headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    kid = r.json()["id"]
    try:
        out = asyncio.run(_execute(base_url, token, kid, """
import json, os, afbox
with afbox.client("img") as c:
    print(json.dumps({"env": os.environ["AFBOX_ENV"], "named": c.scheduler.address,
                      "result": c.submit(sum, [1, 2, 3]).result()}))
"""))
        assert json.loads(out.strip().splitlines()[-1]) == {"env": ENV, "named": ADDRESS, "result": 6}
        assert any(c[0] == "exec" and "ipykernel_launcher" in c for c in calls(fac))
        afbox("cluster", "down", ENV, env=env)
        refused = afbox("env", "rm", ENV, env=env, check=False)
        assert refused.returncode == 1 and "Jupyter kernel pid" in refused.stderr
    finally:
        httpx.delete(f"{base_url}/api/kernels/{kid}", headers=auth, timeout=30)
    sif = Path(row(fac)["image"])
    wait_for(lambda: afbox("env", "rm", ENV, env=env, check=False).returncode == 0, 20, what="env rm")
    assert not sif.exists() and service(status(env, NAME), "dask-worker-1")["health"] == "healthy"


def test_sif_files_and_sandboxes_are_used_in_place_and_kept(fac):
    env = fac["env"]
    sif = fac["base"] / "mine.sif"
    sif.write_text("#!/usr/bin/env run-singularity\n")
    sandbox = fac["base"] / "sandbox"
    (sandbox / "usr").mkdir(parents=True)
    for name, image in (("mine", sif), ("box", sandbox)):
        afbox("env", "create", name, "--image", str(image), env=env)
        r = row(fac, name)
        assert r["image"] == str(image) and [p.name for p in Path(r["path"]).iterdir()] == ["afbox-env.json"]
        afbox("env", "rm", name, env=env)
        assert image.exists()  # the user's image, never ours to delete


def test_bad_images_and_no_apptainer_say_what_to_do(fac):
    env = fac["env"]
    p = afbox("env", "create", "x", "--image", str(fac["base"] / "notes.txt"), env=env, check=False)
    assert p.returncode == 1 and "not a .sif file, a sandbox directory or an image reference" in p.stderr
    p = afbox("env", "create", "x", "--image", IMAGE, "dask", env=env, check=False)
    assert p.returncode == 1 and "give --image alone" in p.stderr
    p = afbox("env", "create", "x", "--image", IMAGE, env=env | {"PATH": "/usr/bin:/bin"}, check=False)
    assert p.returncode == 1 and "`apptainer` not found" in p.stderr and "apptainer.org" in p.stderr
    assert "Traceback" not in p.stderr
