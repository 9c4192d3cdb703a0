"""The pure parsers: nvidia-smi XML / -L / CSV, rocm-smi JSON, and the sysfs scan."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from afbox.gpu import nvsmi as gpu_nvsmi
from afbox.gpu import rocm as gpu_rocm
from afbox.gpu import sysfs as gpu_sysfs
from afbox.gpu.model import MIB

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gpu"


@pytest.mark.parametrize("text, expected", [
    ("81559 MiB", 81559 * MIB), ("0 MiB", 0), ("1.5 GiB", 1536 * MIB), ("512 KiB", 512 * 1024), ("1024", 1024 * MIB),
    ("N/A", None), ("[N/A]", None), ("[Not Supported]", None), ("", None), (None, None),
])
def test_parse_bytes(text, expected):
    assert gpu_nvsmi.parse_bytes(text) == expected


@pytest.mark.parametrize("text, expected", [("35 %", 35.0), ("0 %", 0.0), ("87", 87.0), ("N/A", None), ("[N/A]", None)])
def test_parse_percent(text, expected):
    assert gpu_nvsmi.parse_percent(text) == expected


@pytest.mark.parametrize("model, cc", [
    ("NVIDIA A100-SXM4-40GB", "8.0"), ("NVIDIA A100 80GB PCIe", "8.0"), ("NVIDIA A10", "8.6"), ("NVIDIA A10G", "8.6"),
    ("NVIDIA H100 80GB HBM3", "9.0"), ("NVIDIA GH200 480GB", "9.0"), ("Tesla T4", "7.5"),
    ("Tesla V100-SXM2-32GB", "7.0"),
    ("NVIDIA GeForce RTX 4090", "8.9"), ("NVIDIA RTX 6000 Ada Generation", "8.9"), ("Quadro RTX 6000", "7.5"),
    ("NVIDIA RTX A6000", "8.6"), ("NVIDIA L4", "8.9"), ("NVIDIA L40S", "8.9"), ("Tesla P100-PCIE-16GB", "6.0"),
    ("NVIDIA B200", "10.0"), ("Some Future GPU", None),
    # product names as recorded captures spell them (see tests/fixtures/gpu/README.md)
    ("Quadro P2000", "6.1"), ("Quadro P400", "6.1"), ("GRID P4-1Q", "6.1"), ("NVIDIA GeForce GT 1030", "6.1"),
    ("GeForce GTX 1070 Ti", "6.1"), ("Tesla V100S-PCIE-32GB", "7.0"), ("NVIDIA RTX 4000 SFF Ada Generation", "8.9"),
    ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "12.0"), ("NVIDIA GeForce RTX 2080", "7.5"),
    ("GeForce GTX TITAN X", None),  # Maxwell, 5.2: not known, rather than wrong
])
def test_compute_capability_from_product_name(model, cc):
    assert gpu_nvsmi.compute_capability(model) == cc


def test_compute_capability_from_an_architecture_with_one():
    assert gpu_nvsmi.compute_capability("Graphics Device", "Turing") == "7.5"
    assert gpu_nvsmi.compute_capability("Graphics Device", "Ampere") is None  # 8.0 or 8.6
    assert gpu_nvsmi.compute_capability("Graphics Device") is None


def test_parse_xml_reads_every_gpu_in_index_order():
    gpus = gpu_nvsmi.parse_xml((FIXTURES / "a100-mig.xml").read_text())
    assert [g.index for g in gpus] == list(range(8))
    assert [g.minor for g in gpus] == list(range(8))
    assert [g.pci_bus_id[-7:] for g in gpus] == ["07:00.0", "0F:00.0", "47:00.0", "4E:00.0",
                                                "87:00.0", "90:00.0", "B7:00.0", "BD:00.0"]
    mig = gpus[0].mig_devices[0]
    # -q -x has no MIG UUIDs or profile names: those come from -L
    assert (mig.index, mig.uuid, mig.profile, mig.gpu_instance_id, mig.compute_instance_id) == (0, None, None, 1, 0)
    assert (mig.memory_total, mig.memory_used) == (19968 * MIB, 1037 * MIB)
    assert gpus[0].memory_used == 1049 * MIB and gpus[3].utilization == 12.0


def test_parse_xml_rejects_what_is_not_nvidia_smi_xml():
    with pytest.raises(ValueError, match="not XML"):
        gpu_nvsmi.parse_xml("Failed to initialize NVML: Driver/library version mismatch")
    with pytest.raises(ValueError, match="<html>"):
        gpu_nvsmi.parse_xml("<html/>")


def test_parse_xml_without_gpus():
    assert gpu_nvsmi.parse_xml("<nvidia_smi_log><attached_gpus>0</attached_gpus></nvidia_smi_log>") == []


def test_parse_list():
    listed = gpu_nvsmi.parse_list((FIXTURES / "a100-mig.L.txt").read_text())
    assert [(e.index, e.model) for e in listed] == [(i, "NVIDIA A100-SXM4-40GB") for i in range(8)]
    assert [(m.index, m.profile) for m in listed[0].migs] == [(0, "3g.20gb"), (1, "1g.5gb"), (2, "1g.5gb")]
    assert listed[1].migs[0].uuid.startswith("MIG-") and listed[2].migs == []
    assert gpu_nvsmi.parse_list("No devices were found\n") == []


def test_merge_list_matches_by_gpu_uuid_not_position():
    gpus = gpu_nvsmi.parse_xml((FIXTURES / "a100-mig.xml").read_text())
    listed = gpu_nvsmi.parse_list((FIXTURES / "a100-mig.L.txt").read_text())
    gpu_nvsmi.merge_list(gpus, list(reversed(listed)))
    assert [m.uuid for m in gpus[0].mig_devices] == [m.uuid for m in listed[0].migs]
    assert gpus[1].mig_devices[0].profile == "7g.40gb"


def test_parse_live_csv():
    rows = gpu_nvsmi.parse_live((FIXTURES / "a100-mig.csv").read_text())
    assert rows[0] == (None, 1049 * MIB) and rows[2] == (87.0, 30211 * MIB) and len(rows) == 8


def test_rocm_cards_sort_numerically_and_tolerate_noise():
    card = {"VRAM Total Memory (B)": "N/A", "Unique ID": "N/A"}
    data = {f"card{i}": {"Card Series": f"GPU {i}", **card} for i in (10, 2, 1)}
    text = "WARNING: some rocm-smi versions log to stdout first\n" + json.dumps(data)
    gpus = gpu_rocm.parse(text)
    assert [(g.index, g.model) for g in gpus] == [(1, "GPU 1"), (2, "GPU 2"), (10, "GPU 10")]
    assert gpus[0].memory_total is None and gpus[0].uuid is None and gpus[0].driver is None


def test_rocm_model_falls_back_to_the_sku_never_to_a_pci_id():
    (g,) = gpu_rocm.parse(json.dumps({"card0": {"Card Series": "N/A", "Card SKU": "D65209"}}))
    assert g.model == "AMD GPU D65209"
    (g,) = gpu_rocm.parse(json.dumps({"card0": {"Card Model": "0x740c"}}))
    assert g.model == "AMD GPU"


def test_rocm_unique_id_becomes_the_uuid_rocr_accepts():
    (g,) = gpu_rocm.parse(json.dumps({"card0": {"Unique ID": "0xbb1438f18d36ec5"}}))
    assert g.uuid == "GPU-0bb1438f18d36ec5"


def test_rocm_empty_or_broken_output():
    assert gpu_rocm.parse("") == []
    with pytest.raises(ValueError):
        gpu_rocm.parse("{not json")


def test_sysfs_nvidia_with_module_loaded():
    (t4,) = gpu_sysfs.scan(str(FIXTURES / "sysfs-nvidia-t4"))
    assert (t4.address, t4.vendor, t4.driver, t4.model) == ("0000:3b:00.0", "nvidia", "nvidia", "Tesla T4")


def test_sysfs_nvidia_under_nouveau_skips_its_audio_function():
    (gpu,) = gpu_sysfs.scan(str(FIXTURES / "sysfs-nvidia-nouveau"))
    assert (gpu.address, gpu.driver, gpu.model) == ("0000:01:00.0", "nouveau", None)


def test_sysfs_amd_accelerators_and_rocm_version():
    root = str(FIXTURES / "sysfs-amd-mi250x")
    assert [(g.address, g.vendor, g.driver) for g in gpu_sysfs.scan(root)] == [
        ("0000:c1:00.0", "amd", "amdgpu"), ("0000:c6:00.0", "amd", "amdgpu")]
    assert gpu_sysfs.rocm_version(root) == "6.2.1-112"


def test_sysfs_without_gpus(tmp_path):
    assert gpu_sysfs.scan(str(FIXTURES / "sysfs-none")) == []
    assert gpu_sysfs.scan(str(tmp_path)) == [] and gpu_sysfs.rocm_version(str(tmp_path)) is None


def test_sysfs_falls_back_to_drm_when_the_pci_bus_is_hidden(tmp_path):
    card = tmp_path / "sys/class/drm/card1/device"
    card.mkdir(parents=True)
    (card / "vendor").write_text("0x10de\n")
    (card / "class").write_text("0x030200\n")
    (gpu,) = gpu_sysfs.scan(str(tmp_path))
    assert (gpu.address, gpu.vendor) == ("card1", "nvidia")


@pytest.mark.parametrize("capture, profiles", [
    ("h100-mig-590", ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]),
    ("h200-mig-590", ["1c.3g.71gb", "2c.3g.71gb", "2g.35gb", "1g.18gb", "1g.18gb"]),  # CIs sharing a GI
])
def test_parse_list_of_real_mig_hosts(capture, profiles):
    (gpu,) = gpu_nvsmi.parse_list((FIXTURES / f"{capture}.L.txt").read_text())
    assert [(m.index, m.profile) for m in gpu.migs] == list(enumerate(profiles))
    assert all(m.uuid.startswith("MIG-") for m in gpu.migs) and gpu.uuid.startswith("GPU-")


@pytest.mark.parametrize("capture, model, gfx, uuid, rocr_index", [
    # ROCm <= 6.0 spells "Card series"; 4.3 puts the vendor id there; 6.1 adds Node ID and GFX Version
    ("mi100x6-rocm571", "Arcturus GL-XL [Instinct MI100]", None, None, None),
    ("mi100x4-rocm602", "Arcturus GL-XL [Instinct MI100]", None, "GPU-79ccd55167a2124a", None),
    ("rx6700xt-rocm430", "AMD GPU 67XA6S", None, None, 0),
    ("rx6700xt-rocm612", "Navi 22 [Radeon RX 6700/6700 XT / 6800M]", "gfx1031", None, 0),
    ("vega10-xt", "AMD GPU D05101", None, "GPU-02150e7d042a1124", 0),
])
def test_rocm_smi_spellings_across_versions(capture, model, gfx, uuid, rocr_index):
    first = gpu_rocm.parse((FIXTURES / f"{capture}.json").read_text())[0]
    assert (first.model, first.compute_capability, first.uuid, first.rocr_index) == (model, gfx, uuid, rocr_index)


def test_kfd_topology_of_a_real_mi210_host_is_not_in_pci_order():
    kfd = gpu_sysfs.kfd_gpus(str(FIXTURES / "sysfs-kfd-mi210x8"))
    assert [k.node for k in kfd] == list(range(2, 10))  # nodes 0 and 1 are the CPUs
    buses = [k.address[5:7] for k in kfd]
    assert buses == ["63", "43", "03", "26", "e3", "c3", "83", "a3"]
    assert buses != sorted(buses)  # rocm-smi numbers its cards in this sorted order since ROCm 6.0
    assert {k.gfx for k in kfd} == {"gfx90a"} and all(k.unique_id and k.usable for k in kfd)
    assert kfd[0].render_node == "/dev/dri/renderD128"
