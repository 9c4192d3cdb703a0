"""Environments from a pixi lock or a conda environment file, built by the real tool where it is
installed (pixi, or micromamba / mamba / conda; none is in Debian 12, and afbox does not install
them): afbox completes the stack (distributed, ipykernel, xrootd) and reuses it for the same file.
The build steps themselves are unit-tested in tests/unit/test_envs.py."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import afbox

pytestmark = pytest.mark.integration

PIXI = shutil.which("pixi")
CONDA = next(filter(None, (shutil.which(t) for t in ("micromamba", "mamba", "conda"))), None)
SUBDIR = {"x86_64": "linux-64", "aarch64": "linux-aarch64"}.get(platform.machine(), "linux-64")


@pytest.fixture
def env(tmp_path) -> dict:
    e = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), XDG_STATE_HOME=str(tmp_path / "state"),
             MAMBA_ROOT_PREFIX=os.environ.get("MAMBA_ROOT_PREFIX") or str(tmp_path / "mamba"))
    e["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR") or os.path.expanduser("~/.cache/uv")
    return e


def built(env: dict, name: str, source: Path) -> dict:
    """Create twice (the second reuses), then what `env list` and the environment's python say."""
    first = afbox("env", "create", name, "--lock", str(source), env=env, timeout=1800)
    assert "afbox adds what the cluster and kernel need: " in first.stdout and "ipykernel" in first.stdout
    again = afbox("env", "create", name, "--lock", str(source), env=env, timeout=120)
    assert "reusing environment" in again.stdout
    row = next(r for r in json.loads(afbox("env", "list", "--json", env=env).stdout) if r["name"] == name)
    python = Path(row["path"]) / "bin" / "python"
    kernel = json.loads((Path(env["XDG_DATA_HOME"]) / "afbox" / "envs" / "jupyter" / "kernels" / f"afbox-{name}" /
                         "kernel.json").read_text())
    assert kernel["argv"][0] == str(python)
    p = subprocess.run([str(python), "-c", "import distributed, ipykernel, afbox; print(distributed.__version__)"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert row["packages"]["distributed"] == p.stdout.strip()
    return row


@pytest.mark.skipif(not PIXI, reason="pixi not installed: https://pixi.sh (not in Debian 12)")
def test_a_pixi_lock_builds_an_environment_with_its_own_python(env, tmp_path):
    src = tmp_path / "analysis"
    src.mkdir()
    manifest = src / "pixi.toml"
    manifest.write_text(f"""[project]
name = "analysis"
channels = ["conda-forge"]
platforms = ["{SUBDIR}"]

[dependencies]
python = "3.11.*"
dask = "*"
""")
    subprocess.run([PIXI, "lock", "--manifest-path", str(manifest)], check=True, capture_output=True, timeout=900)
    row = built(env, "px", src / "pixi.lock")
    assert row["python"].startswith("3.11.") and ".pixi/envs/default" in row["path"]


@pytest.mark.skipif(not CONDA, reason="conda not installed (micromamba, mamba or conda: "
                                      "https://mamba.readthedocs.io; not in Debian 12)")
def test_a_conda_environment_file_builds_an_environment(env, tmp_path):
    spec = tmp_path / "environment.yml"
    spec.write_text("name: analysis\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - dask\n")
    row = built(env, "cf", spec)
    assert row["python"].startswith("3.11.") and row["path"].endswith("/prefix")
