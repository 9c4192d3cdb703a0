"""Narrowing devices by CUDA/NVIDIA/ROCR/HIP visibility variables and SLURM's GPU lists."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from afbox.gpu import nvsmi as gpu_nvsmi
from afbox.gpu import rocm as gpu_rocm
from afbox.gpu.visible import visible_devices

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gpu"


@pytest.fixture(scope="module")
def a100():
    """8 A100s: GPU 0 MIG 3g.20gb + 2x 1g.5gb, GPU 1 MIG 7g.40gb, GPUs 2-7 whole."""
    gpus = gpu_nvsmi.parse_xml((FIXTURES / "a100-mig.xml").read_text())
    gpu_nvsmi.merge_list(gpus, gpu_nvsmi.parse_list((FIXTURES / "a100-mig.L.txt").read_text()))
    return gpus


@pytest.fixture(scope="module")
def mi250x():
    return gpu_rocm.parse((FIXTURES / "mi250x.json").read_text())


def labels(gpus, **env):
    return [d.label for d in visible_devices(gpus, env)]


ALL_A100 = ["gpu-0-mig-0", "gpu-0-mig-1", "gpu-0-mig-2", "gpu-1-mig-0"] + [f"gpu-{i}" for i in range(2, 8)]


def test_unset_means_everything(a100):
    assert labels(a100) == ALL_A100


@pytest.mark.parametrize("value", ["", " ", "none", "void", "NoNe"])
@pytest.mark.parametrize("name", ["CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"])
def test_empty_none_void_mean_no_device(a100, name, value):
    assert labels(a100, **{name: value}) == []


@pytest.mark.parametrize("name", ["CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"])
def test_all(a100, name):
    assert labels(a100, **{name: "all"}) == ALL_A100


def test_indices_keep_their_order_and_a_mig_gpu_brings_its_instances(a100):
    assert labels(a100, CUDA_VISIBLE_DEVICES="3,2") == ["gpu-3", "gpu-2"]
    assert labels(a100, CUDA_VISIBLE_DEVICES="0") == ["gpu-0-mig-0", "gpu-0-mig-1", "gpu-0-mig-2"]


def test_an_invalid_entry_ends_the_list_as_in_cuda(a100):
    assert labels(a100, CUDA_VISIBLE_DEVICES="2,9,3") == ["gpu-2"]
    assert labels(a100, CUDA_VISIBLE_DEVICES="bogus,2") == []


def test_uuids_and_unique_prefixes(a100):
    mig = a100[0].mig_devices[1].uuid
    assert labels(a100, CUDA_VISIBLE_DEVICES=mig) == ["gpu-0-mig-1"]
    assert labels(a100, CUDA_VISIBLE_DEVICES=f"{a100[4].uuid[:12]},{mig[:13]}") == ["gpu-4", "gpu-0-mig-1"]
    assert labels(a100, CUDA_VISIBLE_DEVICES="GPU-") == []  # ambiguous prefix: invalid


def test_pre_r470_mig_names(a100):
    assert labels(a100, CUDA_VISIBLE_DEVICES=f"MIG-{a100[0].uuid}/10/0") == ["gpu-0-mig-2"]


def test_container_runtime_list_then_cuda_indexes_into_it(a100):
    assert labels(a100, NVIDIA_VISIBLE_DEVICES="4,5", CUDA_VISIBLE_DEVICES="1") == ["gpu-5"]
    assert labels(a100, NVIDIA_VISIBLE_DEVICES="0:1,1:0") == ["gpu-0-mig-1", "gpu-1-mig-0"]


def test_global_lists_count_nvidia_smi_indices_not_minor_numbers(a100):
    swapped = [dataclasses.replace(g, minor=7 - g.index) for g in a100]
    assert labels(swapped, SLURM_JOB_GPUS="6,7") == ["gpu-6", "gpu-7"]
    assert labels(swapped, NVIDIA_VISIBLE_DEVICES="2") == ["gpu-2"]


def test_global_lists_already_applied_leave_every_gpu_seen(a100):
    # a device cgroup or container runtime kept host GPUs 4-7; NVML numbers them 0-3
    hidden = [dataclasses.replace(g, index=i) for i, g in enumerate(a100[4:])]
    assert labels(hidden, SLURM_JOB_GPUS="4-7") == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    assert labels(hidden, NVIDIA_VISIBLE_DEVICES="7,6,5,4") == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    assert labels(hidden, NVIDIA_VISIBLE_DEVICES="4,5,6,7", CUDA_VISIBLE_DEVICES="2") == ["gpu-2"]
    assert labels(hidden, NVIDIA_VISIBLE_DEVICES=a100[5].uuid) == ["gpu-1"]  # UUIDs need no guessing


def test_pci_bus_ids_in_the_container_runtime_list(a100):
    assert labels(a100, NVIDIA_VISIBLE_DEVICES="0:47:00.0,00000000:4e:00.0") == ["gpu-2", "gpu-3"]
    assert labels(a100, CUDA_VISIBLE_DEVICES="00000000:47:00.0") == []  # CUDA takes no bus IDs


def test_slurm_lists(a100):
    assert labels(a100, SLURM_JOB_GPUS="6,7") == ["gpu-6", "gpu-7"]
    assert labels(a100, SLURM_JOB_GPUS="5-7") == ["gpu-5", "gpu-6", "gpu-7"]
    assert labels(a100, SLURM_JOB_GPUS="2,3", SLURM_STEP_GPUS="3") == ["gpu-3"]
    assert labels(a100, SLURM_JOB_GPUS="2,3", CUDA_VISIBLE_DEVICES="4") == ["gpu-4"]  # what SLURM exported wins
    assert labels(a100, GPU_DEVICE_ORDINAL="7") == ["gpu-7"]


def test_amd_visibility(mi250x):
    assert len(labels(mi250x)) == 8
    assert labels(mi250x, ROCR_VISIBLE_DEVICES="2,3", HIP_VISIBLE_DEVICES="1") == ["gpu-3"]
    assert labels(mi250x, ROCR_VISIBLE_DEVICES=mi250x[5].uuid) == ["gpu-5"]
    assert labels(mi250x, ROCR_VISIBLE_DEVICES=mi250x[5].uuid.upper()[:12]) == ["gpu-5"]  # ROCr upper-cases both
    assert labels(mi250x, CUDA_VISIBLE_DEVICES="6") == ["gpu-6"]  # HIP honours it too
    assert labels(mi250x, HIP_VISIBLE_DEVICES="0", CUDA_VISIBLE_DEVICES="6") == ["gpu-0"]
    assert len(labels(mi250x, NVIDIA_VISIBLE_DEVICES="none")) == 8  # not an AMD variable
    assert labels(mi250x, ROCR_VISIBLE_DEVICES="") == []


def test_vendors_are_narrowed_separately(a100, mi250x):
    mixed = a100[2:4] + [dataclasses.replace(g, index=g.index + 2) for g in mi250x[:2]]
    assert labels(mixed, CUDA_VISIBLE_DEVICES="1", HIP_VISIBLE_DEVICES="0") == ["gpu-3", "gpu-2"]
    assert labels(mixed, NVIDIA_VISIBLE_DEVICES="none") == ["gpu-2", "gpu-3"]
