"""`afbox bundle build`: one self-verifying file from Debian packages and PyPI wheels only.

Downloads (.debs, wheels, the resolved pins) are kept in a cache dir, so a rebuild of the same
checkout fetches and resolves nothing."""
from __future__ import annotations

import gzip
import os
import platform
import shutil
import tarfile
import time
from importlib import resources
from pathlib import Path
from typing import Iterator

import zstandard

from .. import __version__
from .. import events as ev
from ..errors import AfboxError
from ..run import run, which
from . import debs, elf, layout, wheels

FONTAWESOME = "usr/share/jupyterhub/static/components/@fortawesome/fontawesome-free"
UNUSED = tuple(f"{FONTAWESOME}/{d}" for d in ("svgs", "svgs-full", "sprites", "sprites-full", "metadata", "js"))
LEVEL = 10          # zstd: ~160 MiB for ~700 MB in ~30 s on 2 cores; 19 saves 17% for 20x the time
DATA, ENVS = layout.DATA, layout.ENVS


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "afbox" / "bundle-build"


def source_checkout() -> Path:
    """The checkout this afbox runs from (a bundle is built from source, not from an install)."""
    root = Path(__file__).resolve().parent.parent.parent
    if not (root / "pyproject.toml").exists() or not (root / "bundles").is_dir():
        raise AfboxError("afbox is not running from a checkout, so there is no source to bundle",
                         hint="run `afbox bundle build` from a git checkout installed with ./install.sh, "
                              "or pass --source DIR")
    return root


def build(out: Path, source: Path | None = None, cache: Path | None = None, data: str | None = None,
          envs: tuple[str, ...] = (), level: int = LEVEL) -> Iterator[ev.Event]:
    t0 = time.monotonic()
    if platform.system() != "Linux" or platform.machine() != "x86_64" or not (which("apt-get") and which("dpkg-deb")):
        raise AfboxError("building a bundle needs an x86_64 Debian or Ubuntu host (apt-get, dpkg-deb)")
    source = Path(source) if source else source_checkout()
    cache = Path(cache) if cache else default_cache()
    work = cache / f"work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    tree = work / "tree"
    try:
        yield _info("Debian packages: CPython, XRootD server side, the libraries they load ...")
        parts = debs.download(cache / "debs")
        debs.assemble(parts, tree, work / "staging")
        yield _info("PyPI wheels: afbox and its dependencies ...")
        pins = wheels.lock(source, cache)
        wheeldir = wheels.download(pins, cache)
        afbox_whl = wheels.afbox_wheel(source, work / "dist")
        wheels.install(tree, wheeldir, pins, afbox_whl, source)
        _prune(tree)
        env_pins = {name: _env_pins(name) for name in envs}
        for name, p in env_pins.items():
            wheels.download(p, cache)
            (tree / ENVS).mkdir(parents=True, exist_ok=True)
            (tree / ENVS / f"{name}.txt").write_text("\n".join(p) + "\n")
        house = wheels.wheelhouse(tree, wheeldir, pins, [p for v in env_pins.values() for p in v])
        seeded = _data(tree, data) if data else {}
        yield _info("checking what the files need from the host ...")
        # what the interpreter loads is loaded in every Python process before any wheel's library
        libdir, py = tree / debs.LIBDIR, elf.read(debs.python_exe(tree))
        fl = elf.floor(tree, preloaded=tuple(libdir / n for n in py.needed if (libdir / n).exists()))
        if fl.missing_versions:
            raise AfboxError("bundled libraries lack symbol versions their users need",
                             details=fl.missing_versions[:10])
        _copy_unpacker(tree)
        yield _info(f"compressing (zstd level {level}) ...")
        manifest = layout.Manifest(
            afbox_version=__version__, built=time.time(), build_host=debs.release(), python=_python_version(tree),
            python_exe=str(debs.python_exe(tree).relative_to(tree)), glibc=fl.glibc_text, glibc_by=fl.glibc_by,
            host_libs=fl.host_libs, debs=[layout.Part(name=d.name, version=d.version) for d in parts],
            wheels=[layout.Part(name=p.split("==")[0], version=p.split("==")[1]) for p in pins],
            wheelhouse=house, envs=env_pins, data=seeded)
        files = _pack(tree, work, manifest, level)
        header = layout.write(out, _stub(manifest), files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = out.stat().st_size
    yield _info(f"wrote {out}: {size / 2**20:.0f} MiB, {manifest.files} files ({manifest.unpacked_bytes / 2**20:.0f} MiB "
                f"unpacked), glibc >= {manifest.glibc}, sha256 {header.sha256[:16]}..., in {time.monotonic() - t0:.0f}s")


def _prune(tree: Path) -> None:
    """Files no process of the facility opens: JupyterHub's pages load Font Awesome's CSS and web
    fonts only, not its 40 MB of SVGs, sprites, metadata and JS; the packages' own test suites
    (`tests` directories, 40 MB; numpy.testing and the like are not among them)."""
    for rel in UNUSED:
        shutil.rmtree(tree / rel, ignore_errors=True)
    site = tree / "usr" / "lib" / "python3" / "dist-packages"
    for d in sorted(site.glob("*/**/tests"), key=lambda p: len(p.parts)):
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)


def _info(message: str) -> ev.Event:
    return ev.Event(ev.INFO, "", message)


