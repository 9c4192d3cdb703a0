"""SLURM parsing and the slurm backend's placement, pure: what srun step and watcher a site gets."""
from datetime import datetime
from pathlib import Path

import pytest

from afbox.backends.slurm import commands as slurm
from afbox.backends.slurm import worker_task as slurm_worker
from afbox.backends.slurm import walltime
from afbox.backends.slurm import backend as sb
from afbox.facility import load
from afbox.services import render
from afbox.services.context import Context
from afbox.services.sizing import DaskSize
from afbox.state import FacilityState

GiB = 1024 ** 3
# `scontrol show job -o 4` from the test cluster (slurm-wlm 22.05.8), shortened
JOB = ("JobId=4 JobName=no-shell UserId=root(0) GroupId=root(0) JobState=RUNNING Reason=None "
       "Dependency=(null) TimeLimit=00:05:00 StartTime=2026-11-22T05:00:10 EndTime=2026-11-22T05:05:10 "
       "Partition=debug AllocNode:Sid=localhost:22809 NodeList=n[1-2] BatchHost=n1 NumNodes=2 "
       "TRES=cpu=2,node=2,billing=2 OS=Linux 6.1 #1 SMP  Command=(null) Power= ")


def test_scontrol_record_keeps_values_with_spaces_and_equals():
    r = slurm.parse_record(JOB)
    assert r["JobState"] == "RUNNING" and r["NodeList"] == "n[1-2]"
    assert r["TRES"] == "cpu=2,node=2,billing=2"
    assert r["AllocNode:Sid"] == "localhost:22809"
    assert r["OS"] == "Linux 6.1 #1 SMP" and r["Power"] == ""
    assert slurm.slurm_time(r["EndTime"]) == datetime(2026, 11, 22, 5, 5, 10).timestamp()
    assert slurm.slurm_time("Unknown") is None


@pytest.mark.parametrize("text,n", [("4(x2),2", 4), ("16", 16), ("", 0)])
def test_per_node_counts(text, n):
    assert slurm.first_count(text) == n


@pytest.mark.parametrize("text,n", [("2", 2), ("a100:2", 2), ("gpu:a100:4", 4), ("", 0), ("a100:1,v100:1", 2)])
def test_gpu_counts(text, n):
    assert slurm.gpu_count(text) == n


def test_outside_an_allocation_nothing_is_detected():
    assert slurm.detect({"PATH": "/usr/bin"}) is None


def ctx(**over) -> Context:
    fac = load("hpc-slurm", None, {"facility": {"name": "hpc", "port_base": 23000, "bind": "10.0.0.1"},
                                   **over.pop("overrides", {})})
    base = dict(facility=fac, state=FacilityState("hpc"), dask=DaskSize(3, 2, 4 * GiB), bin_dir="/venv/bin",
                xrootd="/usr/bin/xrootd", xrootd_user=None, cache_dir=Path("/c/xcache"),
                xrootd_dir=Path("/c/xrootd"), cache_size=10 * GiB)
    return Context(**(base | over))


ALLOC = slurm.Allocation(job_id="77", nodes=("n1", "n2", "n3"), cpus_per_node=8, gpus_per_node=2,
                         head="n1", submit_host="login1")


def test_workers_are_one_srun_step_across_every_node():
    c = ctx()
    specs = {s.name: s for s in sb.place(c, render(c), ALLOC)}
    assert not [n for n in specs if n.startswith("dask-worker-")]
    step = specs["dask-workers"].argv
    assert step[:2] == ("srun", "--jobid=77") and "--overlap" in step
    assert "--nodes=3" in step and "--ntasks-per-node=5" in step and "--ntasks=15" in step  # 3 CPU + 2 GPU
    launcher = step[step.index("afbox.backends.slurm.worker_task") - 2:]
    assert launcher[launcher.index("--scheduler") + 1] == "tls://10.0.0.1:23006"
    assert launcher[launcher.index("--gpus") + 1] == "2"
    cmd = step[step.index("--") + 1:]
    assert cmd[:3] == ("/venv/bin/dask", "worker", "tls://10.0.0.1:23006")
    assert "--host" not in cmd and "--name" not in cmd  # per task, from the launcher
    assert cmd[cmd.index("--nthreads") + 1] == "2" and "--tls-key" in cmd
    env = specs["dask-workers"].env_dict
    assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    # the dashboard asks for the owner's token, read when the check runs
    assert specs["dask-workers"].health.headers == (("worker-name", "77-n3-4"),
                                                    ("bearer-file", str(ctx().token_file)))
    cmd_preload = cmd[cmd.index("--preload") + 1]
    assert cmd_preload == "afbox.plugins.dask_dashboard" and env["AFBOX_AUTH_KEYS"].endswith("public-keys.json")
    watch = specs["walltime"]
    assert watch.argv[watch.argv.index("--retire-before") + 1] == "300"
    assert watch.port_dict == {"health": 23009}


