"""The bundle's Debian part: CPython and the XRootD server side taken from this host's Debian
archive (`apt-get download`, no root), unpacked with `dpkg-deb -x`, with exactly the shared
libraries their programs load copied beside them and every RUNPATH made relative ($ORIGIN), so the
tree runs from wherever it is unpacked and asks only glibc of the host."""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import AfboxError
from ..run import require, run
from . import elf

PYTHON = "3.11"
# unpacked whole: the interpreter, its standard library, xrootd/cmsd with their plugins, the client
# tools (xrdcp, for people and tests) and openssl (afbox hashes the facility CA with it)
CONTENT = (f"python{PYTHON}-minimal", f"libpython{PYTHON}-minimal", f"libpython{PYTHON}-stdlib",
           "xrootd-server", "xrootd-server-plugins", "xrootd-plugins", "xrootd-scitokens-plugins",
           "xrootd-client", "xrootd-client-plugins", "openssl")
# libraries the content may load; only those its programs actually name are copied (libc6 never)
NOT_LIBS = ("libc6", "libc-bin", "libperl", "libsystemd", "libpam", "libapparmor", "libselinux", "libsemanage",
            "libsepol", "libaudit")
LIB_PACKAGES = ("lib", "zlib1g")
LIBDIR = Path("usr/lib/x86_64-linux-gnu")
OSSL_MODULES = LIBDIR / "ossl-modules"
# loaded first by every bundled Python: wheels expect the host's C++ runtime, this makes it ours
PRELOAD = ("libstdc++.so.6", "libgcc_s.so.1")
DROP = ("etc", "usr/share/doc", "usr/share/man", "usr/share/lintian", "usr/share/bug", "var", "lib/systemd",
        "usr/lib/systemd", "usr/share/logrotate.d")


@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    file: Path


def python_exe(tree: Path) -> Path:
    return tree / "usr" / "bin" / f"python{PYTHON}"


def _closure() -> list[str]:
    """Names of the content packages and of every library package they depend on, recursively."""
    out = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
               "--no-breaks", "--no-replaces", "--no-enhances", *CONTENT], timeout=120).stdout
    names = {ln.strip() for ln in out.splitlines() if ln and not ln.startswith((" ", "<"))}
    libs = {n for n in names if n.startswith(LIB_PACKAGES) and not n.startswith(NOT_LIBS)}
    return sorted(set(CONTENT) | libs)


def download(cache: Path) -> list[Deb]:
    """The .debs of this host's archive, fetched once into cache (checked against the archive's sha256)."""
    require("apt-get")
    cache.mkdir(parents=True, exist_ok=True)
    names = _closure()
    res = run(["apt-get", "download", "--print-uris", *names], timeout=120, check=False)
    if res.code != 0:
        raise AfboxError("apt cannot find the Debian packages the bundle is made of", details=res.stderr.splitlines()[-5:],
                         hint="run `apt-get update` (as root) so this host's package lists are current")
    wanted: dict[str, tuple[str, str]] = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[3].startswith("SHA256:"):
            wanted[parts[1]] = (parts[0].strip("'"), parts[3].removeprefix("SHA256:"))
    missing = [f for f, (_, sha) in wanted.items() if not _intact(cache / f, sha)]
    if missing:
        pkgs = [f.split("_", 1)[0] for f in missing]
        got = run(["apt-get", "download", *pkgs], timeout=900, cwd=str(cache), check=False)
        still = [f for f in missing if not _intact(cache / f, wanted[f][1])]
        if still:
            raise AfboxError(f"could not download {len(still)} Debian package(s): {', '.join(still[:5])}",
                             details=got.stderr.splitlines()[-5:], hint="check that this host reaches its Debian mirror")
    return [Deb(f.split("_")[0], f.split("_")[1].replace("%3a", ":"), cache / f) for f in sorted(wanted)]


def _intact(path: Path, sha: str) -> bool:
    if not path.exists():
        return False
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest() == sha


