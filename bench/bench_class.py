"""A class arriving at once. N simulated students do what hubtraf does, in-process: log in through
the hub's form, start their server, open a kernel, run a cell, then (afbox) a Dask sum on their own
gateway cluster. Peer in the same run: a plain JupyterHub (SimpleLocalProcessSpawner, no Dask, no
isolation) under the same load. Needs root: the class makes a unix user per student.

Figures: time until every student has computed, p50/p95 time to first result, memory per idle
student (everything that runs as them: server, kernel, and for afbox their Dask cluster), as PSS
(what they cost: shared pages divided among the processes sharing them) and as RSS."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from afbox.hub.status import memory_of, student_processes, unix_users
from bench.common import BIN, afbox, isolated_env

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from hubclient import Student  # noqa: E402

NAME, BASE = "bclass", 28000   # a facility spans 1000 ports: the whole 28000-28999 range
PEER_PORT = 28990                  # the plain hub: after the class is down, inside the same range
PASSWORD = "a-good-password"
CELL = "print(1 + 1)"
CELL_DASK = """import afbox, dask.array as da
client = afbox.client()
print(int(da.arange(100_000, chunks=10_000).sum().compute()))"""
PEER_CONFIG = """
c.JupyterHub.bind_url = "http://127.0.0.1:{port}/"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{base}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{base}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{base}/homes/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--ServerApp.allow_root=True"]
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 300
c.Spawner.start_timeout = 300
c.JupyterHub.concurrent_spawn_limit = {spawns}
"""


async def _one(base: str, name: str, secret: str, ca: str | None, dask: bool, t0: float) -> dict:
    s = Student(base, name, ca)
    try:
        await s.login(secret, PASSWORD)
        await s.wait_server(timeout=600)
        kernel = await s.start_kernel()
        await s.run(kernel, CELL, timeout=300)
        first = time.monotonic() - t0
        if dask:
            assert (await s.run(kernel, CELL_DASK, timeout=300)).strip().endswith("4999950000")
        return {"first": first, "done": time.monotonic() - t0}
    finally:
        await s.close()


def _load(base: str, people: dict[str, str], ca: str | None, dask: bool) -> list[dict]:
    async def everyone():
        t0 = time.monotonic()
        return await asyncio.gather(*(_one(base, n, sec, ca, dask, t0) for n, sec in people.items()))
    return asyncio.run(everyone())


def _figures(results: list[dict]) -> dict:
    firsts = sorted(r["first"] for r in results)
    return {"all_done_s": max(r["done"] for r in results), "p50_first_s": statistics.median(firsts),
            "p95_first_s": firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))]}


def _procs_by(var: str) -> dict[str, list[psutil.Process]]:
    """Every process carrying `var` in its environment, by its value."""
    out: dict[str, list[psutil.Process]] = {}
    for p in psutil.process_iter():
        try:
            who = p.environ().get(var)
            if who:
                out.setdefault(who, []).append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _idle_memory(procs: dict[str, list[psutil.Process]], people) -> dict:
    """Mean per student, MB: PSS (shared pages divided among their sharers) and RSS (counted in each)."""
    per = [memory_of(procs.get(p, [])) for p in people]
    return {"idle_mb_per_student": statistics.mean(m[0] for m in per) / 2**20,
            "idle_rss_mb_per_student": statistics.mean(m[1] for m in per) / 2**20}


def afbox_class(n: int, spawns: int) -> dict:
    env, base = isolated_env("abc-")
    env["XDG_DATA_HOME"] = str(base / "data")
    cfg = base / "class.toml"
    cfg.write_text(f'[masterclass]\nserver_idle = "1h"\ncluster_idle = "1h"\nconcurrent_spawns = {spawns}\n')
    try:
        up = afbox("up", "--profile", "masterclass", "--name", NAME, "--students", str(n), "--port-base", str(BASE),
                   "--config", str(cfg), "--workdir", str(base / "work"), env=env)
        state = Path(env["XDG_STATE_HOME"], "afbox", NAME)
        rec = json.loads((state / "facility.json").read_text())
        hub = rec["services"]["hub"]["urls"]["hub"].removesuffix("/hub/")
        ca = str(Path(rec["auth"]["identity_dir"]) / "ca.pem")
        accounts = json.loads((state / "secrets" / "hub" / "accounts.json").read_text())["accounts"]
        people = {name: a["code"] for name, a in accounts.items() if a.get("role", "student") == "student"}
        out = _figures(_load(hub, people, ca, dask=True)) | {"up_s": up}
        time.sleep(10)  # kernels and clusters settle into idle
        status = json.loads(subprocess.run([str(BIN / "afbox"), "class", "status", "--json", "--name", NAME],
                                           env=env, capture_output=True, text=True, check=True).stdout)
        theirs = student_processes(unix_users(NAME, people))
        out |= _idle_memory({who: [p for p, _ in procs] for who, procs in theirs.items()}, people)
        out["computing"] = sum(1 for s in status["students"] if s["dask"] > 0)
        return out
    finally:
        subprocess.run([str(BIN / "afbox"), "down", "--name", NAME], env=env, capture_output=True)
        subprocess.run([str(BIN / "afbox"), "class", "purge", "--yes", "--name", NAME], env=env,
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def plain_hub(n: int, spawns: int) -> dict:
    _, base = isolated_env("abh-")
    chp = shutil.which("configurable-http-proxy", path=str(BIN)) or shutil.which("configurable-http-proxy")
    (base / "jupyterhub_config.py").write_text(PEER_CONFIG.format(
        port=PEER_PORT, hub_port=PEER_PORT + 1, api_port=PEER_PORT + 2, chp=chp, base=base, password=PASSWORD,
        singleuser=str(BIN / "jupyterhub-singleuser"), spawns=spawns))
    log = open(base / "hub.log", "w")
    hub = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(base / "jupyterhub_config.py")], cwd=base,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{PEER_PORT}"
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            try:
                if httpx.get(f"{url}/hub/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if hub.poll() is not None:
                raise SystemExit(f"plain JupyterHub exited: {(base / 'hub.log').read_text()[-2000:]}")
            time.sleep(0.5)
        up = time.monotonic() - t0
        people = {f"student{i:02d}": PASSWORD for i in range(1, n + 1)}
        out = _figures(_load(url, people, None, dask=False)) | {"up_s": up}
        time.sleep(10)
        out |= _idle_memory(_procs_by("JUPYTERHUB_USER"), people)
        return out
    finally:
        hub.terminate()  # the hub stops its proxy and the servers it spawned
        try:
            hub.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, 9)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def run(quick: bool = False) -> tuple[list[tuple[str, str, str, str]], dict]:
    if os.geteuid() != 0:
        raise SystemExit("bench class: needs root (the class makes a unix user per student)")
    n = 5 if quick else 30
    spawns = max(2, (os.cpu_count() or 2) // 2)
    mine = afbox_class(n, spawns)
    peer = plain_hub(n, spawns)
    rows = [
        (f"{n} students: all computed", f"{mine['all_done_s']:.1f} s", f"{peer['all_done_s']:.1f} s (no Dask)",
         f"{mine['all_done_s'] / peer['all_done_s']:.2f}x"),
        ("time to first result, p50", f"{mine['p50_first_s']:.1f} s", f"{peer['p50_first_s']:.1f} s",
         f"{mine['p50_first_s'] / peer['p50_first_s']:.2f}x"),
        ("time to first result, p95", f"{mine['p95_first_s']:.1f} s", f"{peer['p95_first_s']:.1f} s",
         f"{mine['p95_first_s'] / peer['p95_first_s']:.2f}x"),
        ("memory per idle student, PSS", f"{mine['idle_mb_per_student']:.0f} MB (with Dask)",
         f"{peer['idle_mb_per_student']:.0f} MB", f"{mine['idle_mb_per_student'] / peer['idle_mb_per_student']:.2f}x"),
        ("memory per idle student, RSS", f"{mine['idle_rss_mb_per_student']:.0f} MB (with Dask)",
         f"{peer['idle_rss_mb_per_student']:.0f} MB",
         f"{mine['idle_rss_mb_per_student'] / peer['idle_rss_mb_per_student']:.2f}x"),
        ("hub up", f"{mine['up_s']:.1f} s (whole facility)", f"{peer['up_s']:.1f} s", ""),
    ]
    return rows, {"students": n, "concurrent_spawns": spawns, "afbox": mine, "plain_hub": peer}
