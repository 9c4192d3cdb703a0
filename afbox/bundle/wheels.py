"""The bundle's Python part: afbox and every package it needs, as PyPI wheels for the bundled
interpreter, installed into it the way a system Python holds them, so that `sys.executable` is a
real interpreter for kernels, Dask workers and named environments."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import AfboxError, CommandError
from ..run import require, run
from .debs import PYTHON, python_exe
from .layout import WHEELHOUSE

# the oldest manylinux the wheels may target: below the Debian parts' glibc, so never the floor
MANYLINUX = 28
SITE = Path("usr/lib/python3/dist-packages")   # Debian's site dir, found relative to the prefix
# what a named environment gets from the wheelhouse besides afbox's additions (afbox.envs.NEEDED)
ENV_BASE = ("dask", "numpy", "uproot", "awkward")
# a console script that runs with the interpreter beside it, wherever the tree is unpacked
TRAMPOLINE = ("#!/bin/sh\n"
              "'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")/python{v}\" \"$0\" \"$@\"\n"
              "' '''\n")


def _uv_env() -> dict[str, str]:
    return {"UV_NO_PROGRESS": "1", "NO_COLOR": "1", "UV_PYTHON_DOWNLOADS": "never"}


def platforms() -> list[str]:
    tags = [f"manylinux_2_{m}_x86_64" for m in range(MANYLINUX, 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def lock(source: Path, cache: Path, extra: list[str] = ()) -> list[str]:
    """Exact pins of afbox's dependencies (and extra requirements) for the bundled Python, kept in
    cache by the requirements they came from, so a rebuild of the same checkout resolves nothing."""
    reqs = (source / "pyproject.toml").read_text() + "\n".join(extra)
    key = hashlib.sha256(f"{reqs}|{MANYLINUX}|{PYTHON}".encode()).hexdigest()[:16]
    out = cache / "locks" / f"{key}.txt"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        extra_file = cache / "locks" / f"{key}.in"
        extra_file.write_text("\n".join(extra) + "\n")
        try:
            run([require("uv"), "pip", "compile", "--no-config", "--quiet", "--python-version", PYTHON,
                 "--python-platform", f"x86_64-manylinux_2_{MANYLINUX}", "--only-binary", ":all:",
                 str(source / "pyproject.toml"), str(extra_file), "-o", str(out) + ".tmp"], timeout=600, env=_uv_env())
        except CommandError as e:
            raise AfboxError("afbox's dependencies do not resolve to wheels for the bundled Python",
                             details=e.details, hint="every package must have a manylinux wheel on PyPI") from None
        os.replace(str(out) + ".tmp", out)
    return [ln.split()[0] for ln in out.read_text().splitlines() if "==" in ln and not ln.startswith((" ", "#"))]


def download(pins: list[str], cache: Path) -> Path:
    """The pinned wheels, fetched once into cache/wheels with pip (wheels only, for the bundled Python)."""
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    have = {_dist_key(p.name) for p in wheels.glob("*.whl")}
    missing = [p for p in pins if _pin_key(p) not in have]
    if missing:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(missing) + "\n")
        plats = [a for t in platforms() for a in ("--platform", t)]
        try:
            run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "--python-version", PYTHON, "--implementation", "cp", "--abi", f"cp{PYTHON.replace('.', '')}",
                 *plats, "-d", str(wheels), "-r", f.name], timeout=1800)
        except CommandError as e:
            raise AfboxError("pip could not download the wheels", details=e.details,
                             hint="check that this host reaches PyPI") from None
        finally:
            os.unlink(f.name)
    return wheels


def _pin_key(pin: str) -> str:
    name, version = pin.split("==", 1)
    return f"{re.sub(r'[-_.]+', '_', name).lower()}=={version}"


def _dist_key(filename: str) -> str:
    name, version = filename.split("-")[:2]
    return f"{re.sub(r'[-_.]+', '_', name).lower()}=={version}"


def afbox_wheel(source: Path, out: Path) -> Path:
    """afbox itself, built from the checkout into a wheel."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        run([require("uv"), "build", "--no-config", "--quiet", "--wheel", "-o", str(out), str(source)], timeout=600,
            env=_uv_env())
    except CommandError as e:
        raise AfboxError(f"could not build afbox from {source}", details=e.details) from None
    return next(out.glob("afbox-*.whl"))