def assemble(debs: list[Deb], tree: Path, staging: Path) -> list[str]:
    """Unpack the content packages into tree, copy in the libraries their ELF files need (found in the
    library packages, unpacked into staging), make every RUNPATH relative. Returns the copied sonames."""
    tree.mkdir(parents=True, exist_ok=True)
    staging.mkdir(parents=True, exist_ok=True)
    for d in debs:
        run(["dpkg-deb", "-x", str(d.file), str(tree if d.name in CONTENT else staging)], timeout=120)
    _flatten(tree)
    _flatten(staging)
    for rel in DROP:
        shutil.rmtree(tree / rel, ignore_errors=True)
    for link in [p for p in tree.rglob("*") if p.is_symlink() and os.readlink(p).startswith("/")]:
        link.unlink()  # into the host's /etc (apport hook, ssl config): not part of a portable tree
    libdir = tree / LIBDIR
    libdir.mkdir(parents=True, exist_ok=True)
    pool = {p.name: p for p in (staging / LIBDIR).glob("*.so*")}
    copied: list[str] = []
    todo = [*elf.scan(tree)]
    for name in PRELOAD:
        todo.append(_copy(pool, name, libdir, copied))
    while todo:
        e = todo.pop()
        for soname in e.needed:
            if soname in elf.GLIBC or (libdir / soname).exists() or elf.resolve(e, soname, (libdir,)):
                continue
            if soname not in pool:
                continue  # reported by the floor check, which names the file that wants it
            todo.append(_copy(pool, soname, libdir, copied))
    _copy_openssl_modules(staging, tree)
    set_runpaths(tree)
    py = python_exe(tree)
    patchelf = _patchelf()
    for name in PRELOAD:
        run([patchelf, "--add-needed", name, str(py)], timeout=60)
    return copied


def _copy(pool: dict[str, Path], soname: str, libdir: Path, copied: list[str]) -> elf.Elf:
    dest = libdir / soname
    shutil.copy2(pool[soname].resolve(), dest)
    copied.append(soname)
    info = elf.read(dest)
    if info is None:
        raise AfboxError(f"{soname} from the Debian packages is not a shared library")
    return info


def _copy_openssl_modules(staging: Path, tree: Path) -> None:
    """OpenSSL 3 keeps old ciphers in a module it looks for at a path compiled in (the host's); xrootd's
    sss protocol (the XCache's key to its origin) uses Blowfish from it and crashes without it. The
    stub points OPENSSL_MODULES at this copy."""
    src = staging / OSSL_MODULES
    if not (src / "legacy.so").exists():
        raise AfboxError("libssl3's package has no ossl-modules/legacy.so: xrootd's sss would crash without it")
    (tree / OSSL_MODULES).mkdir(parents=True, exist_ok=True)
    shutil.copy2((src / "legacy.so").resolve(), tree / OSSL_MODULES / "legacy.so")


def _flatten(root: Path) -> None:
    """Debian 12 packages still put some libraries in /lib: move them to /usr/lib, as usrmerge does."""
    old = root / "lib" / "x86_64-linux-gnu"
    if not old.is_dir():
        return
    (root / LIBDIR).mkdir(parents=True, exist_ok=True)
    for p in old.iterdir():
        target = root / LIBDIR / p.name
        if not target.exists() and not target.is_symlink():
            p.rename(target)
    shutil.rmtree(root / "lib", ignore_errors=True)


def set_runpaths(tree: Path) -> None:
    """Each Debian ELF file finds the bundled libraries relative to itself (wheels keep their own)."""
    patchelf = _patchelf()
    site = tree / "usr" / "lib" / "python3" / "dist-packages"
    for e in elf.scan(tree, skip=(site,)):
        rel = os.path.relpath(tree / LIBDIR, e.path.parent)
        want = "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"
        if e.runpath != (want,):
            run([patchelf, "--set-rpath", want, str(e.path)], timeout=60)


def _patchelf() -> str:
    """patchelf from its PyPI wheel (a dependency of afbox), beside this interpreter."""
    here = Path(sys.executable).parent / "patchelf"
    return str(here) if here.exists() else require("patchelf")


def release() -> str:
    """The Debian (or derivative) release the parts come from, e.g. 'Debian GNU/Linux 12 (bookworm)'."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"
