"""GPU-aware workers on a faked GPU host (recorded nvidia-smi output): real Dask workers, pinned by UUID."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness import dask_client, afbox, isolated_env, shared_tmpdir, status

pytestmark = pytest.mark.integration
FAKEBIN = Path(__file__).resolve().parent.parent / "fakebin"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gpu"


def gpu_env(fixture: str, port_base: int) -> tuple[dict, Path]:
    base = shared_tmpdir("afbox-gpu-")
    env = isolated_env(base, port_base)
    env["PATH"] = f"{FAKEBIN}:{env['PATH']}"
    env["AFBOX_FAKE_GPU"] = fixture
    for v in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        env.pop(v, None)
    cfg = base / "dask-only.toml"
    cfg.write_text("[jupyter]\nenabled = false\n\n[xcache]\nenabled = false\n")
    return env, cfg


def up(env, cfg, port_base, *extra, check=True):
    return afbox("up", "--profile", "ci", "--config", str(cfg), "--port-base", str(port_base),
                 "--workdir", str(Path(env["XDG_STATE_HOME"]).parent / "work"), *extra, env=env, check=check)


def expected_uuids(fixture: str) -> list[str]:
    """The GPUs' UUIDs as the recorded nvidia-smi output says them (not as afbox reads it)."""
    import xml.etree.ElementTree as ET
    return [g.findtext("uuid") for g in ET.parse(FIXTURES / f"{fixture}.xml").getroot().iter("gpu")]


@pytest.fixture(scope="module")
def two_gpus():
    env, cfg = gpu_env("rtx4090", 19700)
    out = up(env, cfg, 19700)
    yield env, out
    afbox("down", "--name", "ci", env=env, check=False)


def test_one_pinned_worker_per_gpu(two_gpus):

    env, out = two_gpus
    uuids = expected_uuids("rtx4090")
    assert len(uuids) == 2
    assert "2 GPU worker(s)" in out.stdout
    st = status(env, "ci")
    assert {s["name"] for s in st["services"]} >= {"dask-gpu-0", "dask-gpu-1", "dask-worker-1", "dask-worker-2"}
    assert all(s["health"] == "healthy" for s in st["services"])
    with dask_client(env) as c:
        workers = {w["id"]: addr for addr, w in c.scheduler_info()["workers"].items()}
        seen = c.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"), workers=[workers["gpu-0"], workers["gpu-1"]])
        assert sorted(seen.values()) == sorted(uuids)
        cpu_seen = c.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"), workers=[workers["dask-worker-1"]])
        assert list(cpu_seen.values()) == [None]
        info = c.scheduler_info()["workers"]
        assert info[workers["gpu-0"]]["resources"] == {"GPU": 1}
        assert info[workers["gpu-0"]]["nthreads"] == 1


def test_gpu_tasks_run_only_on_gpu_workers(two_gpus):
    from distributed import get_worker

    env, _ = two_gpus
    with dask_client(env) as c:
        futs = [c.submit(lambda i: (get_worker().name, os.environ.get("CUDA_VISIBLE_DEVICES")), i,
                         resources={"GPU": 1}, pure=False) for i in range(24)]
        ran = c.gather(futs)
    assert {name for name, _ in ran} <= {"gpu-0", "gpu-1"}
    assert all(visible and visible.startswith("GPU-") for _, visible in ran)


def test_status_json_lists_gpus(two_gpus):
    env, _ = two_gpus
    g = status(env, "ci")["gpus"]
    assert g["report"]["source"] == "nvidia-smi" and len(g["report"]["gpus"]) == 2
    assert g["workers"]["dask-gpu-0"]["label"] == "gpu-0"
    # live figures come from the (fake) tool's answer: the recorded utilisation of the 4090s
    rows = [line.split(",") for line in (FAKEBIN.parent / "fixtures" / "gpu" / "rtx4090.csv").read_text().splitlines()]
    assert g["live"]["source"] == "nvidia-smi"
    assert g["live"]["utilization"] == {r[0].strip(): float(r[1]) for r in rows}


@pytest.mark.parametrize("flag,expected", [("0", 0), ("1", 1)])
def test_gpus_flag_limits_gpu_workers(flag, expected):
    port = 20000 if flag == "0" else 20100
    env, cfg = gpu_env("rtx4090", port)
    try:
        up(env, cfg, port, "--gpus", flag)
        names = {s["name"] for s in status(env, "ci")["services"]}
        assert len([n for n in names if n.startswith("dask-gpu-")]) == expected
        assert {"dask-worker-1", "dask-worker-2"} <= names
    finally:
        afbox("down", "--name", "ci", env=env, check=False)


@pytest.mark.parametrize("fixture,text", [("hang", "timed out"), ("mismatch", "Driver/library version mismatch")])
def test_broken_driver_is_reported_and_cpu_workers_still_start(fixture, text):
    port = 20200 if fixture == "hang" else 20300
    env, cfg = gpu_env(fixture, port)
    try:
        t0 = time.monotonic()
        out = up(env, cfg, port)
        assert time.monotonic() - t0 < 60
        assert text in out.stdout
        names = {s["name"] for s in status(env, "ci")["services"]}
        assert not any(n.startswith("dask-gpu-") for n in names)
        assert {"dask-worker-1", "dask-worker-2"} <= names
    finally:
        afbox("down", "--name", "ci", env=env, check=False)
    doctor = afbox("doctor", env=env).stdout
    assert text in doctor
