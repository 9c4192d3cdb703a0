"""Sizes and durations: read from people ('4GiB', '8h') and written for them ('1.5 GiB', '2m05s')."""
from __future__ import annotations

import re

SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?)?\s*$", re.I)
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_size(text: str | int) -> int:
    """'4GiB', '512m', '2G' -> bytes (binary units)."""
    if isinstance(text, int):
        return text
    m = SIZE_RE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 512MiB, 4GiB)")
    unit = (m.group(2) or "").lower()[:1]
    return int(float(m.group(1)) * 1024 ** " kmgt".index(unit or " "))


def parse_duration(text: str) -> float:
    """'8h', '30m', '3600s', '1d' or plain seconds -> seconds."""
    m = DURATION_RE.match(str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 8h, 1d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def human_bytes(n: float | None, compact: bool = False) -> str:
    """1536 -> '1.5 KiB'; compact: '1.5K', for panels where the long form does not fit."""
    if n is None:
        return "-"
    units = ("B", "K", "M", "G", "T") if compact else ("B", "KiB", "MiB", "GiB", "TiB")
    for unit in units:
        if abs(n) < 1024 or unit == units[-1]:
            break
        n /= 1024
    if unit == "B":
        return f"{n:.0f}{unit}" if compact else f"{n:.0f} B"
    if compact:
        return f"{n:.0f}{unit}" if n >= 10 else f"{n:.1f}{unit}"
    return f"{n:.1f} {unit}"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
