"""XCache contents: what is cached and how full, how often reads found their data there, and an
explicit purge.

Hits and misses come from the cache's own statistics: XrdPfc keeps, in each cached file's `.cinfo`,
its download state and a record per access (a file open; past a few, records are merged) with the
bytes it served; `xrdpfc_print -json` reads them. XrdPfc counts a read served from a block it had
prefetched as a hit, so a cold read looks like a hit there; afbox counts as site caches report it:
by requests, an access is a miss when it brought the file into the cache or read from the origin,
else a hit; by bytes, what the cache had to fetch from the origin (its blocks on disk, and what it
passed through without keeping) against all it served. Records are written when a file is closed
(within seconds: `pss.ciosync`), and go with a file when the cache purges it: the counts cover the
files in the cache now.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .errors import AfboxError
from .run import run, which


def stats(cache_dir: Path, high: int) -> dict:
    """Bytes on disk (cache files are sparse until fully read), files, fill vs the watermarks."""
    files = 0
    used = 0
    complete_bytes = 0
    if cache_dir.exists():
        for root, _, names in os.walk(cache_dir):
            for n in names:
                if n.endswith(".cinfo"):
                    continue
                st = os.stat(os.path.join(root, n))
                files += 1
                used += st.st_blocks * 512
                complete_bytes += st.st_size
    from .services.xcache import BASELINE, NOMINAL
    return {"cache_dir": str(cache_dir), "files": files, "bytes": used, "logical_bytes": complete_bytes,
            "high_watermark": high, "nominal_watermark": int(high * NOMINAL), "low_watermark": int(high * BASELINE),
            "fill": used / high if high else 0.0,
            **access_counts(cache_dir)}


NOT_REPORTED = {"hits": None, "misses": None, "hit_bytes": None, "miss_bytes": None,
                "hit_rate_requests": None, "hit_rate_bytes": None}


def access_counts(cache_dir: Path) -> dict:
    """Hits and misses by requests and by bytes from the cache's own records (None where xrdpfc_print,
    from xrootd-server, is missing or cannot read them)."""
    tool = which("xrdpfc_print")
    if not tool or not cache_dir.exists():
        return dict(NOT_REPORTED)
    try:
        out = run([tool, "-json", str(cache_dir)], timeout=60, check=False).stdout
    except AfboxError:
        return dict(NOT_REPORTED)
    return counts(out)


def counts(printed: str) -> dict:
    """What xrdpfc_print -json printed (one object per cached file), summed over files (pure)."""
    hits = misses = 0
    served_total = fetched_total = bypass_total = 0
    for line in printed.splitlines():
        try:
            info = json.loads(line)
        except ValueError:
            continue
        if not isinstance(info, dict):
            continue
        served = fetched = 0
        for k, a in enumerate(info.get("accesses", ())):
            n = 1 + int(a.get("n_mrg", 0))  # a merged record stands for several accesses
            missed, bypassed = int(a.get("B_miss", 0)), int(a.get("B_bypass", 0))
            served += int(a.get("B_hit", 0)) + missed + bypassed
            bypass_total += bypassed
            if k == 0 or missed or bypassed:  # the first access brought the file in
                misses, hits = misses + 1, hits + n - 1
            else:
                hits += n
        fetched = int(int(info.get("file_size", 0)) * float(info.get("state_percentage", 0.0)) / 100)
        served_total += served
        fetched_total += min(served, fetched)
    miss_b = fetched_total + bypass_total
    return {"hits": hits, "misses": misses, "hit_bytes": max(0, served_total - miss_b), "miss_bytes": miss_b,
            "hit_rate_requests": hits / (hits + misses) if hits + misses else None,
            "hit_rate_bytes": max(0, served_total - miss_b) / served_total if served_total else None}


def purge(cache_dir: Path) -> int:
    """Remove every cached file, keep the directory (and its owner). Returns the cached files removed,
    counted as stats counts them (a file's .cinfo, xrootd's record of which blocks it holds, is not one)."""
    removed = 0
    if not cache_dir.exists():
        return 0
    for entry in cache_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            removed += sum(1 for _, _, names in os.walk(entry) for n in names if not n.endswith(".cinfo"))
            shutil.rmtree(entry)
        else:
            removed += not entry.name.endswith(".cinfo")
            entry.unlink()
    return removed
