"""Parsers for nvidia-smi output: `-q -x` (XML), `-L` (MIG UUIDs and profiles) and `--query-gpu` CSV."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .model import MIB, Gpu, MigDevice

QUERY_ARGV = ["-q", "-x"]
LIST_ARGV = ["-L"]
LIVE_ARGV = ["--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"]

# -q -x does not carry the compute capability (only `--query-gpu=compute_cap` on newer drivers),
# so known products are looked up; first match wins, hence A100 before A10.
_COMPUTE_CAPABILITY = [
    (r"\b(B100|B200|GB200)\b", "10.0"), (r"RTX 50\d0|RTX PRO \d000 Blackwell", "12.0"),
    (r"\b(GH200|H100|H200|H800|H20)\b", "9.0"),
    (r"\b(L4|L40S?|L20)\b|RTX 40\d0|RTX \d000( SFF)? Ada", "8.9"),
    (r"\b(A100|A800|A30)\b", "8.0"),
    (r"\b(A2|A10G?|A16|A40)\b|RTX A\d000|RTX 30\d0", "8.6"),
    (r"\bT4\b|RTX 20\d0|Quadro RTX|TITAN RTX|GTX 16\d0", "7.5"),
    (r"\bV100S?\b|TITAN V\b", "7.0"),
    (r"\bP100\b|Quadro GP100", "6.0"),
    (r"\b(P40|P4)\b|GTX 10\d0|GT 10\d0|TITAN Xp\b|Quadro P\d+", "6.1"),
]
# Where the name is not known, the architecture tells the capability when it has only one.
_ARCHITECTURE = {"Volta": "7.0", "Turing": "7.5", "Ada Lovelace": "8.9", "Hopper": "9.0"}


def compute_capability(model: str, architecture: str | None = None) -> str | None:
    found = next((cc for pattern, cc in _COMPUTE_CAPABILITY if re.search(pattern, model)), None)
    return found or _ARCHITECTURE.get(architecture or "")


def parse_bytes(text: str | None) -> int | None:
    """'81559 MiB' -> bytes; 'N/A', '[N/A]', '[Not Supported]' -> None."""
    m = re.match(r"\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?\s*$", text or "")
    if not m:
        return None
    scale = {"B": 1, "KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB}[m[2] or "MiB"]
    return int(float(m[1]) * scale)


def parse_percent(text: str | None) -> float | None:
    m = re.match(r"\s*(\d+(?:\.\d+)?)\s*%?\s*$", text or "")
    return float(m[1]) if m else None


@dataclass
class Listed:
    """One `GPU N: ...` line of nvidia-smi -L with the MIG lines under it."""
    index: int
    model: str
    uuid: str
    migs: list[MigDevice] = field(default_factory=list)


def parse_list(text: str) -> list[Listed]:
    out: list[Listed] = []
    for line in text.splitlines():
        m = re.match(r"GPU (\d+): (.*?) \(UUID: (GPU-[^)]+)\)\s*$", line)
        if m:
            out.append(Listed(int(m[1]), m[2], m[3]))
            continue
        m = re.match(r"\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)\s*$", line)
        if m and out:
            out[-1].migs.append(MigDevice(index=int(m[2]), uuid=m[3], profile=m[1]))
    return out


def parse_xml(text: str) -> list[Gpu]:
    """GPUs from `nvidia-smi -q -x`; raises ValueError on output that is not that XML."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"not XML: {e}") from None
    if root.tag != "nvidia_smi_log":
        raise ValueError(f"root element is <{root.tag}>, not <nvidia_smi_log>")
    driver, cuda = _text(root, "driver_version"), _text(root, "cuda_version")
    gpus = []
    for index, el in enumerate(root.findall("gpu")):
        model = _text(el, "product_name") or "NVIDIA GPU"
        minor = _text(el, "minor_number")
        cc = compute_capability(model, _text(el, "product_architecture"))
        gpus.append(Gpu(
            index=index, vendor="nvidia", model=model, source="nvidia-smi",
            uuid=_text(el, "uuid"),
            memory_total=parse_bytes(_text(el, "fb_memory_usage/total")),
            memory_used=parse_bytes(_text(el, "fb_memory_usage/used")),
            utilization=parse_percent(_text(el, "utilization/gpu_util")),
            driver=driver, cuda_version=cuda, compute_capability=cc,
            mig_mode=_mig_mode(_text(el, "mig_mode/current_mig")),
            mig_devices=[_mig(m) for m in el.findall("mig_devices/mig_device")],
            pci_bus_id=_text(el, "pci/pci_bus_id") or el.get("id"),
            minor=int(minor) if minor and minor.isdigit() else None))
    return gpus


def merge_list(gpus: list[Gpu], listed: list[Listed]) -> None:
    """Fill MIG UUIDs and profile names, which -q -x leaves out, from nvidia-smi -L."""
    by_uuid = {entry.uuid: entry for entry in listed}
    for gpu in gpus:
        entry = by_uuid.get(gpu.uuid or "")
        if entry is None:
            continue
        names = {m.index: m for m in entry.migs}
        for mig in gpu.mig_devices:
            if mig.index in names:
                mig.uuid = mig.uuid or names[mig.index].uuid
                mig.profile = mig.profile or names[mig.index].profile


def parse_live(text: str) -> dict[int, tuple[float | None, int | None]]:
    """`index, utilization.gpu, memory.used` rows (csv,noheader,nounits) -> {index: (percent, bytes)}."""
    out = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[0].isdigit():
            out[int(parts[0])] = (parse_percent(parts[1]), parse_bytes(parts[2]))
    return out


def _mig(el: ET.Element) -> MigDevice:
    def num(path: str) -> int | None:
        value = _text(el, path)
        return int(value) if value and value.isdigit() else None
    return MigDevice(index=num("index") or 0, uuid=_text(el, "uuid"),
                     memory_total=parse_bytes(_text(el, "fb_memory_usage/total")),
                     memory_used=parse_bytes(_text(el, "fb_memory_usage/used")),
                     gpu_instance_id=num("gpu_instance_id"), compute_instance_id=num("compute_instance_id"))


def _mig_mode(text: str | None) -> str | None:
    return {"enabled": "enabled", "disabled": "disabled"}.get((text or "").lower())


def _text(el: ET.Element, path: str) -> str | None:
    found = el.find(path)
    value = (found.text or "").strip() if found is not None else ""
    return value if value and value != "N/A" else None
