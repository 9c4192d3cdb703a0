"""Apptainer: `apptainer exec [--nv] --bind ... IMAGE argv`, and `apptainer pull` of docker images."""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import AfboxError
from ..run import require, run

PULL_TIMEOUT = 3600  # big analysis images take a while to convert
REFERENCE = re.compile(r"^(docker|oras|library)://\S+$")


def exec_argv(image: str, argv: tuple[str, ...], *, binds: tuple[str, ...], gpus: bool) -> tuple[str, ...]:
    """--nv only when the process is given GPUs: on a node without the NVIDIA driver it only warns,
    but it also binds the host's driver libraries into every container that does not need them."""
    out = ["apptainer", "exec"]
    if gpus:
        out.append("--nv")
    if binds:
        out += ["--bind", ",".join(binds)]
    return (*out, image, *argv)


def inner(argv: tuple[str, ...], bin_dir: str) -> tuple[str, ...]:
    """Programs from afbox's own virtualenv are taken from the image instead (its `dask`, `jupyter`):
    the host's venv is not inside the container."""
    head = argv[0]
    if os.path.dirname(head) == bin_dir:
        head = os.path.basename(head)
    return (head, *argv[1:])


def sif_name(image: str) -> str:
    """docker://ghcr.io/org/analysis:1.2 -> analysis_1.2.sif (apptainer pull's own naming)."""
    ref = re.sub(r"^[a-z]+://", "", image).split("@")[0]
    name, _, tag = ref.rpartition("/")[2].partition(":")
    return f"{name}_{tag or 'latest'}.sif"


def pull(image: str, dest_dir: Path) -> Path:
    if not is_reference(image):
        raise AfboxError(f"not an image reference to pull: {image!r}",
                         hint="e.g. afbox images pull docker://ghcr.io/afbox/analysis:0.1.0")
    require("apptainer")
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / sif_name(image)
    if not dest.exists():
        run(["apptainer", "pull", str(dest), image], timeout=PULL_TIMEOUT)
    return dest


def is_reference(image: str) -> bool:
    """An image to pull (docker://, oras://, library://) rather than one on disk."""
    return bool(REFERENCE.match(image))


def local_image(image: str) -> Path:
    """A .sif file or a sandbox directory, used where it is (apptainer runs both as they are)."""
    path = Path(image).expanduser().resolve()
    if path.is_dir() or (path.is_file() and path.suffix == ".sif"):
        return path
    raise AfboxError(f"{image}: not a .sif file, a sandbox directory or an image reference",
                     hint="e.g. --image docker://ghcr.io/afbox/analysis:0.1.0, --image analysis.sif, "
                          "--image sandbox-dir/")
