"""What GPU detection reports: plain dataclasses, JSON-ready through to_dict()."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

GIB = 1024 ** 3
MIB = 1024 ** 2


@dataclass
class MigDevice:
    """One MIG instance of an NVIDIA GPU; index is nvidia-smi's "Device N" within its GPU."""
    index: int
    uuid: str | None = None
    profile: str | None = None  # e.g. "3g.20gb"
    memory_total: int | None = None
    memory_used: int | None = None
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None


@dataclass
class Gpu:
    """One physical GPU (an AMD MI250X shows as two: one per GCD, as ROCm itself counts them)."""
    index: int
    vendor: str  # "nvidia" | "amd"
    model: str
    source: str  # "nvml" | "nvidia-smi" | "rocm-smi"
    uuid: str | None = None
    memory_total: int | None = None  # bytes
    memory_used: int | None = None  # bytes
    utilization: float | None = None  # percent; None under MIG or when unsupported
    driver: str | None = None
    cuda_version: str | None = None
    rocm_version: str | None = None
    compute_capability: str | None = None  # "8.0" for NVIDIA, the gfx target for AMD
    mig_mode: str | None = None  # "enabled" | "disabled" | None when the GPU has no MIG
    mig_devices: list[MigDevice] = field(default_factory=list)
    pci_bus_id: str | None = None
    minor: int | None = None  # /dev/nvidiaN; not what any visibility variable counts (see visible.py)
    rocr_index: int | None = None  # AMD: position among ROCr's GPU agents (KFD topology order)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gpu:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["mig_devices"] = [MigDevice(**m) for m in data.get("mig_devices", [])]
        return cls(**values)


@dataclass
class Device:
    """A unit of work placement: a whole GPU, or one MIG instance of a GPU with MIG enabled."""
    label: str  # "gpu-0", "gpu-0-mig-1"
    uuid: str | None  # GPU-... or MIG-...: what CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES accept
    model: str
    memory: int | None
    vendor: str
    gpu_index: int
    mig_index: int | None = None
    mig_profile: str | None = None
    # what CUDA_/ROCR_VISIBLE_DEVICES must hold to show a process exactly this device; None: nothing
    # names it reliably, so no worker can be pinned to it
    pin: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def whole_devices(gpu: Gpu) -> list[Device]:
    """The devices one GPU offers before any visibility narrowing."""
    if gpu.mig_mode != "enabled":
        return [Device(f"gpu-{gpu.index}", gpu.uuid, gpu.model, gpu.memory_total, gpu.vendor, gpu.index,
                       pin=_pin(gpu))]
    # A MIG instance is named by its own UUID only: the parent's index or UUID would give a worker the
    # whole GPU, shared with every other instance's worker.
    return [Device(f"gpu-{gpu.index}-mig-{m.index}", m.uuid, f"{gpu.model} MIG {m.profile or '?'}",
                   m.memory_total, gpu.vendor, gpu.index, m.index, m.profile, pin=m.uuid) for m in gpu.mig_devices]


def _pin(gpu: Gpu) -> str | None:
    if gpu.uuid:
        return gpu.uuid
    if gpu.vendor == "amd":  # ROCr counts its own agents, not rocm-smi's cards
        return None if gpu.rocr_index is None else str(gpu.rocr_index)
    return str(gpu.index)  # nvidia-smi's index: CUDA counts the same way under CUDA_DEVICE_ORDER=PCI_BUS_ID


def fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / GIB:.1f} GiB"
