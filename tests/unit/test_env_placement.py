"""Where a named cluster's parts run: inside an image environment's container (the runtime wrapper,
binds, --nv never for CPU workers) and on SLURM (scheduler on the head, workers one srun step); its
kernelspec in an image; the placed head kept as it runs. All pure or on temporary files."""
from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from afbox import envs
from afbox import spec as specs_json
from afbox.backends.slurm import commands as slurm
from afbox.backends.slurm import placement as sb
from afbox.backends.slurm import worker_task as slurm_worker
from afbox.lifecycle import clusters
from afbox.record import ClusterRecord
from afbox.runtimes import binds
from afbox.services import render
from test_services import ctx
from test_slurm_placement import ctx as hpc_ctx

SIF = "/data/envs/0123abcd/analysis_0.1.0.sif"
ENTRY = ClusterRecord(env="agc", digest="0123abcd", index=1, workers=2, threads=1, bin_dir="/envs/0123abcd/bin",
                      started=0)
ALLOC = slurm.Allocation(job_id="77", nodes=("n1", "n2"), cpus_per_node=2, head="n1")


def on_slurm(c, entry):
    """The named cluster's scheduler and workers' step as the slurm backend places them."""
    placed = {s.name: s for s in sb.place(c, clusters.render(c, "agc", entry))}
    return placed["cluster-agc-scheduler"], placed["cluster-agc-workers"]


def test_image_cluster_runs_scheduler_and_workers_in_the_image_with_the_facility_binds():
    c = ctx(overrides={"facility": {"port_base": 20000}})
    plain = clusters.render(c, "agc", ENTRY)
    wrapped = clusters.render(c, "agc", ENTRY.model_copy(update={"image": SIF}))
    bind = ",".join(binds(c))
    for p, w in zip(plain, wrapped):
        assert w.argv == ("apptainer", "exec", "--bind", bind, SIF, "dask", *p.argv[1:])
        assert w.image == SIF and w.ports == p.ports and w.env == p.env
    assert [s.name for s in wrapped] == ["cluster-agc-scheduler", "cluster-agc-worker-1", "cluster-agc-worker-2"]
    assert all("--nv" not in s.argv for s in wrapped)
    assert str(c.facility.workdir) in bind.split(",") and str(c.state.dir) in bind.split(",")


def image_env(tmp_path, image=SIF, packages=None) -> envs.Env:
    meta = {"prefix": ".", "image": image, "packages": packages or {"ipykernel": "6.29.5", "distributed": "2024.1.0"}}
    return envs.Env("img", "0123abcd", tmp_path / "0123abcd", meta, 0.0)


