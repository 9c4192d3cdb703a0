"""What the bundle's programs and libraries need from the dynamic loader: the libraries they name,
the glibc symbol versions they use, and where they look (RUNPATH). Read with pyelftools."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

# glibc itself: the one thing the bundle takes from the host, so never copied into it
GLIBC = frozenset({"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libresolv.so.2",
                   "libutil.so.1", "libanl.so.1", "libmvec.so.1", "ld-linux-x86-64.so.2", "libBrokenLocale.so.1",
                   "libnss_files.so.2", "libnss_dns.so.2", "libthread_db.so.1", "libc_malloc_debug.so.0"})


@dataclass(frozen=True)
class Elf:
    path: Path
    soname: str = ""
    needed: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    # (library, version) pairs it needs, e.g. ("libc.so.6", "GLIBC_2.34")
    versions: tuple[tuple[str, str], ...] = ()
    defines: frozenset[str] = field(default_factory=frozenset)  # versions it defines (a library)

    @property
    def glibc(self) -> tuple[int, int]:
        """The newest glibc it needs, (0, 0) for none."""
        return max((parse_glibc(v) for lib, v in self.versions if lib in GLIBC), default=(0, 0))


def parse_glibc(version: str) -> tuple[int, int]:
    if not version.startswith("GLIBC_") or not version[6:7].isdigit():
        return (0, 0)
    parts = version[6:].split(".")
    return (int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0)


def is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def read(path: Path) -> Elf | None:
    """The dynamic facts of an ELF file; None for a static one, a non-ELF file or a broken one."""
    try:
        with open(path, "rb") as f:
            e = ELFFile(f)
            dyn = next((s for s in e.iter_sections() if isinstance(s, DynamicSection)), None)
            if dyn is None:
                return None
            needed, runpath, soname = [], [], ""
            for tag in dyn.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(tag.needed)
                elif tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                    runpath += [p for p in (tag.runpath if tag.entry.d_tag == "DT_RUNPATH" else tag.rpath).split(":") if p]
                elif tag.entry.d_tag == "DT_SONAME":
                    soname = tag.soname
            versions, defines = [], set()
            for s in e.iter_sections():
                if isinstance(s, GNUVerNeedSection):
                    versions += [(vn.name, aux.name) for vn, auxs in s.iter_versions() for aux in auxs]
                elif isinstance(s, GNUVerDefSection):
                    defines |= {aux.name for _, auxs in s.iter_versions() for aux in auxs}
            return Elf(Path(path), soname, tuple(needed), tuple(runpath), tuple(versions), frozenset(defines))
    except (ELFError, OSError, ValueError):
        return None


def scan(root: Path, skip: tuple[Path, ...] = ()) -> list[Elf]:
    """Every dynamic ELF file under root (not following links), except under the skipped dirs."""
    out = []
    for d, dirs, files in os.walk(root):
        if any(Path(d) == s or s in Path(d).parents for s in skip):
            dirs[:] = []
            continue
        for name in files:
            p = Path(d) / name
            if is_elf(p) and (info := read(p)):
                out.append(info)
    return out


def search_dirs(elf: Elf) -> list[Path]:
    """Where the loader looks for elf's libraries inside the tree ($ORIGIN made concrete)."""
    origin = str(elf.path.parent)
    return [Path(os.path.normpath(p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin))) for p in elf.runpath]


def resolve(elf: Elf, soname: str, extra: tuple[Path, ...] = ()) -> Path | None:
    for d in (*search_dirs(elf), *extra):
        if (d / soname).exists():
            return d / soname
    return None


@dataclass
class Floor:
    """What the files need from the host: the newest glibc (and the file asking for it) and the
    libraries found nowhere in the tree."""
    glibc: tuple[int, int] = (0, 0)
    glibc_by: str = ""
    host_libs: dict[str, list[str]] = field(default_factory=dict)  # soname -> files that need it
    missing_versions: list[str] = field(default_factory=list)      # "file: lib VERSION" not defined by the lib

    @property
    def glibc_text(self) -> str:
        return f"{self.glibc[0]}.{self.glibc[1]}"


def floor(root: Path, elves: list[Elf] | None = None, preloaded: tuple[Path, ...] = ()) -> Floor:
    """Check every ELF under root: each library it names must resolve inside the tree through its own
    RUNPATH (or be one of `preloaded`, loaded first by every process), else the host must have it;
    the symbol versions it needs from a bundled library must be defined there."""
    elves = scan(root) if elves is None else elves
    by_path = {Path(os.path.realpath(e.path)): e for e in elves}
    pre = {p.name: p for p in preloaded}
    out = Floor()
    for e in elves:
        if e.glibc > out.glibc:
            out.glibc, out.glibc_by = e.glibc, str(e.path.relative_to(root))
        found: dict[str, Path] = {}
        for soname in e.needed:
            if soname in GLIBC:
                continue
            lib = resolve(e, soname) or pre.get(soname)
            if lib is None:
                out.host_libs.setdefault(soname, []).append(str(e.path.relative_to(root)))
            else:
                found[soname] = lib
        for soname, version in e.versions:
            lib = found.get(soname)
            target = by_path.get(Path(os.path.realpath(lib))) if lib else None
            if target is not None and target.defines and version not in target.defines:
                out.missing_versions.append(f"{e.path.relative_to(root)}: {soname} {version}")
    return out
