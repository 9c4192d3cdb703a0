"""The apptainer argv afbox builds, run by a real apptainer (only where one is installed).

The image is a sandbox directory holding no more than mount points, with the host's /usr bound in,
so the test needs no registry and no network."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from afbox.facility import RuntimeSection
from afbox.runtimes import apptainer, wrap

pytestmark = pytest.mark.integration
if not shutil.which("apptainer"):
    pytest.skip("apptainer not installed (not in Debian 12: https://apptainer.org); "
                "tests/unit/test_apptainer.py covers the argv with a fake", allow_module_level=True)


@pytest.fixture
def sandbox(tmp_path) -> Path:
    root = tmp_path / "sandbox"
    for d in ("usr", "etc", "tmp", "proc", "sys", "dev", "root", "home", "var/tmp"):
        (root / d).mkdir(parents=True)
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin")):
        if (Path("/") / link).is_symlink():
            (root / link).symlink_to(target)
    return root


def test_wrapped_command_runs_in_the_container_with_its_binds(sandbox, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "note.txt").write_text("kept\n")
    rt = RuntimeSection(kind="apptainer", image=str(sandbox))
    argv = wrap(rt, ("/usr/bin/cat", str(work / "note.txt")), binds=("/usr", str(work)), gpus=False,
                bin_dir="/nonexistent")
    assert argv[:4] == ("apptainer", "exec", "--bind", f"/usr,{work}")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "kept\n"


def test_a_missing_bind_is_refused(sandbox, tmp_path):
    argv = apptainer.exec_argv(str(sandbox), ("/usr/bin/true",), binds=("/usr", str(tmp_path / "nope")),
                               gpus=False)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "nope" in p.stderr


def test_version_answers():
    p = subprocess.run(["apptainer", "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "apptainer version" in p.stdout, os.environ.get("PATH")