def test_head_services_are_wrapped_by_the_runtime_and_the_worker_inside_srun():
    c = ctx(overrides={"runtime": {"kind": "apptainer", "image": "/img/analysis.sif"}})
    specs = {s.name: s for s in sb.place(c, render(c), ALLOC)}
    sched = specs["dask-scheduler"].argv
    assert sched[:2] == ("apptainer", "exec") and "/img/analysis.sif" in sched
    assert sched[sched.index("/img/analysis.sif") + 1] == "dask"  # the image's dask, not the host venv's
    step = specs["dask-workers"].argv
    inner = step[step.index("--") + 1:]
    assert inner[:3] == ("apptainer", "exec", "--nv")  # the allocation has GPUs
    assert specs["walltime"].argv[0] != "apptainer"  # afbox's own helper runs on the host


def test_worker_names_put_gpu_tasks_first():
    assert sb.worker_names("5", ("n1", "n2"), 1, 1) == ["5-n1-gpu-0", "5-n1-1", "5-n2-gpu-0", "5-n2-1"]


def test_each_task_gets_a_unique_name_its_node_address_and_gpu():
    def ip_of(host, iface):
        return "10.0.0.7" if iface == "" else "10.1.0.7"
    env = {"SLURMD_NODENAME": "n2", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "9", "CUDA_VISIBLE_DEVICES": "2,3",
           "SLURM_TMPDIR": "/scratch"}
    args, extra = slurm_worker.task_args(env, "10.0.0.1", 2, "", ip_of)
    assert args[args.index("--name") + 1] == "9-n2-gpu-1" and extra["CUDA_VISIBLE_DEVICES"] == "3"
    assert args[args.index("--host") + 1] == "10.0.0.7"
    assert args[args.index("--local-directory") + 1] == "/scratch/afbox-9-n2-1"
    args, extra = slurm_worker.task_args({**env, "SLURM_LOCALID": "2"}, "10.0.0.1", 2, "ib0", ip_of)
    assert args[args.index("--name") + 1] == "9-n2-2" and "--resources" not in args
    assert args[args.index("--host") + 1] == "10.1.0.7" and "CUDA_VISIBLE_DEVICES" not in extra


def test_ssh_line_goes_through_the_login_node():
    assert sb.ssh_line(ALLOC, "10.0.0.1", 23008) == "ssh -L 23008:10.0.0.1:23008 login1"


def test_retire_lead_is_capped_for_short_jobs():
    assert walltime.lead(300, 10_000.0, 0.0) == 300
    assert walltime.lead(300, 120.0, 0.0) == 60
    assert walltime.lead(300, None, 0.0) == 300
    assert walltime.due(1000.0, 700.0, 300) and not walltime.due(1000.0, 600.0, 300)
    assert not walltime.due(None, 0.0, 300)


def test_containers_see_workdir_cache_xrootd_state_and_origin():
    c = ctx()
    assert sb.binds(c) == (str(c.facility.workdir), "/c/xcache", "/c/xrootd", str(c.state.dir), str(c.origin_dir))


def test_status_reports_time_left_and_how_the_job_ended(tmp_path, monkeypatch):
    import time
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    state = FacilityState("hpc")
    be = sb.SlurmBackend(state)
    assert be.status_extra(None) == {}
    sb.update_job(state, job_id="12", job_state="RUNNING", end=time.time() + 600, warning=None)
    monkeypatch.setattr(be, "running", lambda: True)
    st = be.status_extra({})["slurm"]
    assert st["job_id"] == "12" and 590 < st["time_left"] <= 600 and "message" not in st
    sb.update_job(state, ended="CANCELLED")  # the controller forgot the job (PATH without SLURM here)
    monkeypatch.setattr(be, "running", lambda: False)
    monkeypatch.setenv("PATH", str(tmp_path))
    st = be.status_extra({})["slurm"]
    assert st["time_left"] is None and st["message"] == "SLURM job 12 ended (CANCELLED); the facility stopped with it"
