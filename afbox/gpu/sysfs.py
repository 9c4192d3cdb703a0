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
