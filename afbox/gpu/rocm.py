"""Parser for `rocm-smi ... --json`: one "cardN" object per device (per GCD on an MI250X)."""
from __future__ import annotations

import json
import re

from .model import Gpu
from .sysfs import KfdGpu

QUERY_ARGV = ["--showproductname", "--showmeminfo", "vram", "--showuse", "--showdriverversion",
               "--showuniqueid", "--showbus", "--json"]
LIVE_ARGV = ["--showuse", "--showmeminfo", "vram", "--json"]
# rocm-smi exits 0 with empty stdout when amdgpu is not loaded; the reason is only on stderr.
NO_DRIVER = "Driver not initialized"


def load(text: str) -> dict:
    """The JSON object in rocm-smi's stdout (which some versions precede with warning lines)."""
    start = text.find("{")
    if start < 0:
        return {}
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError("JSON is not an object")
    return data


def cards(data: dict) -> list[tuple[int, dict]]:
    found = [(int(m[1]), v) for k, v in data.items() if (m := re.fullmatch(r"card(\d+)", k)) and isinstance(v, dict)]
    return sorted(found, key=lambda kv: kv[0])


def parse(text: str, rocm_version: str | None = None) -> list[Gpu]:
    data = load(text)
    driver = _value((data.get("system") or {}).get("Driver version"))  # the amdgpu module's, not ROCm's
    gpus = []
    for index, card in cards(data):
        gpus.append(Gpu(
            index=index, vendor="amd", model=_model(card), source="rocm-smi", uuid=_uuid(card.get("Unique ID")),
            memory_total=_int(card.get("VRAM Total Memory (B)")),
            memory_used=_int(card.get("VRAM Total Used Memory (B)")),
            utilization=_float(card.get("GPU use (%)")), driver=driver, rocm_version=rocm_version,
            compute_capability=_value(card.get("GFX Version")), pci_bus_id=_value(card.get("PCI Bus"))))
    # rocm-smi 6.1+ names each card's KFD node; ROCr numbers the GPU nodes in node order
    nodes = [_int(card.get("Node ID")) for _, card in cards(data)]
    if gpus and None not in nodes:
        for rank, (_, g) in enumerate(sorted(zip(nodes, gpus), key=lambda ng: ng[0])):
            g.rocr_index = rank
    elif len(gpus) == 1:
        gpus[0].rocr_index = 0
    return gpus


def number_for_rocr(gpus: list[Gpu], kfd: list[KfdGpu]) -> list[str]:
    """Number the GPUs as ROCr does, from the KFD topology matched by PCI address, and fill in the
    gfx target and unique ID older rocm-smi leave out. Returns problem lines for the GPUs no worker
    can be pinned to: those ROCr does not see, and those neither a unique ID nor ROCr's number names."""
    usable = [k for k in kfd if k.usable]
    by_address = {k.address: k for k in kfd}
    closed: list[Gpu] = []
    for g in gpus:
        k = by_address.get((g.pci_bus_id or "").lower())
        if k is None:
            continue
        g.compute_capability = g.compute_capability or k.gfx
        g.uuid = g.uuid or (f"GPU-{k.unique_id:016x}" if k.unique_id else None)
        g.rocr_index = usable.index(k) if k.usable else None
        if not k.usable:
            g.uuid = None  # ROCr does not see it, whatever it is called
            closed.append(g)
    problems = []
    if closed:
        nodes = ", ".join(f"card {g.index} ({by_address[g.pci_bus_id.lower()].render_node})" for g in closed)
        problems.append(f"AMD GPU {nodes}: this process cannot open the render node, so ROCr does not see it "
                        "and it gets no worker — add the user to the render group, or pass the device into "
                        "the container")
    unnamed = [g for g in gpus if g not in closed and not g.uuid and g.rocr_index is None]
    if unnamed:
        cards_ = ", ".join(f"card {g.index}" for g in unnamed)
        problems.append(f"AMD GPU {cards_}: no unique ID, and without the KFD topology (/sys/class/kfd) "
                        "afbox cannot tell which ROCr device it is (rocm-smi's card order is not ROCr's), "
                        "so it gets no worker")
    return problems


def _model(card: dict) -> str:
    # rocm-smi up to 6.0 writes "Card series"/"Card model"; 6.1 capitalises them. A bare PCI id
    # (ROCm 4.x writes the vendor id 0x1002 as the series) names nothing.
    name = next((v for k in ("Card Series", "Card series", "Device Name")
                 if (v := _value(card.get(k))) and not re.fullmatch(r"0x[0-9a-fA-F]+", v)), None)
    sku = _value(card.get("Card SKU"))
    return name or (f"AMD GPU {sku}" if sku else "AMD GPU")


def parse_live(text: str) -> dict[int, tuple[float | None, int | None]]:
    return {i: (_float(c.get("GPU use (%)")), _int(c.get("VRAM Total Used Memory (B)"))) for i, c in cards(load(text))}


def _uuid(value) -> str | None:
    # ROCR_VISIBLE_DEVICES and rocminfo write the unique id as GPU-<16 hex digits>.
    text = _value(value)
    try:
        return f"GPU-{int(text, 16):016x}" if text else None
    except ValueError:
        return None


def _value(value) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if text and text.upper() != "N/A" else None


def _int(value) -> int | None:
    text = _value(value)
    return int(text) if text and text.isdigit() else None


def _float(value) -> float | None:
    try:
        return float(_value(value) or "")
    except ValueError:
        return None
