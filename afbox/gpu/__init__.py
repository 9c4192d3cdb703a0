"""GPU detection: which GPUs this host has, which of them this process may use, and how busy they are.

Sources, first that answers wins: NVML (pynvml) -> `nvidia-smi -q -x` -> `rocm-smi --json`.
When none finds a GPU, sysfs tells "GPU present but the driver is unusable" apart from "no GPU".
Every external call goes through afbox.run within a deadline shared by the whole detection, so a
hung driver costs at most `timeout` seconds and shows up as a problem line instead of a hang.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import nvml as gpu_nvml
from . import nvsmi as gpu_nvsmi
from . import rocm as gpu_rocm
from . import sysfs as gpu_sysfs
from .usage import LiveStats, live
from .model import Device, Gpu, MigDevice, fmt_bytes
from .tools import TOOL, Failure, Tools, nvidia_hint, run_tool
from .visible import VARIABLES, visible_devices

__all__ = ["Device", "Gpu", "GpuReport", "LiveStats", "MigDevice", "detect", "live", "render_table"]

DEFAULT_TIMEOUT = 5.0  # the README promises a hung driver never holds afbox up longer
VENDOR_NAME = {"nvidia": "NVIDIA", "amd": "AMD"}


@dataclass
class GpuReport:
    gpus: list[Gpu] = field(default_factory=list)
    source: str | None = None  # "nvml" | "nvidia-smi" | "rocm-smi" | None
    problems: list[str] = field(default_factory=list)  # lines for `afbox doctor`
    visibility: dict[str, str] = field(default_factory=dict)  # the *_VISIBLE_DEVICES / SLURM_* in force

    def devices(self, env: Mapping[str, str] | None = None) -> list[Device]:
        """Usable devices (whole GPUs, or MIG instances), narrowed by the visibility variables; a
        device nothing names reliably is left out (detect() says why in a problem line)."""
        found = visible_devices(self.gpus, self.visibility if env is None else env)
        return [d for d in found if d.pin is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "gpus": [g.to_dict() for g in self.gpus], "problems": list(self.problems),
                "visibility": dict(self.visibility), "devices": [d.to_dict() for d in self.devices()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GpuReport:
        return cls([Gpu.from_dict(g) for g in data.get("gpus", [])], data.get("source"),
                   list(data.get("problems", [])), dict(data.get("visibility", {})))


def detect(env: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT, *, path: str | None = None,
           root: str = "/", nvml: Any = None) -> GpuReport:
    """Detect GPUs. env: the environment (visibility variables; also given to the tools); path: the
    PATH to find the tools on; root: filesystem root for sysfs; nvml: a pynvml-like module."""
    seen_env = os.environ if env is None else env
    report = GpuReport(visibility={k: seen_env[k] for k in VARIABLES if k in seen_env})
    tools = Tools(path, env, timeout)
    broken: dict[str, Failure | None] = {}  # vendor -> why its tool gave nothing (None: already reported)
    _detect_nvidia(report, tools, nvml, broken)
    if not report.gpus:
        _detect_amd(report, tools, root, broken)
    if not report.gpus:
        _explain(report, root, broken)
    for g in report.gpus:
        if g.mig_mode == "enabled" and not g.mig_devices:
            report.problems.append(f"GPU {g.index} ({g.model}) has MIG enabled but no MIG instances, so it "
                                   "offers no device — create some (nvidia-smi mig -cgi ... -C) or disable MIG")
    report.problems += _order_problem(report, seen_env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST"))
    return report


def _order_problem(report: GpuReport, order: str) -> list[str]:
    """CUDA counts fastest first unless told PCI_BUS_ID; only different models make that matter."""
    numbered = [t for t in report.visibility.get("CUDA_VISIBLE_DEVICES", "").split(",") if t.strip().isdigit()]
    models = {g.model for g in report.gpus if g.vendor == "nvidia"}
    if not numbered or order == "PCI_BUS_ID" or len(models) < 2:
        return []
    return ["CUDA_VISIBLE_DEVICES names GPUs by number, and with different models CUDA numbers them fastest "
            "first, not in nvidia-smi's order that afbox reads it in — set CUDA_DEVICE_ORDER=PCI_BUS_ID or "
            "name the GPUs by UUID"]


def _detect_nvidia(report: GpuReport, tools: Tools, nvml: Any, broken: dict[str, Failure | None]) -> None:
    try:
        report.gpus, problems = gpu_nvml.read(nvml)
        report.problems += problems
        report.source = "nvml" if report.gpus else None
        return  # NVML answered: nvidia-smi, built on it, would say the same
    except gpu_nvml.NvmlUnavailable:
        pass
    except gpu_nvml.NvmlFailed as e:
        quiet = e.code == gpu_nvml.DRIVER_NOT_LOADED
        broken["nvidia"] = Failure("NVML", str(e), nvidia_hint(e.code, str(e)), quiet=quiet)
        return
    out = run_tool(tools, "nvidia", gpu_nvsmi.QUERY_ARGV, report.problems, broken)
    if out is None:
        return
    try:
        gpus = gpu_nvsmi.parse_xml(out.stdout)
    except ValueError as e:
        report.problems.append(f"nvidia-smi -q -x gave output afbox cannot read ({e}): GPUs ignored")
        return
    if any(m.uuid is None or m.profile is None for g in gpus for m in g.mig_devices):
        hung: list[str] = []  # -L alone hanging leaves the whole GPUs -q -x found usable
        listing = run_tool(tools, "nvidia", gpu_nvsmi.LIST_ARGV, hung, {})
        if listing is not None:
            gpu_nvsmi.merge_list(gpus, gpu_nvsmi.parse_list(listing.stdout))
        nameless = [f"gpu-{g.index}-mig-{m.index}" for g in gpus for m in g.mig_devices if m.uuid is None]
        if nameless:
            why = "timed out" if hung else "did not list the MIG UUIDs"
            report.problems.append(f"nvidia-smi -L {why}, so {', '.join(nameless)} get no worker (pinned to "
                                   "the parent GPU, each would get the whole GPU)")
    report.gpus, report.source = gpus, "nvidia-smi" if gpus else None


def _detect_amd(report: GpuReport, tools: Tools, root: str, broken: dict[str, Failure | None]) -> None:
    out = run_tool(tools, "amd", gpu_rocm.QUERY_ARGV, report.problems, broken)
    if out is None:
        return
    if not out.stdout.strip() and gpu_rocm.NO_DRIVER in out.stderr:
        reason = out.stderr.strip().splitlines()[-1].split(":", 2)[-1].strip()
        broken["amd"] = Failure("rocm-smi", reason, "load the amdgpu kernel module (modprobe amdgpu)", quiet=True)
        return
    try:
        report.gpus = gpu_rocm.parse(out.stdout, gpu_sysfs.rocm_version(root) or _rocm_from_path(tools))
    except ValueError as e:
        report.problems.append(f"rocm-smi --json gave output afbox cannot read ({e}): GPUs ignored")
    report.problems += gpu_rocm.number_for_rocr(report.gpus, gpu_sysfs.kfd_gpus(root))
    report.source = "rocm-smi" if report.gpus else None


def _rocm_from_path(tools: Tools) -> str | None:
    """ROCm installs into /opt/rocm-X.Y.Z; rocm-smi there, or a link to it, tells the release."""
    exe = tools.find(TOOL["amd"])
    m = re.search(r"/rocm-(\d+\.\d+\.\d+)/", os.path.realpath(exe)) if exe else None
    return m[1] if m else None


def _explain(report: GpuReport, root: str, broken: dict[str, Failure | None]) -> None:
    """Turn tool failures into problem lines, saying whether the kernel sees a GPU at all."""
    present = gpu_sysfs.scan(root) if any(broken.values()) else []
    for vendor, failure in broken.items():
        seen = [p for p in present if p.vendor == vendor]
        if failure is None or (failure.quiet and not seen):
            continue
        name, hint = VENDOR_NAME[vendor], failure.hint
        if not seen:
            report.problems.append(f"{failure.source} failed: {failure.reason} — {hint}")
            continue
        foreign = next((p.driver for p in seen if p.driver in ("nouveau", "radeon", "vfio-pci")), None)
        if failure.missing and foreign:
            hint = f"the {foreign} driver has it, not {name}'s; {hint}"
        state = failure.reason if failure.missing else f"the driver is unusable: {failure.reason}"
        report.problems.append(f"{name} GPU present (sysfs: {_describe(seen)}) but {state} — {hint}")


def _describe(seen: list[gpu_sysfs.PciGpu]) -> str:
    models = sorted({p.model for p in seen if p.model})
    if models:
        return ", ".join(models) if len(seen) == 1 else f"{len(seen)} × {'/'.join(models)}"
    where = ", ".join(p.address for p in seen) if len(seen) <= 2 else f"{len(seen)} devices"
    return f"{where}, driver {'/'.join(sorted({p.driver or 'none' for p in seen}))}"


def render_table(report: GpuReport) -> list[str]:
    """Lines for `afbox gpu`: one row per GPU, one indented row per MIG instance, then problems."""
    rows = [("GPU", "MODEL", "MEMORY", "USED", "UTIL", "CC", "MIG", "UUID")]
    for g in report.gpus:
        util = "-" if g.utilization is None else f"{g.utilization:.0f}%"
        rows.append((str(g.index), g.model, fmt_bytes(g.memory_total), fmt_bytes(g.memory_used), util,
                     g.compute_capability or "-", g.mig_mode or "-", g.uuid or "-"))
        rows += [("", f"└ mig-{m.index} {m.profile or '?'}", fmt_bytes(m.memory_total), fmt_bytes(m.memory_used),
                  "", "", "", m.uuid or "-") for m in g.mig_devices]
    if not report.gpus:
        return ["no GPU found"] + [f"! {p}" for p in report.problems]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    first = report.gpus[0]
    # rocm-smi's "driver version" is the amdgpu kernel module's (the kernel's, when in-tree), not ROCm's
    driver = "amdgpu" if first.vendor == "amd" else "driver"
    facts = [f"source {report.source}", f"{driver} {first.driver or '?'}"]
    facts += [f"{name} {v}" for name, v in (("CUDA", first.cuda_version), ("ROCm", first.rocm_version)) if v]
    everything, visible = report.devices({}), report.devices()
    mig = sum(1 for d in everything if d.mig_index is not None)
    count = f"{len(everything)} device{'s' * (len(everything) != 1)}" + (f" ({mig} MIG)" if mig else "")
    lines.append(" · ".join(facts + [count]))
    if report.visibility:
        names = " ".join(f"{k}={v}" for k, v in report.visibility.items())
        lines.append(f"visible to this process: {len(visible)} of {len(everything)} ({names})")
    return lines + [f"! {p}" for p in report.problems]
