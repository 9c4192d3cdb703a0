"""Acceptance: `afbox up --profile ci` brings up real Dask, JupyterLab and XCache; real clients use them."""
from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from harness import (dask_client, Origin, afbox, free_port, isolated_env, service, shared_tmpdir, status,
                     use_facility_data, wait_for, write_root_file, xrootd_available)

pytestmark = pytest.mark.integration
if not xrootd_available():
    pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)", allow_module_level=True)

NAME = "ci"
PORT_BASE = 19100


@pytest.fixture(scope="module")
def fac():
    base = shared_tmpdir("afbox-it-")
    data = base / "origin-data"
    expected = {f: write_root_file(data / "store" / f, seed=i) for i, f in enumerate(["a.root", "b.root", "c.root"])}
    for d in (data, data / "store"):
        d.chmod(0o755)
    origin = Origin(data, free_port())
    origin.start()
    env = isolated_env(base, PORT_BASE)
    workdir = base / "work"
    t0 = time.monotonic()
    out = afbox("up", "--profile", "ci", "--origin", origin.url, "--port-base", str(PORT_BASE),
                "--workdir", str(workdir), env=env)
    up_seconds = time.monotonic() - t0
    use_facility_data(env, NAME)
    st = status(env, NAME)
    yield dict(env=env, base=base, origin=origin, expected=expected, out=out, st=st, workdir=workdir,
               up_seconds=up_seconds)
    afbox("down", "--name", NAME, env=env, check=False)
    origin.stop()


def xcache_url(fac, f: str) -> str:
    return f"{fac['st']['urls']['xcache'].rstrip('/')}//store/{f}"


def read_sum(url: str, timeout: float = 30) -> float:
    import uproot
    with uproot.open(url, timeout=timeout) as f:
        return float(f["Events"]["x"].array(library="np").sum())


def test_up_prints_urls_and_everything_is_healthy(fac):
    out = fac["out"].stdout
    assert "JupyterLab      http://127.0.0.1:" in out and "?token=" in out
    assert "Dask scheduler  tls://127.0.0.1:19106" in out
    assert "XCache          root://127.0.0.1:19100/" in out
    st = fac["st"]
    assert st["state"] == "up"
    assert {s["name"] for s in st["services"]} == {"dask-scheduler", "dask-worker-1", "dask-worker-2", "jupyter",
                                                   "xcache", "issuer", "gateway"}
    assert all(s["health"] == "healthy" and s["pid"] for s in st["services"])


def test_dask_array_sum_runs_on_the_facility_workers(fac):
    import dask.array as da

    with dask_client(fac["env"]) as c:
        names = sorted(w["id"] for w in c.scheduler_info()["workers"].values())
        assert names == ["dask-worker-1", "dask-worker-2"]
        x = da.ones((4000, 4000), chunks=(500, 500))
        assert x.sum().compute() == 16_000_000
        who = set(c.run(os.getpid).values())
        worker_pids = {service(fac["st"], n)["pid"] for n in ("dask-worker-1", "dask-worker-2")}
        # each worker process is a child of its supervised nanny
        assert {psutil.Process(p).parent().pid for p in who} == worker_pids


def test_dask_refuses_clients_without_the_facility_certificate(fac):
    from distributed import Client
    from distributed.security import Security

    addr = fac["st"]["urls"]["scheduler"]
    assert addr.startswith("tls://")
    with pytest.raises((OSError, TimeoutError)):
        Client(addr.replace("tls://", "tcp://"), timeout=3)
    other = shared_tmpdir("afbox-other-ca-")
    from afbox.auth.identity import ensure_cert, ensure_identity
    ensure_identity(other)
    cert, key = ensure_cert(other, "dask")
    stranger = Security(tls_ca_file=str(other / "ca.pem"), tls_client_cert=str(cert), tls_client_key=str(key),
                        require_encryption=True)
    with pytest.raises((OSError, TimeoutError)):
        Client(addr, security=stranger, timeout=3)


