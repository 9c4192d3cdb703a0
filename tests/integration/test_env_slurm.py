"""A named cluster on a real SLURM (munged, slurmctld, slurmd n1 and n2 started here): its scheduler
beside the head services, its workers one srun step from the environment's own bin dir, on both
nodes, computing; stopped again without touching the default cluster or the user's allocation."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import distributed
import pytest

from harness import afbox, dask_client, shared_tmpdir
from slurm_cluster import SlurmCluster, skip_module_unless_runnable

pytestmark = pytest.mark.integration
skip_module_unless_runnable()

NAME, ENV, PORT_BASE = "envs", "hostdask", 26200


@pytest.fixture(scope="module")
def fac():
    base = shared_tmpdir("afbox-envslurm-")
    cluster = SlurmCluster(base / "slurm")
    cluster.base.mkdir()
    cluster.start()
    job = None
    env = {**cluster.env, "XDG_STATE_HOME": str(base / "state"), "XDG_CACHE_HOME": str(base / "cache"),
           "XDG_RUNTIME_DIR": str(base / "runtime"), "XDG_DATA_HOME": str(base / "data"),
           "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR") or os.path.expanduser("~/.cache/uv")}
    env.pop("AFBOX_SCHEDULER", None)
    try:
        # the host's own versions: uv links them from its cache, so the build is quick
        t0 = time.monotonic()
        afbox("env", "create", ENV, f"dask=={distributed.__version__}", "--python", "3.11", env=env, timeout=600)
        build_s = time.monotonic() - t0
        job = re.search(r"allocation (\d+)", cluster.run("salloc", "-N2", "--no-shell", "-t", "10").stderr).group(1)
        env |= dict(SLURM_JOB_ID=job, SLURM_JOB_NODELIST="n[1-2]", SLURM_NNODES="2", SLURM_JOB_CPUS_PER_NODE="1(x2)",
                    SLURM_SUBMIT_HOST="vm")
        afbox("up", "--profile", "hpc-slurm", "--name", NAME, "--port-base", str(PORT_BASE),
              "--workdir", str(base / "work"), env=env)
        t0 = time.monotonic()
        up = afbox("cluster", "up", "--env", ENV, "--workers", "3", "--name", NAME, env=env)
        times = {"env_build": build_s, "named_cluster_up": time.monotonic() - t0}
        yield dict(env=env, base=base, cluster=cluster, job=job, up=up)
        print("\ntimings (s):", json.dumps({k: round(v, 1) for k, v in times.items()}))
    finally:
        afbox("down", "--name", NAME, env=env, check=False)
        if job:
            cluster.run("scancel", job, check=False)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def env_python(fac) -> str:
    rows = json.loads(afbox("env", "list", "--json", env=fac["env"]).stdout)
    return str(Path(next(r for r in rows if r["name"] == ENV)["path"]) / "bin" / "python")


def test_named_workers_are_one_srun_step_on_both_nodes_and_compute(fac):
    out = fac["up"].stdout
    assert "checking that every node of the allocation sees the environment" in out
    assert f"cluster '{ENV}' is up" in out
    job = fac["job"]
    steps = fac["cluster"].steps()
    assert sum(f"afbox-{NAME}-cluster-{ENV}-workers" in s for s in steps) == 1, steps
    code = """
import json, os, afbox
with afbox.client(cluster="hostdask", name="envs") as c:
    print(json.dumps({"nodes": c.run(lambda: os.environ["SLURMD_NODENAME"]),
                      "names": sorted(w["id"] for w in c.scheduler_info()["workers"].values()),
                      "python": c.run(lambda: __import__("sys").executable),
                      "sum": c.submit(sum, range(101)).result()}))
"""
    p = subprocess.run([env_python(fac), "-c", code], env=fac["env"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert sorted(got["nodes"].values()) == ["n1", "n1", "n2"]
    assert got["names"] == [f"cluster-{ENV}-{job}-n1-0", f"cluster-{ENV}-{job}-n1-1", f"cluster-{ENV}-{job}-n2-0"]
    # every worker is the environment's python, not afbox's own
    assert {Path(x).parent for x in got["python"].values()} == {Path(env_python(fac)).parent}
    assert got["sum"] == 5050
    listed = afbox("cluster", "list", "--name", NAME, env=fac["env"]).stdout
    assert re.search(rf"{ENV}\s+tls://\S+:{PORT_BASE + 600}\s+3/3\s+{ENV} \(distributed", listed), listed


def test_cluster_down_stops_the_step_and_leaves_the_default_cluster(fac):
    env = fac["env"]
    with dask_client(env, NAME) as c:
        before = sorted(c.scheduler_info()["workers"])
    afbox("cluster", "down", ENV, "--name", NAME, env=env)
    assert not [s for s in fac["cluster"].steps() if f"cluster-{ENV}" in s]
    st = json.loads(afbox("status", "--json", "--name", NAME, env=env).stdout)
    assert not [s for s in st["services"] if s["name"].startswith("cluster-")] and st["clusters"] == {}
    with dask_client(env, NAME) as c:
        assert sorted(c.scheduler_info()["workers"]) == before and c.submit(sum, [1, 2]).result() == 3
    p = afbox("scale", "--workers", "5", "--name", NAME, env=env, check=False)
    assert p.returncode == 1 and "afbox scale --jobs" in p.stderr  # still refused on SLURM