def install(tree: Path, wheels: Path, pins: list[str], afbox: Path, source: Path) -> None:
    """Install the wheels into the bundled Python (offline, exactly the pins), move them to Debian's
    site dir, make console scripts relocatable and compile every module once."""
    py = python_exe(tree)
    prefix = tree / "usr"
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(pins) + "\n")
    try:
        run([require("uv"), "pip", "install", "--no-config", "--quiet", "--offline", "--no-index", "--find-links",
             str(wheels), "--no-deps", "--python", str(py), "--prefix", str(prefix), "--link-mode", "copy",
             "-r", f.name, str(afbox)], timeout=1200, env=_uv_env())
    except CommandError as e:
        raise AfboxError("installing the wheels into the bundled Python failed", details=e.details) from None
    finally:
        os.unlink(f.name)
    venv_site = prefix / "lib" / f"python{PYTHON}" / "site-packages"
    (tree / SITE).parent.mkdir(parents=True, exist_ok=True)
    venv_site.rename(tree / SITE)  # same depth: the RECORD files' relative paths stay right
    # the profiles live beside the package in a checkout (afbox.facility.BUNDLES)
    shutil.copytree(source / "bundles", tree / SITE / "bundles")
    relocatable_scripts(prefix / "bin")
    for alias in ("python3", "python"):  # what services and people call it by (services.issuer: bin_dir/python)
        (prefix / "bin" / alias).unlink(missing_ok=True)
        (prefix / "bin" / alias).symlink_to(py.name)
    run([str(py), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
         str(prefix / "lib" / f"python{PYTHON}"), str(tree / SITE)], timeout=1800, check=False)


def relocatable_scripts(bindir: Path) -> None:
    for p in bindir.iterdir():
        if p.is_symlink() or not p.is_file():
            continue
        head = p.read_bytes()[:256]
        if head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]:
            body = p.read_text().split("\n", 1)[1]
            p.write_text(TRAMPOLINE.format(v=PYTHON) + body)
            p.chmod(0o755)


def wheelhouse(tree: Path, wheels: Path, pins: list[str], env_pins: list[str] = ()) -> list[str]:
    """Copy into the tree the wheels a named environment needs by default, in the versions of the
    facility's own, and those of a named environment's lock (--with-env); returns their file names."""
    from ..envs.source import NEEDED
    pinned = {p.split("==")[0].lower(): p for p in pins}
    want = [pinned.get(n, n) for n in (*ENV_BASE, *NEEDED)]
    with tempfile.NamedTemporaryFile("w", suffix=".in", delete=False) as f:
        f.write("\n".join(want) + "\n")
    try:
        out = run([require("uv"), "pip", "compile", "--no-config", "--quiet", "--offline", "--no-index",
                   "--find-links", str(wheels), "--python", str(python_exe(tree)), "--no-header",
                   "--no-annotate", f.name], timeout=300, env=_uv_env()).stdout
    except CommandError as e:
        raise AfboxError("the named environments' wheels do not resolve from the downloaded ones",
                         details=e.details) from None
    finally:
        os.unlink(f.name)
    keys = {_pin_key(ln.split()[0]) for ln in out.splitlines() if "==" in ln} | {_pin_key(p) for p in env_pins}
    dest = tree / WHEELHOUSE
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(w.name for w in wheels.glob("*.whl") if _dist_key(w.name) in keys)
    for name in files:
        shutil.copy2(wheels / name, dest / name)
    return files
