"""Running nvidia-smi / rocm-smi for GPU detection: an injectable PATH, one shared deadline, and
failures turned into reasons and hints instead of exceptions."""
from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import CommandError
from ..run import PROVIDERS, Result, run, which

TOOL = {"nvidia": "nvidia-smi", "amd": "rocm-smi"}
# NVML return codes, which nvidia-smi also uses as its exit code.
DRIVER_NOT_LOADED, LIB_RM_VERSION_MISMATCH = 9, 18


@dataclass
class Failure:
    """Why a vendor tool gave nothing; quiet ones are reported only if sysfs shows that vendor's GPU."""
    source: str  # what failed: "NVML", "nvidia-smi", "rocm-smi"
    reason: str
    hint: str
    missing: bool = False
    quiet: bool = False


class Tools:
    """Finds the tools on `path` (None: PATH and the venv) and runs them before one deadline, so a
    hung driver costs `timeout` seconds in all, however many calls a detection makes."""

    def __init__(self, path: str | None, env: Mapping[str, str] | None, timeout: float):
        self.path, self.env, self.timeout = path, env, timeout
        self.deadline = time.monotonic() + timeout

    def find(self, name: str) -> str | None:
        return which(name) if self.path is None else shutil.which(name, path=self.path)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, exe: str, args: list[str]) -> Result:
        return run([exe, *args], timeout=max(self.left(), 0.1), env=None if self.env is None else dict(self.env))


def run_tool(tools: Tools, vendor: str, args: list[str], problems: list[str],
             broken: dict[str, Failure | None]) -> Result | None:
    """The tool's result, or None with the reason recorded in `broken` (or `problems` for a hang)."""
    tool = TOOL[vendor]
    exe = tools.find(tool)
    if exe is None:
        hint = f"{tool} is provided by {PROVIDERS[tool]}"
        broken.setdefault(vendor, Failure(tool, f"{tool} was not found", hint, missing=True, quiet=True))
        return None
    if tools.left() <= 0:
        return None  # an earlier tool used up the time and is already reported as hung
    try:
        return tools.run(exe, args)
    except CommandError as e:
        if e.timeout:
            problems.append(f"{tool} timed out after {tools.timeout:g}s: GPU driver hung? GPUs ignored")
            broken[vendor] = None
            return None
        reason = next((ln.strip() for ln in (e.stdout + "\n" + e.stderr).splitlines() if ln.strip()),
                      f"exit code {e.code}")
        hint = nvidia_hint(e.code, reason) if vendor == "nvidia" else "check the ROCm installation"
        quiet = vendor == "nvidia" and e.code == DRIVER_NOT_LOADED
        broken.setdefault(vendor, Failure(tool, reason, hint, quiet=quiet))
    return None


def nvidia_hint(code: int | None, reason: str) -> str:
    if code == LIB_RM_VERSION_MISMATCH or "version mismatch" in reason:
        return "reboot or reinstall the driver"
    if code == DRIVER_NOT_LOADED or "communicate with the NVIDIA driver" in reason:
        return "load the kernel module (modprobe nvidia) or reinstall the driver"
    return "check the NVIDIA driver installation"
