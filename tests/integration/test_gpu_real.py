"""GPU detection on real NVIDIA hardware, checked against `nvidia-smi -L`. Skips where there is none."""
from __future__ import annotations

import pytest

from afbox import gpu
from afbox.gpu import nvsmi as gpu_nvsmi
from afbox.errors import AfboxError
from afbox.run import run, which
from afbox.services.dask import gpu_env


class NoNvml:
    """Forces the nvidia-smi source, as on a host where libnvidia-ml cannot be loaded."""

    def nvmlInit(self):
        raise OSError("NVML disabled for this test")


@pytest.fixture(scope="module")
def listed():
    if which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU: nvidia-smi not found")
    try:
        out = run(["nvidia-smi", "-L"], timeout=30)
    except AfboxError as e:
        pytest.skip(f"no NVIDIA GPU: `nvidia-smi -L` failed: {' '.join([e.message, *e.details])[:300]}")
    entries = gpu_nvsmi.parse_list(out.stdout)
    if not entries:
        pytest.skip(f"no NVIDIA GPU: `nvidia-smi -L` lists none ({out.stdout.strip()[:200]!r})")
    return entries


def check_against_listing(report, listed):
    assert report.gpus, report.problems
    assert [(g.index, g.uuid, g.model) for g in report.gpus] == [(e.index, e.uuid, e.model) for e in listed]
    for g, e in zip(report.gpus, listed):
        assert g.vendor == "nvidia" and g.driver and g.memory_total and g.memory_total > 0
        if g.mig_mode == "enabled":
            ours = [(m.index, m.uuid, m.profile) for m in g.mig_devices]
            assert ours == [(m.index, m.uuid, m.profile) for m in e.migs]
    expected = sum(len(e.migs) if g.mig_mode == "enabled" else 1 for g, e in zip(report.gpus, listed))
    assert len(report.devices({})) == expected


def test_detect_agrees_with_nvidia_smi_list(listed):
    report = gpu.detect(env={}, timeout=30)
    assert report.source in ("nvml", "nvidia-smi")
    check_against_listing(report, listed)


def test_nvidia_smi_source_agrees_with_nvidia_smi_list(listed):
    report = gpu.detect(env={}, timeout=30, nvml=NoNvml())
    assert report.source == "nvidia-smi"
    check_against_listing(report, listed)


def test_live_samples_every_gpu(listed):
    report = gpu.detect(env={}, timeout=30)
    stats = gpu.live(report, timeout=30)
    assert sorted(stats.memory_used) == [g.index for g in report.gpus]
    assert all(used is None or used >= 0 for used in stats.memory_used.values())


def test_each_device_gets_a_worker_pinned_by_its_listed_uuid(listed):
    """What `afbox up` would give each GPU worker, against the UUIDs nvidia-smi -L prints."""
    report = gpu.detect(env={}, timeout=30)
    by_gpu = {e.index: e for e in listed}
    expected: list[str] = []
    for g in report.gpus:
        e = by_gpu[g.index]
        expected += [m.uuid for m in e.migs] if g.mig_mode == "enabled" else [e.uuid]
    assert [dict(gpu_env(d)) for d in report.devices({})] == [{"CUDA_VISIBLE_DEVICES": u} for u in expected]
