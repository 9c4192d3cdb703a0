"""Which devices this process may use, from the variables CUDA, ROCm, containers and SLURM set.

What each variable counts, as their sources have it:
- CUDA_VISIBLE_DEVICES: positions in CUDA's own enumeration, which is nvidia-smi's (PCI bus) order
  when CUDA_DEVICE_ORDER=PCI_BUS_ID, and fastest-first otherwise (the same order for identical
  GPUs); GPU-/MIG- UUIDs or unique prefixes of them; an invalid entry ends the list (CUDA
  Programming Guide, "CUDA Environment Variables"). HIP_VISIBLE_DEVICES and GPU_DEVICE_ORDINAL
  work the same way on what ROCr shows.
- ROCR_VISIBLE_DEVICES: positions among ROCr's GPU agents, which ROCr numbers in KFD topology node
  order (not rocm-smi's card order), or GPU-<16 hex digits> UUIDs or unique prefixes, case-
  insensitive; an invalid, repeated or ambiguous entry ends the list (ROCR-Runtime,
  core/inc/amd_filter_device.h and core/runtime/amd_topology.cpp).
- NVIDIA_VISIBLE_DEVICES: NVML indices (nvidia-smi's), full GPU-/MIG- UUIDs, PCI bus IDs, or
  <GPU index>:<MIG index> (libnvidia-container src/cli/common.c select_devices;
  nvidia-container-toolkit pkg/nvcdi normalizeDeviceID: nvmlDeviceGetHandleByIndex). Not the
  /dev/nvidiaN minor number, which can differ (two RTX A5000 whose index 0 is minor 1).
- SLURM_JOB_GPUS / SLURM_STEP_GPUS: the GPU's position in the node's GRES list (gres_device->index,
  src/plugins/gres/common/gres_common.c), which SLURM sorts in NVML's PCI bus order when it
  autodetects (gres_gpu.c: _sort_gpu_by_links_order), so again nvidia-smi's index, not the minor.

The global lists (the last two) were made for whoever sets up the process: a container runtime or a
device cgroup applies them before afbox looks, and NVML then numbers what is left from 0. So when
afbox sees no more GPUs than such a list names and the list names one it cannot see, the list was
already applied and every GPU seen is the process's.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from .model import Device, Gpu, whole_devices

NVIDIA_CHAIN = (("NVIDIA_VISIBLE_DEVICES",), ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL"))
AMD_CHAIN = (("ROCR_VISIBLE_DEVICES",), ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL"))
SLURM = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")
GLOBAL = {"NVIDIA_VISIBLE_DEVICES", *SLURM}
VARIABLES = ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
             "GPU_DEVICE_ORDINAL", *SLURM)
PCI = re.compile(r"([0-9a-fA-F]{1,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])")

Pair = tuple[Gpu, Device]


def visible_devices(gpus: list[Gpu], env: Mapping[str, str]) -> list[Device]:
    out: list[Device] = []
    for vendor, chain in (("nvidia", NVIDIA_CHAIN), ("amd", AMD_CHAIN)):
        mine = [g for g in gpus if g.vendor == vendor]
        if vendor == "amd" and any(g.rocr_index is not None for g in mine):
            # ROCR_VISIBLE_DEVICES counts ROCr's agents, in ROCr's order; it does not see the others
            mine = sorted((g for g in mine if g.rocr_index is not None), key=lambda g: g.rocr_index)
        pairs = [(g, d) for g in mine for d in whole_devices(g)]
        if not pairs:
            continue
        relative_set = False
        for group in chain:
            name = next((n for n in group if n in env), None)
            if name is not None:
                pairs = _select(pairs, env[name], name in GLOBAL)
                relative_set = relative_set or name not in GLOBAL
        if not relative_set:  # SLURM also exports CUDA_/ROCR_VISIBLE_DEVICES; its own list is the fallback
            name = next((n for n in SLURM if n in env), None)
            if name is not None:
                pairs = _select(pairs, env[name], True)
        out += [d for _, d in pairs]
    return out


def _select(pairs: list[Pair], value: str, is_global: bool) -> list[Pair]:
    value = value.strip()
    if value.lower() in ("", "none", "void"):
        return []
    if value.lower() == "all":
        return pairs
    tokens = _tokens(value, is_global)
    if is_global and _already_applied(pairs, tokens):
        return pairs
    chosen: list[Pair] = []
    for token in tokens:
        picked = _match(pairs, token, is_global)
        if picked is None:
            break
        chosen += [p for p in picked if p not in chosen]
    return chosen


def _already_applied(pairs: list[Pair], tokens: list[str]) -> bool:
    seen = len({id(g) for g, _ in pairs})
    numbers = [int(t) for t in tokens if t.isdigit()]
    return len(numbers) == len(tokens) and seen <= len(set(numbers)) and max(numbers) >= seen


def _tokens(value: str, is_global: bool) -> list[str]:
    out = []
    for tok in (t.strip() for t in value.split(",")):
        m = re.fullmatch(r"(\d+)-(\d+)", tok) if is_global else None  # SLURM may write ranges
        out += [str(i) for i in range(int(m[1]), int(m[2]) + 1)] if m else [tok]
    return out


def _match(pairs: list[Pair], token: str, is_global: bool) -> list[Pair] | None:
    gpus = list(dict.fromkeys(id(g) for g, _ in pairs))
    if token.isdigit():
        n = int(token)
        if not is_global:  # a position among what is still visible
            return [p for p in pairs if id(p[0]) == gpus[n]] if n < len(gpus) else None
        return [p for p in pairs if p[0].index == n] or None
    m = re.fullmatch(r"(\d+):(\d+)", token)  # the container runtime's GPU:MIG notation
    if m and is_global:
        hit = [p for p in pairs if p[0].index == int(m[1]) and p[1].mig_index == int(m[2])]
        return hit or None
    if is_global and _pci(token):
        return [p for p in pairs if _pci(p[0].pci_bus_id) == _pci(token)] or None
    m = re.fullmatch(r"MIG-(GPU-[0-9a-fA-F-]+)/(\d+)/(\d+)", token)  # pre-R470 MIG naming
    if m:
        ids = (int(m[2]), int(m[3]))
        hit = [(g, d) for g, d in pairs if g.uuid == m[1] for x in g.mig_devices
               if x.index == d.mig_index and (x.gpu_instance_id, x.compute_instance_id) == ids]
        return hit or None
    if token[:4].upper() in ("GPU-", "MIG-"):
        # the container runtime wants the whole UUID; CUDA and ROCr take a unique prefix
        whole = token[:4].upper() == "GPU-"
        hit = [p for p in pairs if _same((p[0] if whole else p[1]).uuid, token, exact=is_global)]
        return hit if len({id(p[0] if whole else p[1]) for p in hit}) == 1 else None
    return None


def _pci(text: str | None) -> tuple[int, ...] | None:
    m = PCI.fullmatch(text or "")
    return (int(m[1], 16), int(m[2], 16), int(m[3], 16), int(m[4])) if m else None


def _same(uuid: str | None, token: str, exact: bool) -> bool:
    uuid, token = (uuid or "").lower(), token.lower()
    return uuid == token if exact else bool(uuid) and uuid.startswith(token)