def test_image_kernel_runs_in_the_container_and_finds_afbox_client(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    env = image_env(tmp_path)
    assert env.python_argv(("/w",)) == ("apptainer", "exec", "--bind", "/w", SIF, "python")
    d = envs.write_kernelspec(env, tmp_path / "kernels", {"AFBOX_SCHEDULER": "tls://h:1"}, binds=("/work",))
    k = json.loads((d / "kernel.json").read_text())
    lib = str(tmp_path / "data" / "afbox" / "envs" / "pylib")
    assert k["argv"] == ["apptainer", "exec", "--bind", ",".join((*envs.client_binds(), "/work")), SIF, "python",
                         "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert envs.client_binds()[0] == lib and str(tmp_path / "state" / "afbox") in envs.client_binds()
    assert k["env"]["PYTHONPATH"] == lib and k["env"]["AFBOX_SCHEDULER"] == "tls://h:1"
    # a sif kept elsewhere is used where it is; an image without ipykernel gets no kernel
    assert image_env(tmp_path, "/home/me/a.sif").image.as_posix() == "/home/me/a.sif"
    assert envs.write_kernelspec(image_env(tmp_path, packages={"distributed": "1"}), tmp_path / "k2") is None


def test_image_sources_are_addressed_by_reference_and_others_keep_their_digests():
    a = envs.digest(envs.Source("image", image="docker://ghcr.io/a/b:1"), "", [])
    assert a != envs.digest(envs.Source("image", image="docker://ghcr.io/a/b:2"), "", [])
    # the key of a requirements environment is what it was before images existed
    import hashlib
    src = envs.Source("requirements", requirements=("dask==2024.1.0",))
    old = {"recipe": envs.RECIPE, "python": "3.11", "kind": "requirements", "requirements": ["dask==2024.1.0"],
           "lock": "", "added": []}
    assert envs.digest(src, "3.11", []) == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    return replace(hpc_ctx(), site={"allocation": ALLOC.to_dict()})


def test_on_slurm_a_named_cluster_is_its_scheduler_and_one_srun_step(recorded):
    sched, step = on_slurm(recorded, ENTRY.model_copy(update={"workers": 3}))
    assert sched.name == "cluster-agc-scheduler" and sched.argv[:2] == ("/envs/0123abcd/bin/dask", "scheduler")
    assert sched.url_dict["scheduler"] == "tls://10.0.0.1:23620"
    assert step.name == "cluster-agc-workers" and step.needs == ("cluster-agc-scheduler",)
    argv = step.argv
    assert argv[:2] == ("srun", "--jobid=77") and "--overlap" in argv and "--distribution=cyclic" in argv
    assert "--nodes=2" in argv and "--nodelist=n1,n2" in argv and "--ntasks=3" in argv
    launcher = argv[argv.index("afbox.backends.slurm.worker_task") + 1:argv.index("--")]
    assert launcher == ("--scheduler", "tls://10.0.0.1:23620", "--gpus", "0", "--name-prefix", "cluster-agc-")
    cmd = argv[argv.index("--") + 1:]
    assert cmd[:3] == ("/envs/0123abcd/bin/dask", "worker", "tls://10.0.0.1:23620")
    assert cmd[cmd.index("--nthreads") + 1] == "1" and "--tls-key" in cmd
    # healthy once the last task (n1's second) has joined the named scheduler
    assert step.health.port == 23621 and step.health.headers[0] == ("worker-name", "cluster-agc-77-n1-1")
    one = on_slurm(recorded, ENTRY.model_copy(update={"workers": 1}))[1].argv
    assert "--nodes=1" in one and "--nodelist=n1" in one
    names = [s.name for s in sb.place(recorded, clusters.recorded_specs(recorded, SimpleNamespace(clusters={"agc": ENTRY})))
             if s.name.startswith("cluster-")]
    assert names == ["cluster-agc-scheduler", "cluster-agc-workers"]


def test_on_slurm_an_image_clusters_workers_run_in_the_image_inside_the_step(recorded):
    sched, step = on_slurm(recorded, ENTRY.model_copy(update={"image": SIF}))
    assert sched.argv[:3] == ("apptainer", "exec", "--bind") and sched.argv[4:7] == (SIF, "dask", "scheduler")
    cmd = step.argv[step.argv.index("--") + 1:]
    assert cmd[:2] == ("apptainer", "exec") and cmd[4:8] == (SIF, "dask", "worker", "tls://10.0.0.1:23620")
    assert "--nv" not in cmd


def test_cyclic_names_match_the_launchers_and_the_default_step_is_unchanged():
    assert sb.cyclic_names("9", ("n1", "n2"), 3, "cluster-a-") == ["cluster-a-9-n1-0", "cluster-a-9-n2-0",
                                                                   "cluster-a-9-n1-1"]
    env = {"SLURMD_NODENAME": "n2", "SLURM_LOCALID": "0", "SLURM_JOB_ID": "9", "TMPDIR": "/scratch"}
    args, _ = slurm_worker.task_args(env, "10.0.0.1", 0, "", lambda h, i: "10.0.0.7", "cluster-a-")
    assert args[args.index("--name") + 1] == "cluster-a-9-n2-0"
    assert args[args.index("--local-directory") + 1] == "/scratch/afbox-cluster-a-9-n2-0"
    c = hpc_ctx()
    assert sb.launcher(c, 0)[3:8] == ("--scheduler", "tls://10.0.0.1:23006", "--gpus", "0", "--")


def test_placed_head_specs_survive_the_record_exactly():
    c = hpc_ctx()
    alloc = slurm.Allocation(job_id="77", nodes=("n1", "n2"), cpus_per_node=8, gpus_per_node=1, head="n1")
    placed = sb.place(c, render(c), alloc)
    assert specs_json.from_json(specs_json.to_json(placed)) == placed
