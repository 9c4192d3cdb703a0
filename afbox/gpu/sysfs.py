"""GPUs the kernel sees on the PCI bus: tells "GPU present, driver unusable" from "no GPU".

Only read when the vendor tools found nothing. `root` is the filesystem root so tests can point it
at a recorded tree (tests/fixtures/gpu/sysfs-*/).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass

VENDORS = {"0x10de": "nvidia", "0x1002": "amd"}
# PCI classes that mean a GPU usable for compute. AMD's 0x0300 (VGA) is left out on purpose:
# it is mostly integrated graphics, where no GPU problem is worth reporting.
COMPUTE_CLASSES = {"nvidia": ("0x0300", "0x0302"), "amd": ("0x0380", "0x1200")}


@dataclass
class PciGpu:
    address: str
    vendor: str
    driver: str | None = None  # kernel driver bound to it: nvidia, nouveau, amdgpu, vfio-pci ...
    model: str | None = None  # from /proc/driver/nvidia, only when the nvidia module is loaded


def scan(root: str = "/") -> list[PciGpu]:
    found: dict[str, PciGpu] = {}
    bus = os.path.join(root, "sys/bus/pci/devices")
    for dev in sorted(glob.glob(os.path.join(bus, "*"))):
        _add(found, os.path.basename(dev).lower(), dev)
    if not os.path.isdir(bus):  # some sandboxes hide the PCI bus but keep DRM
        for dev in sorted(glob.glob(os.path.join(root, "sys/class/drm/card[0-9]*/device"))):
            _add(found, os.path.basename(os.path.dirname(dev)), dev)
    for info in glob.glob(os.path.join(root, "proc/driver/nvidia/gpus/*/information")):
        address = os.path.basename(os.path.dirname(info)).lower()
        fields = dict(line.split(":", 1) for line in _read(info).splitlines() if ":" in line)
        gpu = found.setdefault(address, PciGpu(address, "nvidia", "nvidia"))
        gpu.model = (fields.get("Model") or "").strip() or gpu.model
    return list(found.values())


def rocm_version(root: str = "/") -> str | None:
    return _read(os.path.join(root, "opt/rocm/.info/version")).strip() or None


@dataclass
class KfdGpu:
    """A GPU node of the kernel's KFD topology, the list ROCr builds its agents from."""
    node: int
    address: str  # PCI address, lower case: 0000:63:00.0
    unique_id: int  # 0 where the GPU has none (ROCr then accepts only its index)
    gfx: str | None  # gfx target, e.g. gfx90a
    render_node: str  # /dev/dri/renderD<minor>
    usable: bool  # whether this process may open the render node


def kfd_gpus(root: str = "/") -> list[KfdGpu]:
    """GPU nodes in node order. ROCr numbers its GPU agents (what ROCR_VISIBLE_DEVICES counts) in
    this order, which need not be PCI order: rocm-smi, which sorts by PCI address, may differ.
    libhsakmt leaves out nodes whose render node it cannot open (a container or a device cgroup
    without it), so ROCr does not count them; a root without /dev/dri (a recorded tree) opens all."""
    base = os.path.join(root, "sys/class/kfd/kfd/topology/nodes")
    dri = os.path.join(root, "dev/dri")
    check = os.path.isdir(dri)
    nodes = sorted((int(n) for n in _listdir(base) if n.isdigit()))
    out = []
    for node in nodes:
        props = dict(line.split(None, 1) for line in _read(os.path.join(base, str(node), "properties")).splitlines()
                     if len(line.split(None, 1)) == 2)
        num = lambda key: int(props.get(key, "0").strip() or 0)
        if num("simd_count") == 0:  # a CPU node; ROCr skips those (NumFComputeCores == 0)
            continue
        loc = num("location_id")  # bus << 8 | device << 3 | function
        address = f"{num('domain'):04x}:{loc >> 8:02x}:{loc >> 3 & 0x1f:02x}.{loc & 7:x}"
        render = f"renderD{num('drm_render_minor')}"
        usable = not check or os.access(os.path.join(dri, render), os.R_OK | os.W_OK)
        out.append(KfdGpu(node, address, num("unique_id"), _gfx(num("gfx_target_version")),
                          f"/dev/dri/{render}", usable))
    return out


def _gfx(version: int) -> str | None:
    """90010 -> gfx90a, 100301 -> gfx1031: major, then minor and stepping as hex digits."""
    return f"gfx{version // 10000}{version // 100 % 100:x}{version % 100:x}" if version else None


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _add(found: dict[str, PciGpu], address: str, dev: str) -> None:
    vendor = VENDORS.get(_read(os.path.join(dev, "vendor")).strip().lower())
    cls = _read(os.path.join(dev, "class")).strip().lower()
    if vendor and cls.startswith(COMPUTE_CLASSES[vendor]):
        uevent = dict(line.split("=", 1) for line in _read(os.path.join(dev, "uevent")).splitlines() if "=" in line)
        found[address] = PciGpu(address, vendor, uevent.get("DRIVER"))


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""
