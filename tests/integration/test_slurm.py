"""HPC mode on a real SLURM (munged, slurmctld, slurmd n1 and n2 started here): workers on every
node of an allocation, `up --slurm` as a job of its own, retirement before the walltime, scancel
noticed, worker-only jobs, and SLURM's own errors shown plainly."""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import psutil
import pytest

from harness import BIN, afbox, dask_client, shared_tmpdir, wait_for
from slurm_cluster import SlurmCluster, skip_module_unless_runnable

pytestmark = pytest.mark.integration
skip_module_unless_runnable()

FAKEBIN = Path(__file__).resolve().parent.parent / "fakebin"


@pytest.fixture(scope="module")
def cluster():
    base = shared_tmpdir("afbox-slurm-")
    c = SlurmCluster(base / "slurm")
    c.base.mkdir()
    try:
        yield c.start()
    finally:
        c.stop()
        shutil.rmtree(base, ignore_errors=True)


def fac_env(cluster, base: Path, **extra) -> dict:
    env = {**cluster.env, "XDG_STATE_HOME": str(base / "state"), "XDG_CACHE_HOME": str(base / "cache"),
           "XDG_RUNTIME_DIR": str(base / "runtime"), **extra}
    env.pop("AFBOX_SCHEDULER", None)
    return env


def status(env: dict, name: str) -> dict:
    return json.loads(afbox("status", "--json", "--name", name, env=env).stdout)


def afbox_steps(cluster) -> list[str]:
    return [s for s in cluster.steps() if "afbox" in s]


