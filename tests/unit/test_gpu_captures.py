"""GPU detection on real captured tool output (tests/fixtures/gpu/README.md names each source), served
by the fake nvidia-smi / rocm-smi, through to the worker layout `afbox up` renders: which variable
each GPU worker gets. Expected values are read from the capture itself, not from afbox."""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from afbox import gpu, services
from afbox.facility import load
from afbox.gpu.model import MIB
from afbox.services.context import Context
from afbox.services.sizing import DaskSize
from afbox.state import FacilityState

HERE = Path(__file__).resolve().parent
FAKEBIN = HERE.parent / "fakebin"
FIXTURES = HERE.parent / "fixtures" / "gpu"
NO_GPU_ROOT = str(FIXTURES / "sysfs-none")
GPU_VARS = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
pytestmark = pytest.mark.usefixtures("fresh_gpu_state")


class NoNvml:
    class NVMLError(Exception):
        value = 12  # NVML_ERROR_LIBRARY_NOT_FOUND

    def nvmlInit(self):
        raise self.NVMLError()


def detect(capture, path, root=NO_GPU_ROOT, timeout=10.0, **env):
    return gpu.detect(env={"AFBOX_FAKE_GPU": capture, **env}, timeout=timeout, path=path, root=root, nvml=NoNvml())


def layout(report, **env) -> dict[str, dict[str, str]]:
    """The GPU workers services.render makes for the devices this report offers, and their variables."""
    return {name: variables for name, (_, variables) in placed(report, **env).items()}


def placed(report, **env) -> dict[str, tuple[str, dict[str, str]]]:
    """Worker name -> (the device's label, the worker's GPU variables), as `afbox up` pairs them."""
    fac = load("ci", None, None)
    devices = tuple(report.devices(env or None))
    ctx = Context(facility=fac, state=FacilityState("ci"), dask=DaskSize(2, 1, 1024 * MIB), bin_dir="/venv/bin",
                  xrootd=None, xrootd_user=None, cache_dir=Path("/c/x"), xrootd_dir=Path("/c/r"), cache_size=MIB,
                  gpus=devices)
    workers = [s for s in services.render(ctx) if s.name.startswith("dask-gpu-")]
    assert [s.name for s in workers] == [f"dask-gpu-{k}" for k in range(len(devices))]
    return {s.name: (d.label, {k: v for k, v in s.env if k in GPU_VARS}) for s, d in zip(workers, devices)}


def recorded_xml(capture):
    """(uuid, minor, pci bus id, MiB total) per <gpu>, in document order, as nvidia-smi wrote them."""
    root = ET.parse(FIXTURES / f"{capture}.xml").getroot()
    return root, [(g.findtext("uuid"), g.findtext("minor_number"), g.findtext("pci/pci_bus_id"),
                   int(g.findtext("fb_memory_usage/total").split()[0])) for g in root.iter("gpu")]


def cuda(*uuids):
    return {f"dask-gpu-{k}": {"CUDA_VISIBLE_DEVICES": u} for k, u in enumerate(uuids)}


@pytest.mark.parametrize("capture, model, cc", [
    ("gtx1660ti-418", "Graphics Device", None),  # driver 418 did not know the Turing board's name
    ("quadro-p2000-525", "Quadro P2000", "6.1"),
    ("tesla-t4-515", "Tesla T4", "7.5"),
    ("a10g-515", "NVIDIA A10G", "8.6"),
    ("rtx3080-595", "NVIDIA GeForce RTX 3080", "8.6"),  # nvsmi_device_v13.dtd
    ("a5000x2-590", "NVIDIA RTX A5000", "8.6"),
    ("v100s-x8-460", "Tesla V100S-PCIE-32GB", "7.0"),
])
def test_whole_gpus_one_worker_each_pinned_by_uuid(bindir, capture, model, cc):
    report = detect(capture, bindir("nvidia-smi"))
    root, gpus = recorded_xml(capture)
    assert report.problems == [] and report.source == "nvidia-smi"
    assert [(g.uuid, g.memory_total) for g in report.gpus] == [(u, mib * MIB) for u, _, _, mib in gpus]
    assert {(g.model, g.compute_capability, g.driver, g.cuda_version) for g in report.gpus} == {
        (model, cc, root.findtext("driver_version"), root.findtext("cuda_version"))}
    assert layout(report) == cuda(*(u for u, *_ in gpus))