def test_afbox_client_helper_connects(fac):
    env = fac["env"]
    code = "import afbox; c = afbox.client('ci'); print(c.submit(sum, [1, 2, 3]).result()); c.close()"
    p = subprocess.run([os.sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "6", p.stderr


def test_jupyter_opens_only_to_facility_tokens(fac):
    url = fac["st"]["urls"]["jupyter"].removesuffix("/lab")
    owner = Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME, "secrets", "tokens", "data.token").read_text().strip()
    assert httpx.get(f"{url}/api/status", headers={"Authorization": f"Bearer {owner}"}).status_code == 200
    assert httpx.get(f"{url}/api/status").status_code == 403
    assert httpx.get(f"{url}/api/status", headers={"Authorization": "token wrong"}).status_code == 403
    # with [auth] Jupyter has no token of its own: none is made, none is accepted
    assert not Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME, "secrets", "jupyter_token").exists()
    assert "JUPYTER_TOKEN_FILE" not in psutil.Process(service(fac["st"], "jupyter")["pid"]).environ()


def test_dask_panel_opens_the_dashboard_under_jupyterlab(fac):
    url = fac["st"]["urls"]["jupyter"].removesuffix("/lab")
    owner = Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME, "secrets", "tokens", "data.token").read_text().strip()
    auth = {"Authorization": f"Bearer {owner}"}
    r = httpx.get(f"{url}/lab/api/settings/dask-labextension:plugin", headers=auth)
    assert r.status_code == 200
    assert r.json()["settings"]["defaultURL"] == "proxy/dask/default/"
    # JupyterLab proxies it to this facility's dashboard, whose own token check still applies
    assert httpx.get(f"{url}/proxy/dask/default/individual-plots.json", headers=auth).json()["Individual Task Stream"]
    assert httpx.get(f"{url}/proxy/dask/default/status", headers=auth).status_code == 200
    anonymous = httpx.get(f"{url}/proxy/dask/default/status")  # Jupyter's login first
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["location"]
    lab_only = _token(fac, "--scope", "jupyter.access")
    refused = httpx.get(f"{url}/proxy/dask/default/status", headers={"Authorization": f"Bearer {lab_only}"})
    assert refused.status_code == 401  # into Jupyter, but no compute.create for the dashboard
    clusters = httpx.get(f"{url}/dask/clusters", headers=auth).json()
    assert [(c["name"], c["dashboard_link"]) for c in clusters] == [("default", "/proxy/dask/default/")]


def test_kernels_see_the_scheduler(fac):
    pid = service(fac["st"], "jupyter")["pid"]
    environ = psutil.Process(pid).environ()
    assert environ["AFBOX_SCHEDULER"] == fac["st"]["urls"]["scheduler"]
    assert environ["DASK_SCHEDULER_ADDRESS"] == fac["st"]["urls"]["scheduler"]


def test_no_secret_in_process_titles_logs_or_status(fac):
    token_file = Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME, "secrets", "tokens", "data.token")
    token = token_file.read_text().strip()
    assert (token_file.stat().st_mode & 0o777) == 0o600
    for p in psutil.process_iter(["cmdline"]):
        assert token not in " ".join(p.info["cmdline"] or [])
    for log in Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME, "logs").glob("*.log"):
        assert token not in log.read_text(errors="replace"), log
    assert token not in afbox("status", "--json", "--name", NAME, env=fac["env"]).stdout


def test_xcache_reads_through_and_survives_origin_down(fac):
    url = xcache_url(fac, "a.root")
    assert read_sum(url) == pytest.approx(fac["expected"]["a.root"])
    cache_dir = Path(afbox("cache", "stats", "--json", "--name", NAME, env=fac["env"]).stdout.split('"cache_dir": "')[1].split('"')[0])
    cached = cache_dir / "store" / "a.root"
    assert cached.exists() and cached.stat().st_blocks > 0
    fac["origin"].stop()
    try:
        assert read_sum(url) == pytest.approx(fac["expected"]["a.root"])
        t0 = time.monotonic()
        with pytest.raises(OSError) as err:
            read_sum(xcache_url(fac, "b.root"), timeout=60)
        assert time.monotonic() - t0 < 15
        assert "b.root" in str(err.value)
    finally:
        fac["origin"].start()
    # the cache retries an origin that failed a few seconds after it failed (XRD_STREAMERRORWINDOW)
    got = wait_for(lambda: _try_sum(xcache_url(fac, "b.root")), 20, interval=1, what="read after origin is back")
    assert got == pytest.approx(fac["expected"]["b.root"])


