"""XCache contents: what is cached and how full, and an explicit purge."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


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
            "hits": None, "misses": None}


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
