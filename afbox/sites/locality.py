"""Where data is: which facility can read a file without crossing the WAN.

A site is origin for its own namespace and cache for its peers: it holds its own files, and a
peer's once that peer's file is complete in the cache it keeps for it (the same files `afbox cache
stats` counts: xrootd's cache keeps each one as a sparse copy beside its `.cinfo`).

`holdings` runs where the data is looked for, also on a worker at another site (it reads that
facility's record, named by AFBOX_FACILITY_RECORD in its gateway clusters' environment).
"""
from __future__ import annotations

import os
from pathlib import Path

from .. import record
from ..record import FacilityRecord
from ..state import FacilityState, resolve_name


def this_record(name: str | None = None) -> FacilityRecord:
    path = os.environ.get("AFBOX_FACILITY_RECORD")
    if path and not name:
        return FacilityRecord.model_validate_json(Path(path).read_text())
    rec = record.read(FacilityState(resolve_name(name or os.environ.get("AFBOX_FACILITY"))))
    if rec is None:
        raise RuntimeError("no running facility here")
    return rec


def complete(path: Path) -> bool:
    """A cached file with all its blocks (a partly read one is sparse: fewer blocks than its size)."""
    try:
        st = path.stat()
    except OSError:
        return False
    return path.with_name(path.name + ".cinfo").exists() and st.st_blocks * 512 >= st.st_size


def join(root: str, path: str) -> str:
    return f"{root.rstrip('/')}//{path.lstrip('/')}"


def holdings(owner: str, paths: list[str], name: str | None = None) -> dict[str, str | None]:
    """For each path of `owner`'s namespace, the root:// URL to read it here without the WAN, or None."""
    rec = this_record(name)
    if owner == rec.facility:  # our own data: the origin is here, read it through our XCache
        svc = rec.services.get("xcache") or rec.services.get("origin")
        return {p: join(svc.urls["root"], p) if svc else None for p in paths}
    site = rec.sites.get(owner)
    if not site or not site.cache:
        return dict.fromkeys(paths)
    cached = Path(rec.cache_dir).parent / f"site-{owner}"
    return {p: join(site.cache, p) if complete(cached / p.lstrip("/")) else None for p in paths}


def reader(owner: str, path: str, name: str | None = None, remote_root: str | None = None) -> str | None:
    """A URL to read the path here even when it is not cached yet: our XCache (our data), our cache
    for the owner's data, else the owner's own XCache over the WAN (remote_root)."""
    rec = this_record(name)
    if owner == rec.facility:
        return holdings(owner, [path], name)[path]
    site = rec.sites.get(owner)
    if site and site.cache:
        return join(site.cache, path)
    return join(remote_root, path) if remote_root else None
