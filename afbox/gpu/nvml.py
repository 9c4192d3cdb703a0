"""NVIDIA GPUs through NVML (pynvml, from the nvidia-ml-py package).

NVML is the first choice: no subprocess, and its output is stable across drivers, which
nvidia-smi's is not. The library stays initialised for the life of the process so that polling
usage every second costs a few library calls instead of an nvidia-smi run. Any module with
pynvml's functions can be passed instead of pynvml, which is how the tests drive it.
"""
from __future__ import annotations

import re
from typing import Any

from .model import Gpu, MigDevice
from .nvsmi import compute_capability
from .tools import DRIVER_NOT_LOADED, LIB_RM_VERSION_MISMATCH

LIBRARY_NOT_FOUND = 12
# Worded as nvidia-smi words them, so a problem reads the same whichever source hit it.
MESSAGES = {
    LIB_RM_VERSION_MISMATCH: "Failed to initialize NVML: Driver/library version mismatch",
    DRIVER_NOT_LOADED: "NVIDIA driver is not loaded",
}

_sessions: dict[int, dict[str, Any]] = {}  # id(module) -> {"module": ..., "handles": [...]}


class NvmlUnavailable(Exception):
    """libnvidia-ml (or pynvml) is not there: try the next source."""


class NvmlFailed(Exception):
    """NVML loaded but refused to work; .code is the NVML return code (18: version mismatch)."""

    def __init__(self, code: int | None, message: str):
        super().__init__(message)
        self.code = code


def session(nvml: Any = None) -> Any:
    """The NVML module, initialised once and then kept open for the life of the process."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            raise NvmlUnavailable("pynvml is not installed") from None
    if id(nvml) not in _sessions:
        try:
            nvml.nvmlInit()
        except Exception as e:  # pynvml raises NVMLError, but a broken install can fail anywhere in ctypes
            code = getattr(e, "value", None)
            if code is None or code == LIBRARY_NOT_FOUND:
                raise NvmlUnavailable(str(e)) from None
            raise NvmlFailed(code, MESSAGES.get(code, f"NVML: {e}")) from None
        _sessions[id(nvml)] = {"module": nvml, "handles": None}
    return nvml


def shutdown() -> None:
    """Release NVML (a process that keeps running after detection without polling may want to)."""
    for s in list(_sessions.values()):
        m = s["module"]
        _call(m, "nvmlShutdown")
    _sessions.clear()


def read(nvml: Any = None) -> tuple[list[Gpu], list[str]]:
    """All GPUs with their MIG instances, and problem lines for GPUs NVML cannot open."""
    m = session(nvml)
    error = getattr(m, "NVMLError", Exception)
    try:
        count = m.nvmlDeviceGetCount()
    except error as e:
        raise NvmlFailed(getattr(e, "value", None), f"NVML: {e}") from None
    driver = _str(_call(m, "nvmlSystemGetDriverVersion"))
    cuda = _call(m, "nvmlSystemGetCudaDriverVersion")
    cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None
    gpus, problems = [], []
    for i in range(count):
        try:
            handle = m.nvmlDeviceGetHandleByIndex(i)
        except error as e:
            problems.append(f"NVML cannot open GPU {i}: {e}; it is ignored")
            continue
        gpus.append(_gpu(m, i, handle, driver, cuda_version))
    return gpus, problems


def sample(nvml: Any = None) -> dict[int, tuple[float | None, int | None]]:
    """{index: (utilization %, memory used bytes)} now; raises NvmlFailed if the driver went away."""
    m = session(nvml)
    s = _sessions[id(m)]
    try:
        if s["handles"] is None:
            s["handles"] = [m.nvmlDeviceGetHandleByIndex(i) for i in range(m.nvmlDeviceGetCount())]
        out = {}
        for i, handle in enumerate(s["handles"]):
            util, mem = _call(m, "nvmlDeviceGetUtilizationRates", handle), _call(m, "nvmlDeviceGetMemoryInfo", handle)
            out[i] = (float(util.gpu) if util else None, mem.used if mem else None)
        return out
    except getattr(m, "NVMLError", Exception) as e:
        s["handles"] = None
        raise NvmlFailed(getattr(e, "value", None), f"NVML: {e}") from None


def _gpu(m: Any, index: int, h: Any, driver: str | None, cuda: str | None) -> Gpu:
    name = _str(_call(m, "nvmlDeviceGetName", h)) or "NVIDIA GPU"
    mem = _call(m, "nvmlDeviceGetMemoryInfo", h)
    util = _call(m, "nvmlDeviceGetUtilizationRates", h)  # NotSupported under MIG
    cc = _call(m, "nvmlDeviceGetCudaComputeCapability", h)
    mig = _call(m, "nvmlDeviceGetMigMode", h)  # NotSupported on GPUs without MIG
    pci = _call(m, "nvmlDeviceGetPciInfo", h)
    gpu = Gpu(index=index, vendor="nvidia", model=name, source="nvml", uuid=_str(_call(m, "nvmlDeviceGetUUID", h)),
              memory_total=mem.total if mem else None, memory_used=mem.used if mem else None,
              utilization=float(util.gpu) if util else None, driver=driver, cuda_version=cuda,
              compute_capability=f"{cc[0]}.{cc[1]}" if cc else compute_capability(name),
              mig_mode=None if mig is None else ("enabled" if mig[0] == 1 else "disabled"),
              pci_bus_id=_str(pci.busId) if pci else None, minor=_call(m, "nvmlDeviceGetMinorNumber", h))
    if gpu.mig_mode == "enabled":
        gpu.mig_devices = _migs(m, h)
    return gpu


def _migs(m: Any, h: Any) -> list[MigDevice]:
    out: list[MigDevice] = []
    for slot in range(_call(m, "nvmlDeviceGetMaxMigDeviceCount", h) or 0):
        mh = _call(m, "nvmlDeviceGetMigDeviceHandleByIndex", h, slot)  # NotFound for empty slots
        if mh is None:
            continue
        profile = re.search(r"MIG (\S+)\s*$", _str(_call(m, "nvmlDeviceGetName", mh)) or "")
        mem = _call(m, "nvmlDeviceGetMemoryInfo", mh)
        out.append(MigDevice(index=len(out), uuid=_str(_call(m, "nvmlDeviceGetUUID", mh)),
                             profile=profile[1] if profile else None,
                             memory_total=mem.total if mem else None, memory_used=mem.used if mem else None,
                             gpu_instance_id=_call(m, "nvmlDeviceGetGpuInstanceId", mh),
                             compute_instance_id=_call(m, "nvmlDeviceGetComputeInstanceId", mh)))
    return out


def _call(m: Any, name: str, *args: Any) -> Any:
    """m.name(*args), or None where NVML says no or an older pynvml lacks the function."""
    fn = getattr(m, name, None)
    try:
        return fn(*args) if fn is not None else None
    except getattr(m, "NVMLError", Exception):
        return None


def _str(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value.strip() or None if isinstance(value, str) else None