def _try_sum(url):
    try:
        return read_sum(url)
    except OSError:
        return None


def test_cache_stats_reports_the_cached_files(fac):
    read_sum(xcache_url(fac, "c.root"))
    import json
    s = json.loads(afbox("cache", "stats", "--json", "--name", NAME, env=fac["env"]).stdout)
    assert s["files"] >= 1 and s["bytes"] > 0 and s["high_watermark"] == 1024 ** 3
    assert 0 < s["fill"] < 1


def test_kill_9_of_a_worker_is_restarted(fac):
    import dask.array as da

    env = fac["env"]
    before = service(status(env, NAME), "dask-worker-1")
    os.kill(before["pid"], signal.SIGKILL)
    after = wait_for(lambda: (s := service(status(env, NAME), "dask-worker-1"))["restarts"] >= 1
                     and s["health"] == "healthy" and s, 60, what="dask-worker-1 restarted and healthy")
    assert after["pid"] != before["pid"]
    with dask_client(fac["env"]) as c:
        c.wait_for_workers(2, timeout=30)
        assert da.arange(1000, chunks=100).sum().compute() == 499500


def test_kill_9_of_xrootd_is_restarted(fac):
    env = fac["env"]
    before = service(status(env, NAME), "xcache")
    xrootd = psutil.Process(before["pid"])
    assert xrootd.name() == "xrootd"
    xrootd.send_signal(signal.SIGKILL)
    wait_for(lambda: (s := service(status(env, NAME), "xcache"))["restarts"] >= 1 and s["health"] == "healthy",
             60, what="xcache restarted and healthy")
    assert read_sum(xcache_url(fac, "a.root")) == pytest.approx(fac["expected"]["a.root"])


def test_up_again_is_a_no_op_with_the_same_urls(fac):
    pids = {s["name"]: s["pid"] for s in status(fac["env"], NAME)["services"]}
    again = afbox("up", "--profile", "ci", "--port-base", str(PORT_BASE), env=fac["env"])
    assert "already up" in again.stdout
    assert fac["st"]["urls"]["jupyter"] in again.stdout and fac["st"]["urls"]["scheduler"] in again.stdout
    assert {s["name"]: s["pid"] for s in status(fac["env"], NAME)["services"]} == pids


def test_scale_adds_and_removes_workers_without_touching_the_others(fac):

    env = fac["env"]
    pids = {s["name"]: s["pid"] for s in status(env, NAME)["services"]}
    out = afbox("scale", "--workers", "3", "--name", NAME, env=env).stdout
    assert "dask-worker-3" in out and "healthy" in out
    st = status(env, NAME)
    assert service(st, "dask-worker-3")["health"] == "healthy"
    assert {n: service(st, n)["pid"] for n in pids} == pids  # nothing else restarted
    with dask_client(env) as c:
        assert len(c.scheduler_info()["workers"]) == 3
    afbox("scale", "--workers", "2", "--name", NAME, env=env)
    st = status(env, NAME)
    assert "dask-worker-3" not in {s["name"] for s in st["services"]}
    with dask_client(env) as c:
        wait_for(lambda: len(c.scheduler_info()["workers"]) == 2, 30, what="worker 3 gone from the scheduler")


def _token(fac, *args) -> str:
    return afbox("token", "--name", NAME, *args, env=fac["env"]).stdout.strip()


def _jupyter(fac, path: str, **kw):
    return httpx.get(fac["st"]["urls"]["jupyter"].removesuffix("/lab") + path, **kw)


def test_issuer_serves_discovery_and_jwks_over_https(fac):
    iss = service(fac["st"], "issuer")
    assert iss["health"] == "healthy"
    url = iss["urls"]["issuer"]
    ca = Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME, "secrets", "identity", "ca.pem")
    verify = ssl.create_default_context(cafile=str(ca))
    conf = httpx.get(url + "/.well-known/openid-configuration", verify=verify).json()
    assert conf["issuer"] == url
    jwks = httpx.get(conf["jwks_uri"], verify=verify).json()
    assert [k["alg"] for k in jwks["keys"]] == ["ES256"]
    with pytest.raises(httpx.ConnectError):  # only the facility CA vouches for it
        httpx.get(url + "/health")
    for f in Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME, "secrets", "identity").iterdir():
        if f.suffix == ".pem" and "key" in f.name:
            assert f.stat().st_mode & 0o777 == 0o600, f