def test_index_is_not_the_minor_number(bindir):
    report = detect("a5000x2-590", bindir("nvidia-smi"))
    _, ((first, minor0, bus0, _), (second, minor1, bus1, _)) = recorded_xml("a5000x2-590")
    assert (minor0, minor1) == ("1", "0") and [g.minor for g in report.gpus] == [1, 0]
    # every variable counts nvidia-smi's index (= NVML's, PCI bus order): 0 is the first GPU, minor 1
    for name in ("NVIDIA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        assert layout(report, **{name: "0"}) == cuda(first), name
    assert layout(report, NVIDIA_VISIBLE_DEVICES=bus1) == cuda(second)
    assert layout(report, NVIDIA_VISIBLE_DEVICES=f"{second},{first}") == cuda(second, first)
    assert layout(report, NVIDIA_VISIBLE_DEVICES=second[:-1]) == {}  # the runtime wants the whole UUID
    assert layout(report, CUDA_VISIBLE_DEVICES=second[:-1]) == cuda(second)  # CUDA takes a unique prefix


def test_a_list_applied_before_afbox_looked_leaves_what_is_seen(bindir):
    # a device cgroup gave the job host GPUs 2 and 3; NVML renumbers them 0 and 1
    report = detect("a5000x2-590", bindir("nvidia-smi"))
    assert len(layout(report, SLURM_JOB_GPUS="2,3")) == 2
    # a container given host GPU 5 sees that one only
    (t4, *_), = recorded_xml("tesla-t4-515")[1:]
    assert layout(detect("tesla-t4-515", bindir("nvidia-smi")), NVIDIA_VISIBLE_DEVICES="5") == cuda(t4[0])
    # on the host itself (or a privileged container) the list still picks by index
    eight = detect("v100s-x8-460", bindir("nvidia-smi"))
    assert layout(eight, NVIDIA_VISIBLE_DEVICES="5") == cuda(recorded_xml("v100s-x8-460")[1][5][0])


def test_mig_without_uuids_gets_no_worker(bindir):
    # -q -x carries no MIG UUIDs; this capture has no -L, so the fake's -L fails
    report = detect("a100-80gb-mig-535", bindir("nvidia-smi"))
    (a100,) = report.gpus
    assert (a100.model, a100.mig_mode, a100.minor) == ("NVIDIA A100-SXM4-80GB", "enabled", 1)
    assert [(m.gpu_instance_id, m.memory_total) for m in a100.mig_devices] == [(3, 19968 * MIB), (4, 19968 * MIB),
                                                                                (5, 19968 * MIB), (6, 19968 * MIB)]
    assert report.devices() == [] and layout(report) == {}
    (problem,) = report.problems
    assert problem.startswith("nvidia-smi -L did not list the MIG UUIDs, so gpu-0-mig-0, gpu-0-mig-1, gpu-0-mig-2, "
                              "gpu-0-mig-3 get no worker")


def test_mig_listing_that_hangs_leaves_the_whole_gpus(bindir):
    start = time.monotonic()
    report = detect("a100-mig", bindir("nvidia-smi"), timeout=1.0, AFBOX_FAKE_GPU_LIST="hang")
    assert time.monotonic() - start < 1.0 + 2
    whole = [u for u, *_ in recorded_xml("a100-mig")[1][2:]]
    assert layout(report) == cuda(*whole)
    assert report.problems == ["nvidia-smi -L timed out, so gpu-0-mig-0, gpu-0-mig-1, gpu-0-mig-2, gpu-1-mig-0 "
                               "get no worker (pinned to the parent GPU, each would get the whole GPU)"]


def test_mig_with_listing_pins_each_instance(bindir):
    report = detect("a100-mig", bindir("nvidia-smi"))
    migs = [line.split("UUID: ")[1].rstrip(")") for line in (FIXTURES / "a100-mig.L.txt").read_text().splitlines()
            if "MIG-" in line]
    assert layout(report) == cuda(*migs, *(u for u, *_ in recorded_xml("a100-mig")[1][2:]))


def recorded_json(capture):
    return json.loads((FIXTURES / f"{capture}.json").read_text())


def rocr(*pins):
    return {f"dask-gpu-{k}": {"ROCR_VISIBLE_DEVICES": p, "HIP_VISIBLE_DEVICES": "0"} for k, p in enumerate(pins)}


def test_mi100_rocm6_0_lowercase_names_and_unique_ids(bindir):
    report = detect("mi100x4-rocm602", bindir("rocm-smi"))
    cards = recorded_json("mi100x4-rocm602")
    assert {g.model for g in report.gpus} == {cards["card0"]["Card series"]} == {"Arcturus GL-XL [Instinct MI100]"}
    uuids = [f"GPU-{int(cards[f'card{i}']['Unique ID'], 16):016x}" for i in range(4)]
    assert layout(report) == rocr(*uuids) and report.problems == []
    facts = gpu.render_table(report)[-1]
    assert f"amdgpu {cards['system']['Driver version']}" in facts and "driver " not in facts


def test_mi100_without_unique_id_or_topology_gets_no_worker(bindir):
    report = detect("mi100x6-rocm571", bindir("rocm-smi"))
    assert len(report.gpus) == 6 and {g.uuid for g in report.gpus} == {None} and layout(report) == {}
    (problem,) = report.problems
    assert problem.startswith("AMD GPU card 0, card 1, card 2, card 3, card 4, card 5: no unique ID")


def kfd_tree(root: Path, buses: list[int], missing_render: int | None = None) -> str:
    """A KFD topology as the kernel lays it out: CPU node 0, then one node per GPU in `buses` order,
    each from the real MI210 node's properties (sysfs-kfd-mi210x8) with this GPU's facts put in. The
    node order is made to differ from PCI order, as it does on that real host."""
    real = (FIXTURES / "sysfs-kfd-mi210x8/sys/class/kfd/kfd/topology/nodes")
    nodes = root / "sys/class/kfd/kfd/topology/nodes"
    (nodes / "0").mkdir(parents=True)
    (nodes / "0/properties").write_text((real / "0/properties").read_text())
    template = (real / "2/properties").read_text().splitlines()
    facts = lambda bus, n: {"location_id": bus << 8, "unique_id": 0, "gfx_target_version": 90008,  # MI100
                            "drm_render_minor": 128 + n}
    for n, bus in enumerate(buses):
        lines = [f"{k} {facts(bus, n).get(k, v)}" for k, v in (line.split(" ", 1) for line in template)]
        (nodes / str(n + 1)).mkdir()
        (nodes / str(n + 1) / "properties").write_text("\n".join(lines) + "\n")
    (root / "dev/dri").mkdir(parents=True)
    for n in range(len(buses)):
        if n != missing_render:
            (root / f"dev/dri/renderD{128 + n}").touch()
    return str(root)


MI100_NODE_ORDER = [0x3F, 0x1E, 0x49, 0x22, 0x46, 0x43]  # cards 0-5 are at 1E, 22, 3F, 43, 46, 49


def cards_in(order: list[int]) -> list[str]:
    """rocm-smi's labels of the MI100s at these PCI buses."""
    buses = [int(recorded_json("mi100x6-rocm571")[f"card{i}"]["PCI Bus"][5:7], 16) for i in range(6)]
    return [f"gpu-{buses.index(b)}" for b in order]


def test_mi100_without_unique_id_is_pinned_by_rocr_order(bindir, tmp_path):
    report = detect("mi100x6-rocm571", bindir("rocm-smi"), root=kfd_tree(tmp_path, MI100_NODE_ORDER))
    # worker k gets ROCr's device k, which is the GPU on KFD node k+1, not rocm-smi's card k
    expected = {f"dask-gpu-{k}": (card, {"ROCR_VISIBLE_DEVICES": str(k), "HIP_VISIBLE_DEVICES": "0"})
                for k, card in enumerate(cards_in(MI100_NODE_ORDER))}
    assert placed(report) == expected and cards_in(MI100_NODE_ORDER) == ["gpu-2", "gpu-0", "gpu-5", "gpu-1",
                                                                          "gpu-4", "gpu-3"]
    assert {g.compute_capability for g in report.gpus} == {"gfx908"} and report.problems == []
    # ROCR_VISIBLE_DEVICES=0 is ROCr's first GPU: KFD node 1, at 3F, which rocm-smi calls card 2
    assert [d.label for d in report.devices({"ROCR_VISIBLE_DEVICES": "0"})] == ["gpu-2"]
    assert [d.label for d in report.devices({"ROCR_VISIBLE_DEVICES": "1,0", "HIP_VISIBLE_DEVICES": "1"})] == ["gpu-2"]


def test_amd_gpu_whose_render_node_is_not_there_is_left_out(bindir, tmp_path):
    report = detect("mi100x6-rocm571", bindir("rocm-smi"), root=kfd_tree(tmp_path, MI100_NODE_ORDER, missing_render=0))
    # the node at 3F (card 2) is gone for ROCr, so the others move up one
    expected = {f"dask-gpu-{k}": (card, {"ROCR_VISIBLE_DEVICES": str(k), "HIP_VISIBLE_DEVICES": "0"})
                for k, card in enumerate(cards_in(MI100_NODE_ORDER[1:]))}
    assert placed(report) == expected
    (problem,) = report.problems
    assert problem.startswith("AMD GPU card 2 (/dev/dri/renderD128): this process cannot open the render node")


@pytest.mark.parametrize("capture, model, gfx", [
    ("rx6700xt-rocm430", "AMD GPU 67XA6S", None),  # ROCm 4.3 writes the vendor id as the series
    ("rx6700xt-rocm612", "Navi 22 [Radeon RX 6700/6700 XT / 6800M]", "gfx1031"),
])
def test_one_consumer_card_without_unique_id(bindir, tmp_path, capture, model, gfx):
    (tmp_path / "opt/rocm/.info").mkdir(parents=True)
    (tmp_path / "opt/rocm/.info/version").write_text("6.1.2-119\n")
    report = detect(capture, bindir("rocm-smi"), root=str(tmp_path))
    (card,) = report.gpus
    assert (card.model, card.compute_capability, card.uuid, card.rocm_version) == (model, gfx, None, "6.1.2-119")
    assert layout(report) == rocr("0") and report.problems == []
    assert "ROCm 6.1.2-119" in gpu.render_table(report)[-1]


def test_rocm_release_from_where_rocm_smi_is_installed(tmp_path):
    bin_dir = tmp_path / "rocm-6.0.2" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "rocm-smi").write_text(f'#!/bin/sh\nexec {FAKEBIN}/rocm-smi "$@"\n')
    (bin_dir / "rocm-smi").chmod(0o755)
    report = detect("mi100x4-rocm602", str(bin_dir))
    assert {g.rocm_version for g in report.gpus} == {"6.0.2"}