def test_inside_an_allocation_workers_run_on_every_node(cluster):
    base = shared_tmpdir("afbox-slurm-alloc-")
    job = re.search(r"allocation (\d+)", cluster.run("salloc", "-N2", "--no-shell", "-t", "10").stderr).group(1)
    # what salloc puts in the environment of the shell it gives
    env = fac_env(cluster, base, SLURM_JOB_ID=job, SLURM_JOB_NODELIST="n[1-2]", SLURM_NNODES="2",
                  SLURM_JOB_CPUS_PER_NODE="1(x2)", SLURM_SUBMIT_HOST="vm")
    try:
        t0 = time.monotonic()
        out = afbox("up", "--profile", "hpc-slurm", "--name", "alloc", "--port-base", "23100",
                    "--workdir", str(base / "work"), env=env).stdout
        up_s = time.monotonic() - t0
        assert f"slurm: job {job}, 2 node(s) n1,n2" in out
        assert "2 workers on 2 node(s)" in out
        assert re.search(r"ssh -L 23108:127\.0\.0\.1:23108 \S+", out)
        st = status(env, "alloc")
        assert st["state"] == "up" and st["backend"] == "slurm"
        assert st["slurm"]["job_id"] == job and 0 < st["slurm"]["time_left"] <= 600
        assert any(s.startswith(f"{job}.0 afbox-alloc-workers") for s in cluster.steps())
        with dask_client(env, "alloc") as c:
            t1 = time.monotonic()
            nodes = sorted(c.run(lambda: os.environ["SLURMD_NODENAME"]).values())
            assert nodes == ["n1", "n2"]
            assert c.submit(sum, range(101)).result() == 5050
            import dask.array as da
            assert da.ones((2000, 2000), chunks=500).sum().compute() == 4_000_000

            # elastic burst: a worker-only job joins the running scheduler
            out = afbox("scale", "--jobs", "1", "--name", "alloc", env=env).stdout
            sjob = re.search(r"submitted worker job\(s\) (\d+)", out).group(1)
            assert f"job {sjob}: worker(s) {sjob}-n" in out
            wait_for(lambda: len(c.scheduler_info()["workers"]) == 3, 30, what="3 workers")
            print(f"\nmeasured: up in an allocation {up_s:.1f}s; scale job joined {time.monotonic() - t1:.1f}s")
        afbox("down", "--name", "alloc", env=env)
        assert not afbox_steps(cluster)  # the worker step went with the supervisor
        # the scale job ends with its workers when the scheduler closes them, else down cancels it
        wait_for(lambda: not any(f"{sjob} " in q for q in cluster.queue()), 20, what="scale job gone")
        assert any(q.startswith(f"{job} ") for q in cluster.queue())  # the user's allocation is theirs
    finally:
        afbox("down", "--name", "alloc", env=env, check=False)
        cluster.run("scancel", job, check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_submitted_facility_retires_before_the_walltime_and_scancel_is_noticed(cluster, tmp_path):
    base = shared_tmpdir("afbox-slurm-sub-")
    sif = base / "analysis.sif"
    sif.write_text("#!/usr/bin/env run-singularity\n")
    calls = base / "apptainer.jsonl"
    # the fake apptainer runs the inner command on the host: the venv's `dask` stands in for the image's
    env = fac_env(cluster, base, PATH=f"{FAKEBIN}:{BIN}:{os.environ['PATH']}",
                  AFBOX_FAKE_APPTAINER_LOG=str(calls))
    cfg = base / "hpc.toml"
    cfg.write_text('[slurm]\nretire_before = "50s"\n')
    work = base / "work"
    try:
        t0 = time.monotonic()
        out = afbox("up", "--slurm", "-N", "2", "-t", "1", "--profile", "hpc-slurm", "--config", str(cfg),
                    "--name", "sub", "--port-base", "23200", "--workdir", str(work),
                    "--runtime", "apptainer", "--image", str(sif), env=env, timeout=240).stdout
        up_s = time.monotonic() - t0
        job = re.search(r"submitted SLURM job (\d+)", out).group(1)
        assert f"is up in SLURM job {job}" in out and "2 workers on 2 node(s)" in out
        execs = [json.loads(x) for x in calls.read_text().splitlines()]
        workers = [c for c in execs if c[:1] == ["exec"] and "worker" in c]
        assert len(workers) == 2 and all("--nv" not in c for c in workers)  # one per node, no GPUs
        bind = workers[0][workers[0].index("--bind") + 1].split(",")
        assert str(work) in bind and str(base / "state" / "afbox" / "sub") in bind
        assert any(c[c.index(str(sif)) + 1:][:2] == ["dask", "scheduler"] for c in execs if str(sif) in c)

        (work / "analysis.py").write_text("# the user's work\n")
        st = wait_for(lambda: (s := status(env, "sub"))["slurm"].get("warning") and s, 70, what="the warning")
        warned_left = st["slurm"]["end"] - time.time()
        assert f"SLURM job {job} ends in" in st["slurm"]["warning"]
        with dask_client(env, "sub") as c:
            wait_for(lambda: not c.scheduler_info()["workers"], 20, what="workers retired")
        # the watcher stops the workers' step once they have retired
        wait_for(lambda: all(s.endswith("batch") for s in afbox_steps(cluster)), 30, what="the workers' step ended")
        print(f"\nmeasured: up --slurm {up_s:.1f}s; retire warning {warned_left:.0f}s before the end")

        cluster.run("scancel", job)
        st = wait_for(lambda: (s := status(env, "sub"))["slurm"]["job_state"] == "CANCELLED" and s, 30,
                      what="the cancel noticed")
        assert st["slurm"]["message"] == f"SLURM job {job} ended (CANCELLED); the facility stopped with it"
        wait_for(lambda: status(env, "sub")["state"] == "down", 30, what="the facility stopped")
        assert not [p for p in psutil.process_iter(["cmdline"]) if str(base) in " ".join(p.info["cmdline"] or [])]
        assert (work / "analysis.py").exists()
    finally:
        afbox("down", "--name", "sub", env=env, check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_bad_input_gets_slurms_own_words(cluster, tmp_path):
    base = shared_tmpdir("afbox-slurm-bad-")
    env = fac_env(cluster, base)
    common = ("--profile", "hpc-slurm", "--name", "bad", "--port-base", "23300", "--workdir", str(base / "w"))

    p = afbox("up", "--slurm", *common, env={**env, "PATH": str(tmp_path)}, check=False)
    assert p.returncode == 1 and "error: SLURM is not available here" in p.stderr
    assert "slurm-client" in p.stderr and "Traceback" not in p.stderr

    p = afbox("up", "--slurm", "--partition", "nope", *common, env=env, check=False)
    assert p.returncode == 1 and "SLURM refused the job: " in p.stderr
    assert "invalid partition specified: nope" in p.stderr.lower() or "Invalid partition" in p.stderr

    cfg = base / "q.toml"
    cfg.write_text('[slurm]\nqueue_timeout = "4s"\n')
    p = afbox("up", "--slurm", "-N", "5", "--config", str(cfg), *common, env=env, check=False)
    job = re.search(r"submitted SLURM job (\d+)", p.stdout).group(1)
    assert p.returncode == 1 and f"SLURM job {job} did not start within 4s: PENDING, reason " in p.stderr
    assert f"job {job} has been cancelled" in p.stderr
    wait_for(lambda: not any(q.startswith(f"{job} ") and "PENDING" in q for q in cluster.queue()), 10,
             what="the pending job cancelled")

    p = afbox("up", *common, env=env, check=False)
    assert p.returncode == 1 and "runs inside a SLURM allocation" in p.stderr and "afbox up --slurm" in p.stderr
    shutil.rmtree(base, ignore_errors=True)
