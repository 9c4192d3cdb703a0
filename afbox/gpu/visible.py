"""Which devices this process may use, from the variables CUDA, ROCm, containers and SLURM set.

Two kinds of lists:
- relative (CUDA_VISIBLE_DEVICES, ROCR/HIP_VISIBLE_DEVICES, GPU_DEVICE_ORDINAL): an index is the
  position among the GPUs still visible, as the runtime numbers them; an invalid entry ends the
  list, as in CUDA;
- global (NVIDIA_VISIBLE_DEVICES, SLURM_STEP_GPUS, SLURM_JOB_GPUS): an index names the GPU by its
  /dev/nvidiaN minor number when known, because that is what the container runtime and SLURM's
  gres.conf count, and which stays the same inside a cgroup that hides the other GPUs.
Both accept GPU-/MIG- UUIDs or unique prefixes of them, "all", and "none" / "void" / "" for none.
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

Pair = tuple[Gpu, Device]


def visible_devices(gpus: list[Gpu], env: Mapping[str, str]) -> list[Device]:
    out: list[Device] = []
    for vendor, chain in (("nvidia", NVIDIA_CHAIN), ("amd", AMD_CHAIN)):
        pairs = [(g, d) for g in gpus if g.vendor == vendor for d in whole_devices(g)]
        if not pairs:
            continue
        relative_set = False
        for group in chain:
            name = next((n for n in group if n in env), None)
            if name is not None:
                pairs = _select(pairs, env[name], name in GLOBAL)
                relative_set = relative_set or name not in GLOBAL
        if not relative_set:  # SLURM also exports CUDA_VISIBLE_DEVICES; its own list is the fallback
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
    chosen: list[Pair] = []
    for token in _tokens(value, is_global):
        picked = _match(pairs, token, is_global)
        if picked is None:
            break
        chosen += [p for p in picked if p not in chosen]
    return chosen


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
        if not is_global:
            return [p for p in pairs if id(p[0]) == gpus[n]] if n < len(gpus) else None
        by_minor = any(g.minor is not None for g, _ in pairs)
        hit = [p for p in pairs if (p[0].minor if by_minor else p[0].index) == n]
        return hit or None
    m = re.fullmatch(r"(\d+):(\d+)", token)  # the container runtime's GPU:MIG notation
    if m and is_global:
        hit = [p for p in pairs if p[0].index == int(m[1]) and p[1].mig_index == int(m[2])]
        return hit or None
    m = re.fullmatch(r"MIG-(GPU-[0-9a-fA-F-]+)/(\d+)/(\d+)", token)  # pre-R470 MIG naming
    if m:
        ids = (int(m[2]), int(m[3]))
        hit = [(g, d) for g, d in pairs if g.uuid == m[1] for x in g.mig_devices
               if x.index == d.mig_index and (x.gpu_instance_id, x.compute_instance_id) == ids]
        return hit or None
    if token.startswith("GPU-"):
        hit = [p for p in pairs if (p[0].uuid or "").lower().startswith(token.lower())]
        return hit if len({id(g) for g, _ in hit}) == 1 else None
    if token.startswith("MIG-"):
        hit = [p for p in pairs if (p[1].uuid or "").lower().startswith(token.lower())]
        return hit if len(hit) == 1 else None
    return None
