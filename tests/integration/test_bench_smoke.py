"""The benchmark command runs to completion in its quick mode (no timing asserts: figures vary)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import xrootd_available

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not xrootd_available(), reason="xrootd not installed: the data benchmark needs it")
def test_bench_quick_runs_every_benchmark():
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick"], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for name in ("facility", "data", "scaling"):
        assert f"== {name}" in p.stdout
        data = json.loads((ROOT / "bench" / "results" / f"{name}-quick.json").read_text())
        assert data["quick"] is True
    facility = json.loads((ROOT / "bench" / "results" / "facility-quick.json").read_text())
    assert facility["facility_tasks_per_s"] > 0 and facility["localcluster_tasks_per_s"] > 0
    assert "ratio" in p.stdout and "Traceback" not in p.stderr
