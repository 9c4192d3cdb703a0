"""The NVML source, driven by a pynvml stand-in that answers with the recorded fixture values."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from afbox import gpu
from afbox.gpu import nvml as gpu_nvml
from afbox.gpu.model import MIB

HERE = Path(__file__).resolve().parent
FAKEBIN = HERE.parent / "fakebin"
FIXTURES = HERE.parent / "fixtures" / "gpu"
NO_GPU_ROOT = str(FIXTURES / "sysfs-none")
pytestmark = pytest.mark.usefixtures("fresh_gpu_state")
NOT_SUPPORTED, NOT_FOUND, GPU_IS_LOST = 3, 6, 15
RECORDED_CC = {"A100": (8, 0), "H100": (9, 0), "T4": (7, 5), "RTX 4090": (8, 9)}  # nvmlDeviceGetCudaComputeCapability


class FakeNvml:
    """Just the pynvml functions afbox calls, answering from tests/fixtures/gpu/<name>.xml and .L.txt."""

    class NVMLError(Exception):
        def __init__(self, value):
            super().__init__({12: "NVML Shared Library Not Found", 18: "RM has detected an NVML/RM version mismatch.",
                              9: "Driver Not Loaded", 15: "GPU is lost"}.get(value, f"NVML error {value}"))
            self.value = value

    def __init__(self, name, init_error=None, lost=()):
        root = ET.parse(FIXTURES / f"{name}.xml").getroot()
        listing = (FIXTURES / f"{name}.L.txt").read_text()
        mig_uuids = re.findall(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)", listing, re.MULTILINE)
        self.driver, self.cuda = root.findtext("driver_version"), root.findtext("cuda_version")
        self.gpus = [el for el in root.findall("gpu")]
        self.migs = {}  # (gpu, slot) -> (element, profile, uuid); slots are sparse, as NVML's are
        it = iter(mig_uuids)
        for i, el in enumerate(self.gpus):
            for j, mig in enumerate(el.findall("mig_devices/mig_device")):
                profile, _, uuid = next(it)
                self.migs[(i, j * 2)] = (mig, profile, uuid)
        self.init_error, self.lost, self.calls = init_error, set(lost), Counter()

    def __getattribute__(self, name):
        if name.startswith("nvml"):
            object.__getattribute__(self, "calls")[name] += 1
        return object.__getattribute__(self, name)

    def nvmlInit(self):
        if self.init_error:
            raise self.NVMLError(self.init_error)

    def nvmlShutdown(self):
        pass

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):
        major, minor = self.cuda.split(".")
        return int(major) * 1000 + int(minor) * 10

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        if i in self.lost:
            raise self.NVMLError(GPU_IS_LOST)
        return ("gpu", i)

    def _el(self, h):
        return self.gpus[h[1]] if h[0] == "gpu" else self.migs[(h[1], h[2])][0]

    def nvmlDeviceGetName(self, h):
        name = self.gpus[h[1]].findtext("product_name")
        return name if h[0] == "gpu" else f"{name} MIG {self.migs[(h[1], h[2])][1]}"

    def nvmlDeviceGetUUID(self, h):
        return self.gpus[h[1]].findtext("uuid") if h[0] == "gpu" else self.migs[(h[1], h[2])][2]

    def nvmlDeviceGetMemoryInfo(self, h):
        mib = lambda tag: int(self._el(h).findtext(f"fb_memory_usage/{tag}").split()[0]) * MIB
        return SimpleNamespace(total=mib("total"), used=mib("used"), free=mib("free"))

    def nvmlDeviceGetUtilizationRates(self, h):
        util = self._el(h).findtext("utilization/gpu_util")
        if util == "N/A":
            raise self.NVMLError(NOT_SUPPORTED)
        return SimpleNamespace(gpu=int(util.split()[0]), memory=0)

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return next(cc for key, cc in RECORDED_CC.items() if key in self.nvmlDeviceGetName(h))

    def nvmlDeviceGetMigMode(self, h):
        mode = self._el(h).findtext("mig_mode/current_mig")
        if mode == "N/A":
            raise self.NVMLError(NOT_SUPPORTED)
        return (1, 1) if mode == "Enabled" else (0, 0)

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, slot):
        if (h[1], slot) not in self.migs:
            raise self.NVMLError(NOT_FOUND)
        return ("mig", h[1], slot)

    def nvmlDeviceGetGpuInstanceId(self, h):
        return int(self._el(h).findtext("gpu_instance_id"))

    def nvmlDeviceGetComputeInstanceId(self, h):
        return int(self._el(h).findtext("compute_instance_id"))

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=self._el(h).findtext("pci/pci_bus_id").encode())  # bytes, as older pynvml

    def nvmlDeviceGetMinorNumber(self, h):
        return int(self._el(h).findtext("minor_number"))






def test_nvml_reads_the_same_as_nvidia_smi(bindir):
    by_nvml = gpu.detect(env={}, path=bindir(), root=NO_GPU_ROOT, nvml=FakeNvml("a100-mig"))
    by_smi = gpu.detect(env={"AFBOX_FAKE_GPU": "a100-mig"}, path=bindir("nvidia-smi"), root=NO_GPU_ROOT,
                        nvml=FakeNvml("a100-mig", init_error=12))
    assert (by_nvml.source, by_smi.source) == ("nvml", "nvidia-smi")
    strip = lambda report: [{**g.to_dict(), "source": None} for g in report.gpus]
    assert strip(by_nvml) == strip(by_smi)
    assert by_nvml.devices() == by_smi.devices() and len(by_nvml.devices()) == 10
    assert by_nvml.problems == []


def test_nvml_comes_before_nvidia_smi(bindir):
    report = gpu.detect(env={"AFBOX_FAKE_GPU": "t4"}, path=bindir("nvidia-smi", "rocm-smi"), root=NO_GPU_ROOT,
                        nvml=FakeNvml("h100"))
    assert report.source == "nvml" and [g.model for g in report.gpus] == ["NVIDIA H100 80GB HBM3"]
    assert report.gpus[0].compute_capability == "9.0" and report.gpus[0].cuda_version == "12.4"


def test_consumer_gpu_without_mig_support(bindir):
    report = gpu.detect(env={}, path=bindir(), root=NO_GPU_ROOT, nvml=FakeNvml("rtx4090"))
    assert [(g.mig_mode, g.utilization) for g in report.gpus] == [(None, 9.0), (None, 0.0)]


def test_library_not_found_falls_back_to_nvidia_smi(bindir):
    report = gpu.detect(env={"AFBOX_FAKE_GPU": "t4"}, path=bindir("nvidia-smi"), root=NO_GPU_ROOT,
                        nvml=FakeNvml("h100", init_error=12))
    assert report.source == "nvidia-smi" and report.gpus[0].model == "Tesla T4" and report.problems == []


def test_version_mismatch_in_nvml_is_a_problem_and_skips_nvidia_smi(bindir):
    fake = FakeNvml("h100", init_error=18)
    report = gpu.detect(env={"AFBOX_FAKE_GPU": "t4"}, path=bindir("nvidia-smi"), root=str(FIXTURES / "sysfs-nvidia-t4"),
                        nvml=fake)
    assert report.gpus == [] and report.source is None
    assert report.problems == [("NVIDIA GPU present (sysfs: Tesla T4) but the driver is unusable: Failed to initialize "
                                "NVML: Driver/library version mismatch — reboot or reinstall the driver")]


def test_driver_not_loaded_is_quiet_without_a_gpu_on_the_bus(bindir):
    assert gpu.detect(env={}, path=bindir(), root=NO_GPU_ROOT, nvml=FakeNvml("t4", init_error=9)).problems == []
    (problem,) = gpu.detect(env={}, path=bindir(), root=str(FIXTURES / "sysfs-nvidia-t4"),
                            nvml=FakeNvml("t4", init_error=9)).problems
    assert "NVIDIA driver is not loaded" in problem and "modprobe nvidia" in problem


def test_a_lost_gpu_is_left_out_with_a_problem(bindir):
    report = gpu.detect(env={}, path=bindir(), root=NO_GPU_ROOT, nvml=FakeNvml("a100-mig", lost={3}))
    assert [g.index for g in report.gpus] == [0, 1, 2, 4, 5, 6, 7]
    assert report.problems == ["NVML cannot open GPU 3: GPU is lost; it is ignored"]


def test_live_keeps_nvml_open_and_its_handles(bindir):
    fake = FakeNvml("a100-mig")
    report = gpu.detect(env={}, path=bindir(), root=NO_GPU_ROOT, nvml=fake)
    handles_at_detection = fake.calls["nvmlDeviceGetHandleByIndex"]
    first = gpu.live(report, nvml=fake)
    second = gpu.live(report, nvml=fake)
    assert first.source == "nvml" and first.utilization[2] == 87.0 and first.utilization[0] is None
    assert second.memory_used[3] == 8096 * MIB
    assert fake.calls["nvmlInit"] == 1
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == handles_at_detection + 8  # once, then reused


def test_shutdown_releases_nvml_and_the_next_use_reopens_it(bindir):
    fake = FakeNvml("t4")
    report = gpu.detect(env={}, path=bindir(), root=NO_GPU_ROOT, nvml=fake)
    gpu_nvml.shutdown()
    assert fake.calls["nvmlShutdown"] == 1
    assert gpu.live(report, nvml=fake).utilization == {0: 0.0} and fake.calls["nvmlInit"] == 2


def test_live_survives_the_driver_going_away(bindir):
    fake = FakeNvml("h100")
    report = gpu.detect(env={}, path=bindir(), root=NO_GPU_ROOT, nvml=fake)
    fake.lost = {0}
    stats = gpu.live(report, nvml=fake)
    assert stats.source == "nvml" and stats.utilization == {}


def test_on_this_machine_nvml_is_absent_and_nvidia_smi_is_used(bindir):
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("libnvidia-ml loads on this host: NVML would answer before nvidia-smi")
    report = gpu.detect(env={"AFBOX_FAKE_GPU": "h100"}, path=bindir("nvidia-smi"), root=NO_GPU_ROOT)
    assert report.source == "nvidia-smi" and report.gpus[0].model == "NVIDIA H100 80GB HBM3"
