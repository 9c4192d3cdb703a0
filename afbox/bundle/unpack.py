"""The first run's unpacker. The stub has checked the file's sha256 and untarred the boot part (the
interpreter) into a temporary dir; this streams the payload into it, checking each file against the
bundle's checksums as it is written, marks the tree complete and renames it into place, atomically:
of two first runs at once, one rename wins and the other run uses its tree.

It runs before afbox is importable (`python -I -S unpack.py FILE TMP DEST`): standard library and
zstandard only. The same file is afbox.bundle.unpack, where the build and the tests use it.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import sys
import tarfile
import time

MARKER = ".afbox-unpacked"
PARTS = ("manifest", "checksums", "boot", "payload")
SITE = "usr/lib/python3/dist-packages"
BLOCK = 1 << 20


class Damaged(Exception):
    pass


def header(path: str) -> dict[str, str]:
    with open(path, "rb") as f:
        head = f.read(65536).decode("utf-8", "replace")
    return dict(re.findall(r"^AFBOX_([A-Z0-9_]+)=['\"]?([^'\"\n]*)['\"]?$", head, re.M))


def offset(h: dict[str, str], part: str) -> int:
    return int(h["STUB_BYTES"]) + sum(int(h[f"{p.upper()}_BYTES"]) for p in PARTS[:PARTS.index(part)])


def read_checksums(path: str, h: dict[str, str]) -> dict[str, str]:
    """relative path -> sha256 of a file, or `link:TARGET` of a symbolic link."""
    with open(path, "rb") as f:
        f.seek(offset(h, "checksums"))
        text = gzip.decompress(f.read(int(h["CHECKSUMS_BYTES"]))).decode()
    out = {}
    for line in text.splitlines():
        digest, rel = line.split("  ", 1)
        out[rel] = digest
    return out


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def _check_present(root: str, rel: str, want: str) -> None:
    p = os.path.join(root, rel)
    if want.startswith("link:"):
        if not os.path.islink(p) or os.readlink(p) != want[5:]:
            raise Damaged(f"{rel}: not the link the bundle lists")
    elif os.path.islink(p) or _digest(p) != want:
        raise Damaged(f"{rel}: sha256 differs from the bundle's list")


def _safe(root: str, name: str) -> str:
    dest = os.path.normpath(os.path.join(root, name))
    if not dest.startswith(root + os.sep):
        raise Damaged(f"{name}: outside the tree")
    return dest


def extract_payload(path: str, h: dict[str, str], root: str, sums: dict[str, str], seen: set[str]) -> None:
    """Stream the zstd tar into root, hashing each file as it is written."""
    import zstandard

    root = os.path.abspath(root)
    with open(path, "rb") as f:
        f.seek(offset(h, "payload"))
        raw = zstandard.ZstdDecompressor().stream_reader(_Limited(f, int(h["PAYLOAD_BYTES"])), read_size=BLOCK)
        with tarfile.open(fileobj=raw, mode="r|") as tar:
            for m in tar:
                rel = m.name.removeprefix("./")
                dest = _safe(root, rel)
                if m.isdir():
                    os.makedirs(dest, exist_ok=True)
                    continue
                want = sums.get(rel)
                if want is None:
                    raise Damaged(f"{rel}: not in the bundle's list")
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                if m.issym():
                    if want != f"link:{m.linkname}":
                        raise Damaged(f"{rel}: not the link the bundle lists")
                    os.symlink(m.linkname, dest)
                elif m.isfile():
                    src, digest = tar.extractfile(m), hashlib.sha256()
                    with open(dest, "wb") as out:
                        for block in iter(lambda: src.read(BLOCK), b""):
                            digest.update(block)
                            out.write(block)
                    if digest.hexdigest() != want:
                        raise Damaged(f"{rel}: sha256 differs from the bundle's list")
                    if m.mode & 0o111:  # no mtimes either: the .pyc files never check one
                        os.chmod(dest, m.mode & 0o755)
                else:
                    raise Damaged(f"{rel}: neither a file, a link nor a directory")
                seen.add(rel)


class _Limited:
    """A file object that ends after n bytes (the payload is followed by nothing, but be exact)."""

    def __init__(self, f, n: int):
        self.f, self.left = f, n

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data = self.f.read(size)
        self.left -= len(data)
        return data


def boot_files(root: str) -> list[str]:
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, n), root) for n in files]
    return out


def unpack(path: str, tmp: str, dest: str) -> float:
    """Complete tmp (holding the boot part) from the bundle at path, then rename it to dest."""
    t0 = time.monotonic()
    h = header(path)
    sums = read_checksums(path, h)
    seen: set[str] = set()
    for rel in boot_files(tmp):  # untarred by the stub; checked here
        if rel not in sums:
            raise Damaged(f"{rel}: not in the bundle's list")
        _check_present(tmp, rel, sums[rel])
        seen.add(rel)
    sys.path.insert(0, os.path.join(tmp, SITE))
    extract_payload(path, h, tmp, sums, seen)
    missing = sorted(set(sums) - seen)
    if missing:
        raise Damaged(f"{len(missing)} listed files are missing, e.g. {missing[0]}")
    with open(os.path.join(tmp, MARKER), "w") as f:
        f.write(f"{h['SHA256']} {time.time():.0f} {time.monotonic() - t0:.2f}\n")
    try:
        os.rename(tmp, dest)
    except OSError:
        if not os.path.exists(os.path.join(dest, MARKER)):
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another first run finished first: use its tree
    return time.monotonic() - t0


def main(argv: list[str]) -> int:
    path, tmp, dest = argv
    try:
        took = unpack(path, tmp, dest)
    except (Damaged, ImportError) as e:
        print(f"afbox.run: {path} is damaged ({e}); copy it again. Nothing was unpacked.", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"afbox.run: unpacking into {os.path.dirname(dest)} failed: {e} (disk full?)", file=sys.stderr)
        return 1
    print(f"afbox.run: unpacked in {took:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
