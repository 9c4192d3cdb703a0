"""Shared bits for benchmarks: an isolated environment, the real CLI, a results table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).resolve().parent / "results"


def isolated_env(prefix: str) -> tuple[dict, Path]:
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)  # xrootd drops to its own user when started as root
    env = dict(os.environ, XDG_STATE_HOME=str(base / "state"), XDG_CACHE_HOME=str(base / "cache"))
    return env, base


def afbox(*args: str, env: dict) -> float:
    """Run the CLI; return its wall time."""
    t0 = time.perf_counter()
    p = subprocess.run([str(BIN / "afbox"), *args], env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"afbox {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return time.perf_counter() - t0


def security_for(env: dict, name: str = "ci"):
    """The facility's Dask TLS credentials, from its state record (None for plain tcp)."""
    from afbox import record_security
    return record_security(json.loads(Path(env["XDG_STATE_HOME"], "afbox", name, "facility.json").read_text()))


def drop_page_cache() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("benchmark", "afbox", "peer", "ratio")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)])


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path

