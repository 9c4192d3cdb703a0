"""Named environments and clusters: an older Dask stack built with uv runs a named cluster next to
the facility's default one, appears as a Jupyter kernel, and reads root:// through the XCache."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from harness import afbox, dask_client, isolated_env, service, shared_tmpdir, status, wait_for, xrootd_available

pytestmark = pytest.mark.integration
if not xrootd_available():
    pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)", allow_module_level=True)

NAME, ENV = "ci", "old"
PORT_BASE = int(os.environ.get("AFBOX_TEST_ENVS_PORT_BASE") or 23500)  # to run beside another run
NAMED = f"tls://127.0.0.1:{PORT_BASE + 600}"
PINS = ["dask==2023.11.0", "distributed==2023.11.0", "numpy<2"]
OLD = "2023.11.0"


def timed(*args, env, **kw):
    t0 = time.monotonic()
    p = afbox(*args, env=env, **kw)
    return p, time.monotonic() - t0


@pytest.fixture(scope="module")
def fac():
    base = shared_tmpdir("afbox-envs-")
    env = isolated_env(base, PORT_BASE) | {"XDG_DATA_HOME": str(base / "data")}
    # uv's download cache outlives the test dir, as it would on a user's machine
    env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR") or os.path.expanduser("~/.cache/uv")
    req = base / "requirements.txt"
    req.write_text("# an analysis written for an older stack\n" + "\n".join(PINS) + "\n")
    created, build_s = timed("env", "create", ENV, "-r", str(req), "--python", "3.11", env=env, timeout=600)
    again, reuse_s = timed("env", "create", ENV, "-r", str(req), "--python", "3.11", env=env)
    up, up_s = timed("up", "--profile", "ci", "--port-base", str(PORT_BASE), "--workdir", str(base / "work"), env=env)
    before = status(env, NAME)
    afbox("demo", "data", "--events", "2000", "--files", "1", env=env)
    scaled = afbox("scale", "--workers", "3", env=env)  # a named cluster after scale once crashed (null clusters)
    cl, cluster_s = timed("cluster", "up", "--env", ENV, "--workers", "2", env=env)
    scaled_back = afbox("scale", "--workers", "2", env=env)
    info = dict(env=env, base=base, created=created, again=again, before=before, cluster=cl,
                scaled=(scaled, scaled_back),
                times={"env_build": build_s, "env_reuse": reuse_s, "facility_up": up_s, "cluster_up": cluster_s})
    yield info
    afbox("down", "--name", NAME, env=env, check=False)
    shutil.rmtree(base, ignore_errors=True)
    print("\ntimings (s):", json.dumps({k: round(v, 1) for k, v in info["times"].items()}))


def env_python(fac) -> Path:
    rows = json.loads(afbox("env", "list", "--json", env=fac["env"]).stdout)
    return Path(next(r for r in rows if r["name"] == ENV)["path"]) / "bin" / "python"


def in_env(fac, code: str, *args: str) -> dict:
    """Run code with the environment's own python (a client of the same stack as its cluster)."""
    p = subprocess.run([str(env_python(fac)), "-c", code, *args], env=fac["env"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_env_build_adds_what_the_cluster_needs_and_is_reused(fac):
    out = fac["created"].stdout
    assert ("afbox adds what the cluster and kernel need: ipykernel, xrootd, fsspec-xrootd, pyjwt, cryptography, "
            "httpx") in out
    assert f"dask {OLD}, distributed {OLD}" in out
    assert "reusing environment" in fac["again"].stdout and "resolving" not in fac["again"].stdout
    assert fac["times"]["env_reuse"] < 5
    rows = json.loads(afbox("env", "list", "--json", env=fac["env"]).stdout)
    row = next(r for r in rows if r["name"] == ENV)
    assert row["packages"]["distributed"] == OLD and row["python"].startswith("3.11") and row["size"] > 10 ** 7


def test_unsatisfiable_requirements_fail_with_the_resolver_message_and_leave_nothing(fac):
    env = fac["env"]
    root = Path(env["XDG_DATA_HOME"]) / "afbox" / "envs"
    before = sorted(p.name for p in root.iterdir())
    p = afbox("env", "create", "bad", "dask==2023.11.0", "distributed==2024.1.0", env=env, check=False, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "error: environment 'bad': the requirements cannot be satisfied" in p.stderr
    assert "distributed==2024.1.0 depends on dask==2024.1.0" in p.stderr
    assert sorted(p.name for p in root.iterdir()) == before
    assert not (root / "names" / "bad.json").exists()


def test_a_named_cluster_comes_up_after_scale_and_stays_through_one(fac):
    up, back = fac["scaled"]
    assert "dask workers: 2 -> 3" in up.stdout and "dask workers: 3 -> 2" in back.stdout
    assert "cluster-old" not in back.stdout  # scaling the default cluster leaves the named one alone
    rows = {r["name"]: r for r in json.loads(afbox("cluster", "list", "--json", env=fac["env"]).stdout)}
    assert rows["old"]["workers"] == rows["old"]["wanted"] == 2 and rows["default"]["wanted"] == 2
    assert set(status(fac["env"], NAME)["clusters"]) == {"old"}


def test_named_cluster_runs_the_pinned_stack_and_computes(fac):
    assert "cluster 'old' is up" in fac["cluster"].stdout
    got = in_env(fac, """
import json, afbox, dask.array as da
with afbox.client(cluster="old") as c:
    v = c.get_versions()
    print(json.dumps({"names": sorted(w["id"] for w in c.scheduler_info()["workers"].values()),
                      "workers": {a: w["packages"] for a, w in v["workers"].items()},
                      "sum": float(da.ones((2000, 2000), chunks=500).sum().compute())}))
""")
    assert got["names"] == ["cluster-old-worker-1", "cluster-old-worker-2"]
    assert {p["distributed"] for p in got["workers"].values()} == {OLD}
    assert {p["dask"] for p in got["workers"].values()} == {OLD}
    assert all(p["numpy"].startswith("1.") for p in got["workers"].values())
    assert got["sum"] == 4_000_000


def test_named_dashboard_checks_tokens_and_jupyterlab_lists_and_serves_it(fac):
    env = fac["env"]
    rec = json.loads(Path(env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
    # the token check runs in the environment's own stack (afbox added what it needs): no side door
    dash = rec["clusters"]["old"]["dashboard"].removesuffix("/status")
    bearer = {"Authorization": f"Bearer {Path(rec['auth']['token_file']).read_text().strip()}"}
    assert httpx.get(f"{dash}/sitemap.json", timeout=15).status_code == 401
    assert "/sitemap.json" in httpx.get(f"{dash}/sitemap.json", headers=bearer, timeout=15).json()["paths"]
    # the Dask panel lists it beside the facility's own, its dashboard under JupyterLab's origin
    lab = status(env, NAME)["urls"]["jupyter"].removesuffix("/lab")
    listed = wait_for(lambda: {c["name"]: c for c in httpx.get(f"{lab}/dask/clusters", headers=bearer,
                                                                  timeout=15).json()}.get("old"), 30,
                      what="the named cluster in the Dask panel's list")
    assert (listed["scheduler_address"], listed["dashboard_link"], listed["workers"]) == (NAMED, "/proxy/dask/old/", 2)
    proxied = httpx.get(f"{lab}/proxy/dask/old/sitemap.json", headers=bearer, timeout=15)
    assert proxied.status_code == 200 and "/sitemap.json" in proxied.json()["paths"]


def test_default_cluster_is_untouched(fac):
    import distributed

    with dask_client(fac["env"]) as c:
        names = sorted(w["id"] for w in c.scheduler_info()["workers"].values())
        versions = {w["packages"]["distributed"] for w in c.get_versions()["workers"].values()}
    assert names == ["dask-worker-1", "dask-worker-2"] and versions == {distributed.__version__} != {OLD}
    now = status(fac["env"], NAME)
    for n in ("dask-scheduler", "dask-worker-1", "dask-worker-2", "jupyter"):
        assert service(now, n)["pid"] == service(fac["before"], n)["pid"]


def test_status_list_and_scale_keep_the_named_cluster(fac):
    env = fac["env"]
    st = status(env, NAME)
    named = ["cluster-old-scheduler", "cluster-old-worker-1", "cluster-old-worker-2"]
    assert all(service(st, n)["health"] == "healthy" for n in named)
    assert st["clusters"]["old"]["env"] == ENV and st["clusters"]["old"]["address"] == NAMED
    listed = afbox("cluster", "list", env=env).stdout
    assert f"old      {NAMED}  2/2      old (distributed 2023.11.0)" in listed
    pids = {n: service(st, n)["pid"] for n in named}
    afbox("scale", "--workers", "3", env=env)
    after = status(env, NAME)
    assert {n: service(after, n)["pid"] for n in named} == pids and "clusters" in after
    assert service(after, "dask-worker-3")["health"] == "healthy"
    afbox("scale", "--workers", "2", env=env)


def test_root_reads_through_the_xcache_from_the_named_workers(fac):
    from afbox.demo.on_facility import dataset_dir, dataset_urls
    from afbox.record import FacilityRecord

    rec = FacilityRecord.model_validate_json(Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME,
                                                  "facility.json").read_text())
    urls, via = dataset_urls(rec)
    assert via == "xcache"
    local = dataset_dir(rec) / urls[0].rsplit("/", 1)[1]
    got = in_env(fac, """
import json, sys, afbox
def read(url):
    import hashlib, fsspec
    with fsspec.open(url, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
with afbox.client(cluster="old") as c:
    print(json.dumps({w: c.submit(read, sys.argv[1], workers=[w], pure=False).result()
                      for w in c.scheduler_info()["workers"]}))
""", urls[0])
    assert len(got) == 2 and set(got.values()) == {hashlib.sha256(local.read_bytes()).hexdigest()}


async def _execute(base_url: str, token: str, kernel_id: str, code: str) -> str:
    """One execute_request over the kernel's websocket (Jupyter messaging protocol 5.3); its stdout."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    ws_url = base_url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}))
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    out = []
    while True:
        msg = json.loads(await asyncio.wait_for(conn.read_message(), 90))
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            conn.close()
            return "".join(out)


def test_kernel_appears_in_jupyter_and_runs_the_pinned_stack(fac):
    env = fac["env"]
    st = status(env, NAME)
    jupyter_env = psutil.Process(service(st, "jupyter")["pid"]).environ()
    listed = subprocess.run([str(Path(os.sys.executable).parent / "jupyter"), "kernelspec", "list", "--json"],
                            env=env | {"JUPYTER_PATH": jupyter_env["JUPYTER_PATH"]}, capture_output=True,
                            text=True, timeout=60)
    specs = json.loads(listed.stdout)["kernelspecs"]
    assert specs["afbox-old"]["spec"]["display_name"] == "Python (old, cluster old)"
    assert specs["afbox-old"]["spec"]["env"]["DASK_SCHEDULER_ADDRESS"] == NAMED

    base_url = st["urls"]["jupyter"].removesuffix("/lab")
    rec = json.loads(Path(env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
    token = Path(rec["auth"]["token_file"]).read_text().strip()  # with [auth], Jupyter takes facility tokens only
    auth = {"Authorization": f"token {token}"}
    r = httpx.post(f"{base_url}/api/kernels", json={"name": "afbox-old"}, headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    kid = r.json()["id"]
    try:
        out = asyncio.run(_execute(base_url, token, kid, """
import json, afbox, dask, distributed, numpy
with afbox.client("old") as c, distributed.Client() as bare:
    print(json.dumps({"dask": dask.__version__, "distributed": distributed.__version__, "numpy": numpy.__version__,
                      "named": c.scheduler.address, "bare": bare.scheduler.address,
                      "result": c.submit(sum, [1, 2, 3]).result()}))
"""))
        got = json.loads(out.strip().splitlines()[-1])
        assert got["dask"] == got["distributed"] == OLD and got["numpy"].startswith("1.")
        assert got["named"] == got["bare"] == NAMED and got["result"] == 6
        refused = afbox("env", "rm", ENV, env=env, check=False)
        assert refused.returncode == 1 and "Jupyter kernel pid" in refused.stderr
    finally:
        httpx.delete(f"{base_url}/api/kernels/{kid}", headers=auth, timeout=30)


def test_a_cluster_named_like_the_facility_is_what_its_kernel_reaches(fac):
    """`afbox cluster up --env old --cluster ci` on facility ci: the line it prints and the name itself,
    in the kernel "Python (old)", reach that cluster, not the facility's default one."""
    env = fac["env"]
    afbox("cluster", "down", ENV, env=env)
    try:
        p = afbox("cluster", "up", "--env", ENV, "--cluster", NAME, "--workers", "1", env=env)
        assert f"cluster '{NAME}' has the facility's name" in p.stdout
        assert f"client = afbox.client(cluster='{NAME}')" in p.stdout
        st = status(env, NAME)
        base_url = st["urls"]["jupyter"].removesuffix("/lab")
        rec = json.loads(Path(env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
        token = Path(rec["auth"]["token_file"]).read_text().strip()  # Jupyter takes facility tokens only
        auth = {"Authorization": f"token {token}"}
        r = httpx.post(f"{base_url}/api/kernels", json={"name": "afbox-old"}, headers=auth, timeout=30)
        assert r.status_code == 201, r.text
        kid = r.json()["id"]
        try:
            out = asyncio.run(_execute(base_url, token, kid, f"""
import json, warnings, afbox
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    with afbox.client({NAME!r}) as by_name, afbox.client(cluster={NAME!r}) as printed:
        got = {{"by_name": by_name.scheduler.address, "printed": printed.scheduler.address,
               "result": by_name.submit(sum, [1, 2]).result()}}
print(json.dumps({{**got, "warned": [str(w.message) for w in seen if w.category is UserWarning]}}))
"""))
        finally:
            httpx.delete(f"{base_url}/api/kernels/{kid}", headers=auth, timeout=30)
        got = json.loads(out.strip().splitlines()[-1])
        assert got["by_name"] == got["printed"] == NAMED != st["urls"]["scheduler"] and got["result"] == 3
        assert len(got["warned"]) == 1 and "connecting to the named cluster (this kernel's)" in got["warned"][0]
    finally:
        afbox("cluster", "down", NAME, env=env, check=False)
        afbox("cluster", "up", "--env", ENV, "--workers", "2", env=env)


def test_env_rm_refuses_while_the_cluster_runs_then_cluster_down_and_rm(fac):
    env = fac["env"]
    p = afbox("env", "rm", ENV, env=env, check=False)
    assert p.returncode == 1 and "error: environment 'old' is in use" in p.stderr
    assert "cluster 'old' of facility 'ci'" in p.stderr
    assert "process " not in p.stderr  # the cluster's own processes are that line, not bare pids
    afbox("cluster", "down", ENV, env=env)
    st = status(env, NAME)
    assert not [s for s in st["services"] if s["name"].startswith("cluster-old")] and st["clusters"] == {}
    assert service(st, "dask-worker-1")["health"] == "healthy"
    root = Path(env["XDG_DATA_HOME"]) / "afbox" / "envs"
    digest = json.loads((root / "names" / f"{ENV}.json").read_text())["digest"]
    # the kernel's process is gone a moment after Jupyter answers the DELETE
    wait_for(lambda: afbox("env", "rm", ENV, env=env, check=False).returncode == 0, 20, what="env rm")
    assert not (root / digest).exists() and not (root / "jupyter" / "kernels" / "afbox-old").exists()
    assert not (Path(env["XDG_STATE_HOME"]) / "afbox" / NAME / "jupyter" / "kernels" / "afbox-old").exists()
