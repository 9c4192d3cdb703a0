"""GPU detection end to end against the fake nvidia-smi / rocm-smi and recorded sysfs trees."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from afbox import gpu
from afbox.gpu.model import MIB

HERE = Path(__file__).resolve().parent
FAKEBIN = HERE.parent / "fakebin"
FIXTURES = HERE.parent / "fixtures" / "gpu"
NO_GPU_ROOT = str(FIXTURES / "sysfs-none")
pytestmark = pytest.mark.usefixtures("fresh_gpu_state")


class NoNvml:
    """pynvml as it behaves where libnvidia-ml.so is absent."""

    class NVMLError(Exception):
        def __init__(self, value):
            super().__init__("NVML Shared Library Not Found")
            self.value = value

    def nvmlInit(self):
        raise self.NVMLError(12)






def detect(fixture, path, root=NO_GPU_ROOT, timeout=10.0, **env):
    return gpu.detect(env={"AFBOX_FAKE_GPU": fixture, **env}, timeout=timeout, path=path, root=root, nvml=NoNvml())


def test_h100_from_nvidia_smi(bindir):
    report = detect("h100", bindir("nvidia-smi"))
    assert report.source == "nvidia-smi" and report.problems == []
    (h100,) = report.gpus
    assert h100.model == "NVIDIA H100 80GB HBM3" and h100.vendor == "nvidia" and h100.source == "nvidia-smi"
    assert (h100.memory_total, h100.memory_used) == (81559 * MIB, 1024 * MIB)
    assert h100.utilization == 35.0 and h100.compute_capability == "9.0"
    assert (h100.driver, h100.cuda_version, h100.mig_mode) == ("550.54.15", "12.4", "disabled")
    assert h100.pci_bus_id == "00000000:18:00.0" and h100.uuid.startswith("GPU-")
    (device,) = report.devices()
    assert (device.label, device.uuid, device.memory) == ("gpu-0", h100.uuid, 81559 * MIB)


def test_a100_mig_devices_come_from_the_mig_instances(bindir):
    report = detect("a100-mig", bindir("nvidia-smi"))
    assert len(report.gpus) == 8 and report.problems == []
    g0, g1, g2 = report.gpus[:3]
    assert g0.mig_mode == "enabled" and g0.utilization is None
    assert [m.profile for m in g0.mig_devices] == ["3g.20gb", "1g.5gb", "1g.5gb"]
    assert [m.gpu_instance_id for m in g0.mig_devices] == [1, 9, 10]
    assert all(m.uuid.startswith("MIG-") for m in g0.mig_devices)
    assert g0.mig_devices[0].memory_total == 19968 * MIB
    assert [m.profile for m in g1.mig_devices] == ["7g.40gb"]
    assert g2.mig_mode == "disabled" and g2.utilization == 87.0 and g2.mig_devices == []
    devices = report.devices()
    assert len(devices) == 3 + 1 + 6
    assert [d.label for d in devices[:5]] == ["gpu-0-mig-0", "gpu-0-mig-1", "gpu-0-mig-2", "gpu-1-mig-0", "gpu-2"]
    assert devices[1].uuid == g0.mig_devices[1].uuid and devices[1].model == "NVIDIA A100-SXM4-40GB MIG 1g.5gb"


def test_t4_and_consumer_gpus_have_no_mig(bindir):
    (t4,) = detect("t4", bindir("nvidia-smi")).gpus
    assert (t4.model, t4.mig_mode, t4.compute_capability) == ("Tesla T4", None, "7.5")
    report = detect("rtx4090", bindir("nvidia-smi"))
    rtx = {(g.model, g.mig_mode, g.compute_capability) for g in report.gpus}
    assert rtx == {("NVIDIA GeForce RTX 4090", None, "8.9")} and len(report.gpus) == 2
    assert [d.label for d in report.devices()] == ["gpu-0", "gpu-1"]


def test_mi250x_from_rocm_smi_counts_each_gcd(bindir):
    report = detect("mi250x", bindir("rocm-smi"), root=str(FIXTURES / "sysfs-amd-mi250x"))
    assert report.source == "rocm-smi" and report.problems == []
    assert len(report.gpus) == len(report.devices()) == 8
    g = report.gpus[2]
    assert (g.vendor, g.model, g.compute_capability) == ("amd", "AMD Instinct MI250X", "gfx90a")
    assert (g.memory_total, g.memory_used, g.utilization) == (68702699520, 45521551360, 92.0)
    assert (g.driver, g.rocm_version, g.pci_bus_id) == ("6.8.5", "6.2.1-112", "0000:C9:00.0")
    assert len(g.uuid) == len("GPU-") + 16


def test_nvidia_smi_wins_over_rocm_smi(bindir):
    assert detect("h100", bindir("nvidia-smi", "rocm-smi")).source == "nvidia-smi"


def test_no_tools_no_gpu_no_problem(bindir):
    report = detect("h100", bindir())
    assert (report.gpus, report.source, report.problems, report.devices()) == ([], None, [], [])


def test_missing_tool_is_a_problem_only_when_sysfs_shows_the_gpu(bindir):
    report = detect("h100", bindir(), root=str(FIXTURES / "sysfs-nvidia-nouveau"))
    (problem,) = report.problems
    assert "NVIDIA GPU present (sysfs" in problem and "nvidia-smi was not found" in problem and "nouveau" in problem
    report = detect("mi250x", bindir(), root=str(FIXTURES / "sysfs-amd-mi250x"))
    (problem,) = report.problems
    assert problem.startswith("AMD GPU present (sysfs") and "rocm-smi was not found" in problem


def test_mismatch_says_so_and_why_gpus_are_missing(bindir):
    report = detect("mismatch", bindir("nvidia-smi"), root=str(FIXTURES / "sysfs-nvidia-t4"))
    assert report.gpus == []
    (problem,) = report.problems
    assert problem == ("NVIDIA GPU present (sysfs: Tesla T4) but the driver is unusable: Failed to initialize NVML: "
                       "Driver/library version mismatch — reboot or reinstall the driver")
    (problem,) = detect("mismatch", bindir("nvidia-smi")).problems  # reported even if sysfs is hidden
    assert "Driver/library version mismatch" in problem and "reboot" in problem


def test_driver_not_loaded_is_reported_only_with_a_gpu_on_the_bus(bindir):
    (problem,) = detect("nodriver", bindir("nvidia-smi"), root=str(FIXTURES / "sysfs-nvidia-t4")).problems
    assert "couldn't communicate with the NVIDIA driver" in problem and "modprobe nvidia" in problem
    assert detect("nodriver", bindir("nvidia-smi")).problems == []


def test_amdgpu_not_loaded(bindir):
    (problem,) = detect("nodriver", bindir("rocm-smi"), root=str(FIXTURES / "sysfs-amd-mi250x")).problems
    assert "Driver not initialized (amdgpu not found in modules)" in problem and "modprobe amdgpu" in problem
    assert detect("nodriver", bindir("rocm-smi")).problems == []


def test_hung_nvidia_smi_costs_the_timeout_and_no_more(bindir):
    start = time.monotonic()
    report = detect("hang", bindir("nvidia-smi", "rocm-smi"), timeout=1.0)
    assert time.monotonic() - start < 1.0 + 2
    assert report.gpus == []
    assert report.problems == ["nvidia-smi timed out after 1s: GPU driver hung? GPUs ignored"]


def test_unreadable_xml_is_a_problem(bindir, tmp_path):
    broken = tmp_path / "broken-bin"
    broken.mkdir()
    (broken / "nvidia-smi").write_text("#!/bin/sh\necho '<html>not it</html>'\n")
    (broken / "nvidia-smi").chmod(0o755)
    (problem,) = detect("h100", str(broken)).problems
    assert "cannot read" in problem and "<nvidia_smi_log>" in problem


def test_mig_enabled_without_instances_offers_no_device(bindir, tmp_path):
    xml = (FIXTURES / "a100-mig.xml").read_text()
    gpu1 = xml.index('<gpu id="00000000:0F:00.0">')
    start, end = xml.index("<mig_devices>", gpu1), xml.index("</mig_devices>", gpu1)
    (tmp_path / "empty-mig.xml").write_text(xml[:start] + "<mig_devices>\n\t\t\tNone\n\t\t" + xml[end:])
    bin_dir = tmp_path / "mig-bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(
        f"#!/bin/sh\ncase \"$1\" in -L) cat {FIXTURES}/a100-mig.L.txt ;; *) cat {tmp_path}/empty-mig.xml ;; esac\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    report = detect("", str(bin_dir))
    assert len(report.devices()) == 3 + 0 + 6
    (problem,) = report.problems
    assert problem.startswith("GPU 1 (NVIDIA A100-SXM4-40GB) has MIG enabled but no MIG instances")


def test_detect_records_visibility_and_narrows_devices(bindir):
    report = detect("a100-mig", bindir("nvidia-smi"), CUDA_VISIBLE_DEVICES="3,1", HOME="/root")
    assert report.visibility == {"CUDA_VISIBLE_DEVICES": "3,1"}
    assert [d.label for d in report.devices()] == ["gpu-3", "gpu-1-mig-0"]
    assert len(report.devices({})) == 10


def test_report_round_trips_through_json(bindir):
    report = detect("a100-mig", bindir("nvidia-smi"), CUDA_VISIBLE_DEVICES="0")
    data = json.loads(json.dumps(report.to_dict()))
    assert [d["label"] for d in data["devices"]] == ["gpu-0-mig-0", "gpu-0-mig-1", "gpu-0-mig-2"]
    again = gpu.GpuReport.from_dict(data)
    assert again == report and again.devices() == report.devices()


def test_render_table(bindir):
    lines = gpu.render_table(detect("a100-mig", bindir("nvidia-smi"), CUDA_VISIBLE_DEVICES="2"))
    assert lines[0].split() == ["GPU", "MODEL", "MEMORY", "USED", "UTIL", "CC", "MIG", "UUID"]
    assert lines[1].split()[:7] == ["0", "NVIDIA", "A100-SXM4-40GB", "40.0", "GiB", "1.0", "GiB"]
    assert any(line.strip().startswith("└ mig-0 3g.20gb") for line in lines)
    assert "source nvidia-smi · driver 535.161.08 · CUDA 12.2 · 10 devices (4 MIG)" in lines
    assert lines[-1] == "visible to this process: 1 of 10 (CUDA_VISIBLE_DEVICES=2)"
    empty = gpu.render_table(gpu.GpuReport(problems=["nvidia-smi timed out after 10s: GPU driver hung? GPUs ignored"]))
    assert empty == ["no GPU found", "! nvidia-smi timed out after 10s: GPU driver hung? GPUs ignored"]


def test_live_from_nvidia_smi_is_cached(bindir):
    path = bindir("nvidia-smi")
    report = detect("a100-mig", path)
    stats = gpu.live(report, env={"AFBOX_FAKE_GPU": "a100-mig"}, path=path)
    assert stats.source == "nvidia-smi"
    assert stats.utilization[0] is None and stats.utilization[2] == 87.0 and stats.memory_used[3] == 8096 * MIB
    start = time.monotonic()  # within max_age the tool is not run again, even if it would hang now
    assert gpu.live(report, env={"AFBOX_FAKE_GPU": "hang"}, path=path) is stats
    assert time.monotonic() - start < 0.5
    failed = gpu.live(report, env={"AFBOX_FAKE_GPU": "mismatch"}, path=path, max_age=0)
    assert failed.utilization == {}  # a failure is kept longer, so a broken driver is not hammered
    assert gpu.live(report, env={"AFBOX_FAKE_GPU": "a100-mig"}, path=path, max_age=0) is failed
    assert json.dumps(stats.to_dict())


def test_live_from_rocm_smi(bindir):
    path = bindir("rocm-smi")
    report = detect("mi250x", path)
    stats = gpu.live(report, env={"AFBOX_FAKE_GPU": "mi250x"}, path=path)
    assert stats.source == "rocm-smi" and stats.utilization[6] == 37.0 and stats.memory_used[2] == 45521551360
    assert gpu.live(gpu.GpuReport()).utilization == {}


@pytest.mark.parametrize("argv", [["-q"], ["-x"], ["--query-gpu=name", "--format=csv"], ["-L", "-q"], []])
def test_fake_nvidia_smi_rejects_arguments_afbox_does_not_use(argv):
    proc = subprocess.run([str(FAKEBIN / "nvidia-smi"), *argv], capture_output=True, text=True, check=False,
                          env={**os.environ, "AFBOX_FAKE_GPU": "h100"})
    assert proc.returncode == 2 and "Invalid combination of input arguments" in proc.stdout


def test_fake_rocm_smi_checks_flags_and_answers_only_what_was_asked():
    env = {**os.environ, "AFBOX_FAKE_GPU": "mi250x"}
    run = lambda *argv: subprocess.run([str(FAKEBIN / "rocm-smi"), *argv], capture_output=True, text=True, check=False,
                                       env=env)
    bad = run("--showtemp", "--json")
    assert bad.returncode == 2 and "unrecognized arguments: --showtemp" in bad.stderr
    ok = run("--showbus", "--json")
    data = json.loads(ok.stdout)
    assert ok.returncode == 0 and "system" not in data and data["card0"] == {"PCI Bus": "0000:C1:00.0"}


def test_fake_nvidia_smi_lists_gpus_and_mig_devices_in_the_real_format():
    out = subprocess.run([str(FAKEBIN / "nvidia-smi"), "-L"], capture_output=True, text=True, check=True,
                         env={**os.environ, "AFBOX_FAKE_GPU": "a100-mig"}).stdout.splitlines()
    assert out[0].startswith("GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-")
    assert out[1].startswith("  MIG 3g.20gb     Device  0: (UUID: MIG-")
    assert out[2].startswith("  MIG 1g.5gb      Device  1: (UUID: MIG-")
