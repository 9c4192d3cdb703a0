"""A facility whose record was written before records carried a version (captured from a real
facility, tests/fixtures/records) is shown by `status`, scaled by `scale` and stopped by `down`."""
from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from harness import afbox, isolated_env, service, shared_tmpdir, status, xrootd_available

pytestmark = pytest.mark.integration
if not xrootd_available():
    pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)", allow_module_level=True)

RECORDS = Path(__file__).resolve().parent.parent / "fixtures" / "records"
PORT_BASE = 25300  # the port base the record was captured with


def test_a_version_1_record_is_shown_scaled_and_stopped():
    base = shared_tmpdir("afbox-upgrade-")
    env = isolated_env(base, PORT_BASE) | {"XDG_DATA_HOME": str(base / "data")}
    # the same facility as the captured one runs (same dirs, ports and workers) ...
    afbox("up", "--profile", "ci", "--port-base", str(PORT_BASE), "--workers", "3", "--workdir", str(base / "work"),
          env=env)
    pids = {s["name"]: s["pid"] for s in status(env, "ci")["services"]}
    record = Path(env["XDG_STATE_HOME"], "afbox", "ci", "facility.json")
    try:
        # ... and its record is the one the older afbox wrote
        record.write_text((RECORDS / "v1-scaled.json").read_text().replace("@BASE@", str(base)))
        assert "version" not in json.loads(record.read_text())
        st = status(env, "ci")
        assert st["state"] == "up" and {s["name"]: s["pid"] for s in st["services"]} == pids
        assert all(s["health"] == "healthy" for s in st["services"])
        assert st["urls"]["jupyter"] == f"http://127.0.0.1:{PORT_BASE + 8}/lab" and st["clusters"] == {}
        assert "http://127.0.0.1:" in afbox("status", "--name", "ci", env=env).stdout

        out = afbox("scale", "--workers", "2", "--name", "ci", env=env).stdout
        assert "dask workers: 3 -> 2" in out
        st = status(env, "ci")
        assert "dask-worker-3" not in {s["name"] for s in st["services"]}
        assert service(st, "dask-worker-1")["pid"] == pids["dask-worker-1"]
        assert json.loads(record.read_text())["version"] == 2
    finally:
        down = afbox("down", "--name", "ci", env=env)
    assert "all services stopped" in down.stdout
    assert not [p for p in pids.values() if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert status(env, "ci")["state"] == "down"
