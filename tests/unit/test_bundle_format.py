"""The single-file format on a small bundle made here: the real stub and unpacker, with a stand-in
for the bundled interpreter (a shell script that runs this Python for the unpacker and otherwise
says what it was asked to run)."""
from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
from importlib import resources
from pathlib import Path

import pytest
import zstandard

from afbox.bundle import elf, layout, unpack
from afbox.bundle.build import _stub

FAKE_PYTHON = f"""#!/bin/sh
case "$3" in *unpack.py) shift 2; exec {sys.executable} "$@" ;; esac
echo "bundled python ran: $*"
"""


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_bundle(tmp: Path, glibc: str = "2.17") -> Path:
    m = layout.Manifest(afbox_version="0.1.0", built=0, build_host="test", python="3.11.2",
                        python_exe="usr/bin/python3.11", glibc=glibc)
    boot = {"usr/bin/python3.11": FAKE_PYTHON.encode(),
            layout.UNPACKER: resources.files("afbox.bundle").joinpath("unpack.py").read_bytes()}
    payload = {"usr/lib/python3/dist-packages/afbox/__init__.py": b"x = 1\n", "usr/share/afbox/data/f.bin": os.urandom(4096)}
    sums = [f"{layout.hashlib.sha256(d).hexdigest()}  {n}" for n, d in {**boot, **payload}.items()]
    parts = {"manifest": m.model_dump_json().encode(), "checksums": gzip.compress(("\n".join(sums) + "\n").encode()),
             "boot": gzip.compress(_tar(boot, "w")), "payload": zstandard.ZstdCompressor().compress(_tar(payload, "w"))}
    paths = {}
    for name, data in parts.items():
        paths[name] = tmp / name
        paths[name].write_bytes(data)
    out = tmp / "afbox.run"
    layout.write(out, _stub(m), paths)
    return out


def run(bundle: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bundle), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "HOME": str(home), "AFBOX_HOME": str(home / "afbox")})


@pytest.mark.skipif(not shutil.which("sha256sum"), reason="needs coreutils")
def test_first_run_unpacks_once_and_later_runs_start_at_once(tmp_path):
    b = make_bundle(tmp_path)
    h = layout.read_header(b)
    (tmp_path / "afbox" / "rt" / ".unpack-killed" / "usr").mkdir(parents=True)  # a first run killed mid-way
    first = run(b, tmp_path, "status")
    assert first.returncode == 0, first.stderr
    assert "first run" in first.stderr and "bundled python ran: -I -m afbox status" in first.stdout
    tree = tmp_path / "afbox" / "rt" / h.sha256
    assert (tree / layout.MARKER).exists() and (tree / "usr/share/afbox/data/f.bin").stat().st_size == 4096
    second = run(b, tmp_path, "status")
    assert second.returncode == 0 and "first run" not in second.stderr
    assert sorted(os.listdir(tree.parent)) == [".lock", h.sha256]


def test_a_flipped_byte_fails_closed(tmp_path):
    b = make_bundle(tmp_path)
    h = layout.read_header(b)
    data = bytearray(b.read_bytes())
    data[h.offset("payload") + 5] ^= 0xFF
    b.write_bytes(bytes(data))
    p = run(b, tmp_path, "status")
    assert p.returncode == 1 and "is damaged" in p.stderr and "bundled python ran" not in p.stdout
    assert os.listdir(tmp_path / "afbox" / "rt") == [".lock"]


def test_an_older_glibc_is_told(tmp_path):
    p = run(make_bundle(tmp_path, glibc="9.99"), tmp_path, "up")
    assert p.returncode == 1 and "needs glibc 9.99 or newer; this system has glibc 2." in p.stderr
    assert not (tmp_path / "afbox").exists()


def test_the_unpacker_checks_each_file_and_yields_to_a_finished_tree(tmp_path):
    b = make_bundle(tmp_path)
    h = unpack.header(str(b))
    sums = unpack.read_checksums(str(b), h)
    sums["usr/share/afbox/data/f.bin"] = "0" * 64
    with pytest.raises(unpack.Damaged, match="f.bin: sha256 differs"):
        unpack.extract_payload(str(b), h, str(tmp_path / "t1"), sums, set())
    # a tree finished by another first run: this one's work is dropped, the tree kept
    dest = tmp_path / "dest"
    (dest / "x").mkdir(parents=True)
    (dest / layout.MARKER).write_text("done\n")
    tmp = tmp_path / "t2"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layout.read_part(b, layout.read_header(b), "boot")))) as t:
        t.extractall(tmp)
    unpack.unpack(str(b), str(tmp), str(dest))
    assert not tmp.exists() and (dest / layout.MARKER).read_text() == "done\n"


def test_inspect_reads_header_and_manifest_without_unpacking(tmp_path):
    b = make_bundle(tmp_path)
    h = layout.read_header(b)
    assert h.glibc == "2.17" and h.python_exe == "usr/bin/python3.11" and h.sizes["manifest"] > 100
    assert layout.read_manifest(b).python == "3.11.2"
    with pytest.raises(layout.AfboxError, match="not an afbox bundle"):
        layout.read_header(Path(sys.executable))


@pytest.mark.skipif(not Path("/usr/bin/python3.11").exists(), reason="needs a Debian python3.11 to read")
def test_the_floor_names_the_newest_glibc_and_what_the_tree_lacks(tmp_path):
    (tmp_path / "bin").mkdir()
    shutil.copy("/usr/bin/python3.11", tmp_path / "bin" / "python3.11")
    fl = elf.floor(tmp_path)
    assert fl.glibc >= (2, 34) and fl.glibc_by == "bin/python3.11"
    assert "libz.so.1" in fl.host_libs and "libc.so.6" not in fl.host_libs
