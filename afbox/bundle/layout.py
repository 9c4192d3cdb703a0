"""The single file: a POSIX sh stub of fixed size whose header names the sha256 and size of each
part, then the parts (Zarf's spirit: one file, verifiable, offline):

    stub (STUB_BYTES)  manifest.json  checksums.txt.gz  boot.tar.gz  payload.tar.zst

The stub checks the sha256 of everything after it before anything is unpacked. boot.tar.gz holds the
interpreter and what unpacking needs (only gzip and tar are asked of the host); payload.tar.zst the
rest. checksums.txt.gz lists the sha256 of every file of both, checked as each file is written.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from ..errors import AfboxError

FORMAT = 1
STUB_BYTES = 16384
PARTS = ("manifest", "checksums", "boot", "payload")
MARKER = ".afbox-unpacked"          # written last into an unpacked tree: it is complete and checked
UNPACKER = ".afbox/unpack.py"       # inside boot: the first run's unpacker (afbox.bundle.unpack)
# inside the tree
WHEELHOUSE = Path("usr/share/afbox/wheels")   # what `afbox env create` installs from, offline
DATA = Path("usr/share/afbox/data")           # --with-data: laid out as in the origin's data dir
ENVS = Path("usr/share/afbox/envs")           # --with-env: NAME.txt, the exact pins of the environment


class Part(BaseModel):
    name: str
    version: str


class Manifest(BaseModel):
    """What the bundle holds; `afbox bundle inspect` prints it."""
    format: int = FORMAT
    afbox_version: str
    built: float
    build_host: str                        # the Debian release the parts come from
    python: str                            # version of the bundled interpreter
    python_exe: str                        # its path inside the tree
    glibc: str                             # the oldest glibc the bundle runs on
    glibc_by: str = ""                     # the file that needs it
    host_libs: dict[str, list[str]] = {}   # libraries besides glibc the host must have (ideally none)
    debs: list[Part] = []
    wheels: list[Part] = []
    wheelhouse: list[str] = []             # wheel files named environments install from
    envs: dict[str, list[str]] = {}        # --with-env: name -> its requirements (exact pins)
    data: dict[str, int] = {}              # --with-data: origin path -> bytes
    files: int = 0
    unpacked_bytes: int = 0


@dataclass(frozen=True)
class Header:
    """The stub's variables: what the shell needs before any Python runs."""
    sha256: str
    sizes: dict[str, int]
    glibc: str
    python_exe: str
    version: str

    def offset(self, part: str) -> int:
        return STUB_BYTES + sum(self.sizes[p] for p in PARTS[:PARTS.index(part)])


def sha256_file(path: Path, start: int = 0) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_header(path: Path) -> Header:
    try:
        with open(path, "rb") as f:
            head = f.read(STUB_BYTES).decode("utf-8", "replace")
    except OSError as e:
        raise AfboxError(f"cannot read {path}: {e.strerror}") from None
    v = dict(re.findall(r"^AFBOX_([A-Z0-9_]+)=['\"]?([^'\"\n]*)['\"]?$", head, re.M))
    if not head.startswith("#!/bin/sh") or v.get("FORMAT") != str(FORMAT):
        raise AfboxError(f"{path} is not an afbox bundle (or one of another format)",
                         hint="make one with: afbox bundle build -o afbox.run")
    return Header(sha256=v["SHA256"], sizes={p: int(v[f"{p.upper()}_BYTES"]) for p in PARTS}, glibc=v["GLIBC"],
                  python_exe=v["PYTHON"], version=v["VERSION"])


def read_part(path: Path, header: Header, part: str) -> bytes:
    with open(path, "rb") as f:
        f.seek(header.offset(part))
        return f.read(header.sizes[part])


def read_manifest(path: Path, header: Header | None = None) -> Manifest:
    header = header or read_header(path)
    return Manifest.model_validate_json(read_part(path, header, "manifest"))


def write(out: Path, stub: str, parts: dict[str, Path]) -> Header:
    """Join stub and parts into out (made executable); the stub's placeholders get the sizes and
    the sha256 of what follows it."""
    sizes = {p: parts[p].stat().st_size for p in PARTS}
    h = hashlib.sha256()
    for p in PARTS:
        with open(parts[p], "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    text = stub.replace("@SHA256@", h.hexdigest())
    for p in PARTS:
        text = text.replace(f"@{p.upper()}_BYTES@", str(sizes[p]))
    raw = text.encode()
    if len(raw) > STUB_BYTES - 2:
        raise AfboxError(f"the stub is {len(raw)} bytes, more than its {STUB_BYTES}")
    # the shell never reads past `exit` on the stub's last line; the padding is a comment
    raw = raw + b"#" * (STUB_BYTES - len(raw) - 1) + b"\n"
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        f.write(raw)
        for p in PARTS:
            with open(parts[p], "rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    f.write(block)
    tmp.chmod(0o755)
    tmp.replace(out)
    return read_header(out)