def test_numbers_in_cuda_visible_devices_with_mixed_models_are_flagged(bindir):
    t4 = detect("tesla-t4-515", bindir("nvidia-smi")).gpus
    a10g = detect("a10g-515", bindir("nvidia-smi")).gpus
    mixed = gpu.GpuReport(gpus=t4 + a10g, visibility={"CUDA_VISIBLE_DEVICES": "1"})
    (problem,) = gpu._order_problem(mixed, "FASTEST_FIRST")
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in problem
    assert gpu._order_problem(mixed, "PCI_BUS_ID") == []
    assert gpu._order_problem(gpu.GpuReport(gpus=t4 + t4, visibility={"CUDA_VISIBLE_DEVICES": "1"}), "") == []


def test_workers_of_a_record_written_before_pins_render_as_they_run():
    from afbox.gpu.model import Device
    from afbox.services.dask import gpu_env
    old = {"label": "gpu-1", "uuid": None, "model": "AMD GPU", "memory": None, "vendor": "amd", "gpu_index": 1,
           "mig_index": None, "mig_profile": None}
    assert gpu_env(Device(**old)) == (("ROCR_VISIBLE_DEVICES", "1"),)
    assert gpu_env(Device(**{**old, "vendor": "nvidia", "uuid": "GPU-1"})) == (("CUDA_VISIBLE_DEVICES", "GPU-1"),)
