"""The apptainer wrapper's argv, and the fake apptainer the integration tests use."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from afbox.errors import AfboxError, ConfigError
from afbox.facility import RuntimeSection
from afbox.runtimes import apptainer, wrap, wrap_specs
from afbox.spec import ServiceSpec

FAKE = Path(__file__).resolve().parent.parent / "fakebin" / "apptainer"
RT = RuntimeSection(kind="apptainer", image="docker://ghcr.io/afbox/analysis:0.1.0")


def test_nv_only_with_gpus_and_binds_joined():
    argv = ("/venv/bin/dask", "worker", "tls://h:1")
    plain = wrap(RT, argv, binds=("/w", "/c"), gpus=False, bin_dir="/venv/bin")
    assert plain == ("apptainer", "exec", "--bind", "/w,/c", "docker://ghcr.io/afbox/analysis:0.1.0", "dask",
                     "worker", "tls://h:1")
    assert wrap(RT, argv, binds=(), gpus=True, bin_dir="/venv/bin")[:3] == ("apptainer", "exec", "--nv")
    assert wrap(RuntimeSection(), argv, binds=("/w",), gpus=True, bin_dir="/venv/bin") == argv
    # programs from elsewhere keep their path (the image must have them, or a bind must bring them)
    assert wrap(RT, ("/usr/bin/xrootd", "-c", "f"), binds=(), gpus=False, bin_dir="/venv/bin")[-3:] == (
        "/usr/bin/xrootd", "-c", "f")


def test_specs_with_a_gpu_get_nv_and_skipped_ones_stay():
    specs = [ServiceSpec("gpu", ("/venv/bin/dask", "worker"), env=(("CUDA_VISIBLE_DEVICES", "GPU-1"),)),
             ServiceSpec("cpu", ("/venv/bin/dask", "worker")), ServiceSpec("walltime", ("/venv/bin/python",))]
    out = {s.name: s for s in wrap_specs(RT, specs, binds=("/w",), bin_dir="/venv/bin", skip=("walltime",))}
    assert "--nv" in out["gpu"].argv and "--nv" not in out["cpu"].argv
    assert out["walltime"].argv == ("/venv/bin/python",) and out["cpu"].image == RT.image


def test_an_image_is_required():
    with pytest.raises(ConfigError, match="needs an image"):
        wrap(RuntimeSection(kind="apptainer"), ("x",), binds=(), gpus=False, bin_dir="/b")


def test_sif_names_follow_apptainer_pull():
    assert apptainer.sif_name("docker://ghcr.io/afbox/analysis:0.1.0") == "analysis_0.1.0.sif"
    assert apptainer.sif_name("docker://python") == "python_latest.sif"
    with pytest.raises(AfboxError, match="not an image reference"):
        apptainer.pull("/some/file.sif", Path("/tmp"))


def run_fake(*args, tmp_path, **env):
    log = tmp_path / "calls.jsonl"
    p = subprocess.run([str(FAKE), *args], capture_output=True, text=True,
                       env={**os.environ, "AFBOX_FAKE_APPTAINER_LOG": str(log), **env})
    return p, [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_fake_runs_the_inner_command_and_rejects_bad_shapes(tmp_path):
    sif = tmp_path / "a.sif"
    sif.write_text("#!/usr/bin/env run-singularity\n")
    p, calls = run_fake("exec", "--bind", str(tmp_path), str(sif), "echo", "inside", tmp_path=tmp_path)
    assert p.returncode == 0 and p.stdout == "inside\n" and calls[0][:2] == ["exec", "--bind"]
    p, _ = run_fake("exec", "--bind", "/does/not/exist", str(sif), "true", tmp_path=tmp_path)
    assert p.returncode == 255 and "mount source doesn't exist" in p.stderr
    p, _ = run_fake("exec", str(tmp_path / "missing.sif"), "true", tmp_path=tmp_path)
    assert p.returncode == 255 and "could not open image" in p.stderr
    p, _ = run_fake("run", str(sif), tmp_path=tmp_path)
    assert p.returncode == 255


def test_pull_through_the_fake(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{FAKE.parent}:{os.environ['PATH']}")
    path = apptainer.pull("docker://ghcr.io/afbox/analysis:0.1.0", tmp_path / "images")
    assert path == tmp_path / "images" / "analysis_0.1.0.sif"
    assert path.read_text().startswith("#!/usr/bin/env run-singularity")