def test_jupyter_accepts_facility_tokens_and_refuses_others(fac):
    good = _token(fac)
    info = json.loads(afbox("token", "--inspect", good, env=fac["env"]).stdout)
    assert info["claims"]["wlcg.ver"] == "1.0" and "jupyter.access" in info["claims"]["scope"]
    assert _jupyter(fac, "/api/status", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    # the login URL form sets the session cookie, so a browser needs the token only once
    r = _jupyter(fac, f"/api/status?token={good}")
    assert r.status_code == 200 and any("username" in c for c in r.headers.get_list("set-cookie"))
    compute_only = _token(fac, "--scope", "compute.create")
    other_site = _token(fac, "--audience", "https://other.site")
    for bad in (compute_only, other_site, good[:-4] + "AAAA", "not.a.jwt"):
        assert _jupyter(fac, "/api/status", headers={"Authorization": f"Bearer {bad}"}).status_code == 403
    log = Path(service(fac["st"], "jupyter")["log"]).read_text(errors="replace")
    assert "refused a facility token" in log
    assert good not in log and compute_only not in log


def test_rotated_key_keeps_old_tokens_valid(fac):
    old = _token(fac)
    out = afbox("token", "rotate-key", "--name", NAME, env=fac["env"]).stdout
    assert "rotated" in out
    new = _token(fac)
    assert json.loads(afbox("token", "--inspect", new, env=fac["env"]).stdout)["header"]["kid"] != \
        json.loads(afbox("token", "--inspect", old, env=fac["env"]).stdout)["header"]["kid"]
    for t in (old, new):
        assert _jupyter(fac, "/api/status", headers={"Authorization": f"Bearer {t}"}).status_code == 200


def test_status_json_contract(fac):
    st = status(fac["env"], NAME)
    assert set(st) >= {"facility", "state", "profile", "backend", "started", "workdir", "services", "urls"}
    for s in st["services"]:
        assert set(s) >= {"name", "state", "health", "pid", "restarts", "uptime", "ports", "urls", "log"}


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_z_down_leaves_nothing_and_keeps_work_and_cache(fac):
    env = fac["env"]
    st = status(env, NAME)
    sup_pid = int(Path(env["XDG_STATE_HOME"], "afbox", NAME, "run", "supervisord.pid").read_text())
    tree = [sup_pid] + [p.pid for p in psutil.Process(sup_pid).children(recursive=True)]
    groups = {os.getpgid(s["pid"]) for s in st["services"]}
    notebook = fac["workdir"] / "analysis.ipynb"
    notebook.write_text("{}")
    cache_file = Path(fac["env"]["XDG_CACHE_HOME"], "afbox", NAME, "xcache", "store", "a.root")
    assert cache_file.exists()
    # uproot reads only the byte ranges it needs; a whole-file copy makes the cached copy complete,
    # and only complete files are served by a fresh XCache without asking the origin.
    subprocess.run(["xrdcp", "-f", xcache_url(fac, "a.root"), "/dev/null"], check=True, timeout=60,
                   capture_output=True)

    afbox("down", "--name", NAME, env=env)
    alive = [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running: {alive}"
    # a zombie has exited: one whose parent died first waits for init (this machine's reaps slowly)
    in_groups = [p.info for p in psutil.process_iter(["pid", "ppid", "status", "name", "cmdline"], ad_value=None)
                 if _pgid(p.pid) in groups and p.info["status"] not in (psutil.STATUS_ZOMBIE, None)]
    assert in_groups == [], f"left in the services' process groups: {in_groups}"
    assert notebook.exists() and cache_file.exists()
    assert status(env, NAME)["state"] == "down"
    second = afbox("down", "--name", NAME, env=env)
    assert "not running" in second.stdout

    # up again: the cache survived, so a cached file reads even with the origin stopped
    afbox("up", "--profile", "ci", "--origin", fac["origin"].url, "--port-base", str(PORT_BASE),
          "--workdir", str(fac["workdir"]), env=env)
    fac["origin"].stop()
    try:
        assert read_sum(xcache_url(fac, "a.root")) == pytest.approx(fac["expected"]["a.root"])
    finally:
        fac["origin"].start()
    assert notebook.exists()
