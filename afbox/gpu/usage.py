"""Current GPU utilisation and memory use, cheap enough to poll every second (TUI, `afbox gpu -w`).

With NVML the library stays open (gpu_nvml keeps it initialised) and a sample is a few calls.
With only nvidia-smi / rocm-smi, a sample is a process, so results are cached for a few seconds,
and a failing or hung tool is left alone for longer.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import nvml as gpu_nvml
from . import nvsmi as gpu_nvsmi
from . import rocm as gpu_rocm
from .tools import Tools, run_tool

SMI_MIN_INTERVAL = 5.0
FAILURE_BACKOFF = 30.0

_cache: dict[tuple, tuple[float, bool, LiveStats]] = {}  # (source, path) -> (when, succeeded, stats)


@dataclass
class LiveStats:
    source: str | None
    utilization: dict[int, float | None] = field(default_factory=dict)  # GPU index -> percent
    memory_used: dict[int, int | None] = field(default_factory=dict)  # GPU index -> bytes
    at: float = 0.0  # time.time() of the sample

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "at": self.at, "utilization": {str(k): v for k, v in self.utilization.items()},
                "memory_used": {str(k): v for k, v in self.memory_used.items()}}


def live(report: Any, *, env: Mapping[str, str] | None = None, path: str | None = None, nvml: Any = None,
         timeout: float = 5.0, max_age: float = SMI_MIN_INTERVAL) -> LiveStats:
    """Utilisation and memory used per GPU of a GpuReport, from the source that detected them."""
    if report.source == "nvml":
        try:
            return _stats("nvml", gpu_nvml.sample(nvml))
        except (gpu_nvml.NvmlUnavailable, gpu_nvml.NvmlFailed):
            return LiveStats("nvml", at=time.time())
    if report.source not in ("nvidia-smi", "rocm-smi"):
        return LiveStats(report.source, at=time.time())
    key, now = (report.source, path), time.monotonic()
    if key in _cache:
        when, ok, cached = _cache[key]
        if now - when < (max_age if ok else max(max_age, FAILURE_BACKOFF)):
            return cached
    vendor, parser = ("nvidia", gpu_nvsmi) if report.source == "nvidia-smi" else ("amd", gpu_rocm)
    out = run_tool(Tools(path, env, timeout), vendor, parser.LIVE_ARGV, [], {})
    try:
        stats = _stats(report.source, parser.parse_live(out.stdout)) if out else None
    except ValueError:
        stats = None
    _cache[key] = (now, stats is not None, stats or LiveStats(report.source, at=time.time()))
    return _cache[key][2]


def _stats(source: str, data: dict[int, tuple[float | None, int | None]]) -> LiveStats:
    return LiveStats(source, {i: u for i, (u, _) in data.items()}, {i: m for i, (_, m) in data.items()}, time.time())
