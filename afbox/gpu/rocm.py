"""Parser for `rocm-smi ... --json`: one "cardN" object per device (per GCD on an MI250X)."""
from __future__ import annotations

import json
import re

from .model import Gpu

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
    driver = _value((data.get("system") or {}).get("Driver version"))
    gpus = []
    for index, card in cards(data):
        model = next((v for k in ("Card Series", "Card SKU", "Card Model") if (v := _value(card.get(k)))), "AMD GPU")
        gpus.append(Gpu(
            index=index, vendor="amd", model=model, source="rocm-smi", uuid=_uuid(card.get("Unique ID")),
            memory_total=_int(card.get("VRAM Total Memory (B)")),
            memory_used=_int(card.get("VRAM Total Used Memory (B)")),
            utilization=_float(card.get("GPU use (%)")), driver=driver, rocm_version=rocm_version,
            compute_capability=_value(card.get("GFX Version")), pci_bus_id=_value(card.get("PCI Bus"))))
    return gpus


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
