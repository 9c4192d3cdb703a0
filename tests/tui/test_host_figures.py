"""The host panel's figures from the real detection code, with nvidia-smi replaced by its recorded output."""
from __future__ import annotations

import time
from pathlib import Path

from tui.live import LiveSource

FAKEBIN = Path(__file__).resolve().parent.parent / "fakebin"


def test_gpus_show_with_utilisation_and_memory_once_detected(monkeypatch):
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{Path('/usr/bin')}:{Path('/bin')}")
    monkeypatch.setenv("AFBOX_FAKE_GPU", "h100")
    src = LiveSource()
    t0 = time.monotonic()
    first = src.host_load(None)                 # detection runs in the background: never holds up a refresh
    assert time.monotonic() - t0 < 1
    assert first.cpus >= 1 and 0 < first.memory_used < first.memory_total
    end = time.monotonic() + 15
    while time.monotonic() < end and not src.host_load(None).gpus:
        time.sleep(0.1)
    (g,) = src.host_load(None).gpus
    assert (g.label, g.utilization, g.memory_used) == ("gpu0", 35.0, 1024 * 1024 ** 2)
    assert "H100" in g.model and g.memory_total > g.memory_used


def test_no_gpu_says_so(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    src = LiveSource()
    end = time.monotonic() + 15
    while time.monotonic() < end and src.host_load(None).gpu_note == "detecting GPUs…":
        time.sleep(0.1)
    assert src.host_load(None).gpu_note == "no GPU" or src.host_load(None).gpu_note.startswith(("NVIDIA", "AMD"))
