"""`afbox bundle inspect`: what a bundle holds, read from its header and manifest without unpacking."""
from __future__ import annotations

import gzip
import time
from pathlib import Path

from ..units import human_bytes
from . import layout

KEY_WHEELS = ("afbox", "dask", "distributed", "jupyterlab", "dask-gateway-server", "numpy", "uproot", "xrootd")
KEY_DEBS = ("python3.11-minimal", "xrootd-server", "xrootd-scitokens-plugins", "libscitokens0", "openssl")


def describe(path: Path) -> dict:
    """Header, manifest and sizes of the file at path, as plain data (`--json` prints it)."""
    h = layout.read_header(path)
    m = layout.read_manifest(path, h)
    return {"file": str(path), "size": path.stat().st_size, "sha256": h.sha256, "parts": h.sizes,
            "stub_bytes": layout.STUB_BYTES, **m.model_dump()}


def checksums(path: Path) -> list[str]:
    h = layout.read_header(path)
    return gzip.decompress(layout.read_part(path, h, "checksums")).decode().splitlines()


def lines(d: dict) -> list[str]:
    wheels = {w["name"].lower(): w["version"] for w in d["wheels"]}
    debs = {p["name"]: p["version"] for p in d["debs"]}
    out = [f"{d['file']}: afbox {d['afbox_version']}, {human_bytes(d['size'])}, format {d['format']}",
           f"  sha256       {d['sha256']}",
           f"  built        {time.strftime('%Y-%m-%d %H:%M', time.localtime(d['built']))} from {d['build_host']} packages",
           "  parts        " + ", ".join(f"{k} {human_bytes(v)}" for k, v in d["parts"].items()),
           f"  unpacked     {d['files']} files, {human_bytes(d['unpacked_bytes'])}",
           f"  python       {d['python']} ({d['python_exe']})",
           f"  needs        glibc >= {d['glibc']} (for {d['glibc_by']})"
           + ("" if d["host_libs"] else "; nothing else from the host"),
           *(f"               {lib} (for {', '.join(users[:2])}{' ...' if len(users) > 2 else ''})"
             for lib, users in sorted(d["host_libs"].items())),
           f"  wheels       {len(d['wheels'])}: " + ", ".join(f"{n} {wheels[n]}" for n in KEY_WHEELS if n in wheels),
           f"  debs         {len(d['debs'])}: " + ", ".join(f"{n} {debs[n]}" for n in KEY_DEBS if n in debs),
           f"  wheelhouse   {len(d['wheelhouse'])} wheels for `afbox env create` (offline)"]
    out += [f"  env          {name}: {len(pins)} packages" for name, pins in d["envs"].items()]
    if d["data"]:
        out.append(f"  data         {len(d['data'])} files, {human_bytes(sum(d['data'].values()))} "
                   f"for the origin: " + ", ".join(sorted(d["data"])[:2]) + (" ..." if len(d["data"]) > 2 else ""))
    return out