def _python_version(tree: Path) -> str:
    return run([str(debs.python_exe(tree)), "-c", "import platform; print(platform.python_version())"],
               timeout=60).stdout.strip()


def _env_pins(name: str) -> list[str]:
    """The exact pins of a named environment built here (its afbox-lock.txt)."""
    from .. import envs
    env = envs.get(name)
    lock = env.prefix / "afbox-lock.txt"
    if env.image or not lock.exists():
        raise AfboxError(f"environment {name!r} has no lock of PyPI packages to bundle",
                         hint="--with-env takes environments built from requirements (afbox env create NAME -r ...)")
    return [ln.split()[0] for ln in lock.read_text().splitlines() if "==" in ln and not ln.startswith((" ", "#"))]


def _data(tree: Path, which_data: str) -> dict[str, int]:
    """Demo data pre-seeded for the facility's origin (the same files `afbox demo data` writes)."""
    if which_data != "demo":
        raise AfboxError(f"--with-data {which_data!r}: the bundle knows only 'demo'")
    from ..demo.data import write_dataset
    from ..demo.on_facility import DATASET, dataset_name
    events, nfiles, seed = 100_000, 4, 1
    name = dataset_name(events, nfiles, seed)
    root = tree / DATA / DATASET
    paths = write_dataset(root / name, events=events, files=nfiles, seed=seed)
    (root / "CURRENT").write_text(name + "\n")
    return {str(p.relative_to(tree / DATA)): p.stat().st_size for p in paths}


def _copy_unpacker(tree: Path) -> None:
    dest = tree / layout.UNPACKER
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(resources.files("afbox.bundle").joinpath("unpack.py").read_text())


def _boot(tree: Path) -> set[str]:
    """What the first run needs before the payload: the interpreter, its standard library and the
    libraries they load, zstandard and the unpacker."""
    py = debs.python_exe(tree)
    std = tree / "usr" / "lib" / f"python{debs.PYTHON}"
    roots = [py, *std.rglob("*.so")]
    keep = {py, *std.rglob("*"), tree / layout.UNPACKER, *(tree / wheels.SITE / "zstandard").rglob("*")}
    libdir = tree / debs.LIBDIR
    todo = [e for e in (elf.read(p) for p in roots) if e]
    while todo:
        e = todo.pop()
        for soname in e.needed:
            lib = libdir / soname
            if lib.exists() and lib not in keep:
                keep.add(lib)
                if lib.is_symlink():
                    keep.add(lib.resolve())
                if (info := elf.read(lib.resolve())):
                    todo.append(info)
    return {str(p.relative_to(tree)) for p in keep if not p.is_dir()}


def _entries(tree: Path) -> tuple[list[str], list[str]]:
    dirs, files = [], []
    for d, dnames, fnames in os.walk(tree):
        dnames.sort()
        rel = os.path.relpath(d, tree)
        if rel != ".":
            dirs.append(rel)
        files += [os.path.normpath(os.path.join(rel, n)) for n in sorted(fnames)]
        files += [os.path.normpath(os.path.join(rel, n)) for n in dnames if os.path.islink(os.path.join(d, n))]
    return dirs, files


def _pack(tree: Path, work: Path, manifest: layout.Manifest, level: int) -> dict[str, Path]:
    dirs, files = _entries(tree)
    boot = _boot(tree)
    sums, total = [], 0
    for rel in files:
        p = tree / rel
        if p.is_symlink():
            sums.append(f"link:{os.readlink(p)}  {rel}")
        else:
            sums.append(f"{layout.sha256_file(p)}  {rel}")
            total += p.stat().st_size
    manifest.files, manifest.unpacked_bytes = len(files), total
    out = {"manifest": work / "manifest.json", "checksums": work / "checksums.txt.gz",
           "boot": work / "boot.tar.gz", "payload": work / "payload.tar.zst"}
    out["manifest"].write_text(manifest.model_dump_json(indent=1))
    out["checksums"].write_bytes(gzip.compress(("\n".join(sums) + "\n").encode(), mtime=0))
    with tarfile.open(out["boot"], "w:gz", compresslevel=6) as tar:
        for rel in sorted(boot):
            tar.add(tree / rel, arcname=rel, recursive=False)
    # long-distance matching over a 128 MiB window (the decoder's default limit) finds the many
    # near-copies in a Python tree: ~4% smaller for ~10% more time
    cctx = zstandard.ZstdCompressor(compression_params=zstandard.ZstdCompressionParameters.from_level(
        level, window_log=27, enable_ldm=True, threads=-1))
    with open(out["payload"], "wb") as raw, cctx.stream_writer(raw) as z:
        with tarfile.open(fileobj=z, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for rel in dirs:
                tar.add(tree / rel, arcname=rel, recursive=False)
            for rel in files:
                if rel not in boot:
                    tar.add(tree / rel, arcname=rel, recursive=False)
    return out


def _stub(m: layout.Manifest) -> str:
    text = resources.files("afbox.bundle").joinpath("stub.sh").read_text()
    for key, value in {"VERSION": m.afbox_version, "GLIBC": m.glibc, "PYTHON": m.python_exe,
                       "STUB_BYTES": str(layout.STUB_BYTES)}.items():
        text = text.replace(f"@{key}@", value)
    return text
