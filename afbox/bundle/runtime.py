"""What changes when afbox runs from the single file: the stub sets AFBOX_BUNDLE (the unpacked tree)
and AFBOX_BUNDLE_FILE (the file itself). Outside a bundle every function here does nothing."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import AfboxError
from .layout import DATA, ENVS, MARKER, WHEELHOUSE


def root() -> Path | None:
    r = os.environ.get("AFBOX_BUNDLE")
    return Path(r) if r and (Path(r) / MARKER).exists() else None


def bundle_file() -> Path | None:
    f = os.environ.get("AFBOX_BUNDLE_FILE")
    return Path(f) if root() and f else None


def uv_env() -> dict[str, str]:
    """Named environments are built on the bundled interpreter from the bundled wheels, offline
    unless the user says otherwise (UV_OFFLINE=0 lets uv reach an index too)."""
    r = root()
    if r is None:
        return {}
    return {"UV_FIND_LINKS": str(r / WHEELHOUSE), "UV_OFFLINE": os.environ.get("UV_OFFLINE", "1"),
            "UV_PYTHON_PREFERENCE": "only-system", "UV_PYTHON_DOWNLOADS": "never"}


def env_requirements(name: str) -> Path | None:
    """The exact pins of environment NAME when the bundle carries it (built with --with-env NAME)."""
    r = root()
    f = r / ENVS / f"{name}.txt" if r else None
    return f if f and f.exists() else None


def seed_origin(origin_dir: Path) -> list[str]:
    """Copy the bundle's data into the facility's origin: files already there are never replaced."""
    r = root()
    src = r / DATA if r else None
    if src is None or not src.is_dir():
        return []
    copied = 0
    for p in sorted(src.rglob("*")):
        dest = origin_dir / p.relative_to(src)
        if p.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            dest.chmod(0o755)  # the origin's xrootd may run as its own user
        elif not dest.exists():
            shutil.copyfile(p, dest)
            dest.chmod(0o644)
            copied += 1
    return [f"origin: {copied} file(s) of the bundle's data put in {origin_dir}"] if copied else []


def install(bin_dir: Path, data_dir: Path) -> tuple[Path, Path]:
    """Keep a copy of the running bundle file in data_dir and put `afbox` (a link to it) in bin_dir."""
    f = bundle_file()
    if f is None:
        raise AfboxError("`install` is for the single-file bundle (./afbox.run install)",
                         hint="from a checkout, ./install.sh puts afbox on PATH")
    data_dir.mkdir(parents=True, exist_ok=True)
    kept = data_dir / "afbox.run"
    if not kept.exists() or not kept.samefile(f):
        tmp = data_dir / f".afbox.run.{os.getpid()}"
        shutil.copyfile(f, tmp)
        tmp.chmod(0o755)
        tmp.replace(kept)
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / "afbox"
    if link.exists() and not link.is_symlink():
        raise AfboxError(f"{link} exists and is not a link afbox made", hint="remove it, or choose --bin-dir")
    tmp_link = bin_dir / f".afbox.{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(kept)
    tmp_link.replace(link)
    return kept, link
