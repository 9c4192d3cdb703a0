"""The XCache's hits and misses from its own records (xrdpfc_print -json), as site caches count them."""
from __future__ import annotations

import json
from pathlib import Path

from afbox import cache
from afbox.cli import render

PRINTED = (Path(__file__).resolve().parent.parent / "fixtures" / "logs" / "xrdpfc_print-miss-then-hit.json")
MiB = 1024 ** 2


def test_a_cold_read_then_a_warm_one_is_one_miss_and_one_hit():
    """xrootd 5.5 itself counts both reads as hits (the cold one was served from blocks it prefetched)."""
    [info] = [json.loads(x) for x in PRINTED.read_text().splitlines()]
    assert [a["B_miss"] for a in info["accesses"]] == [0, 0]
    c = cache.counts(PRINTED.read_text())
    assert (c["hits"], c["misses"], c["hit_bytes"], c["miss_bytes"]) == (1, 1, 400 * MiB, 400 * MiB)
    assert c["hit_rate_requests"] == c["hit_rate_bytes"] == 0.5
    assert render.cache_hits(c) == [
        "hits/misses      1 / 1 file accesses (hit rate 50%)",
        "bytes            400.0 MiB served from the cache, 400.0 MiB fetched from the origin (hit rate 50%)"]


def test_merged_records_partial_files_and_bypassed_reads():
    files = [
        # three opens merged into the first record, then two more; half the file was fetched
        {"file_size": 100, "state_percentage": 50.0, "accesses": [
            {"B_hit": 30, "B_miss": 20, "B_bypass": 0, "n_mrg": 2},
            {"B_hit": 40, "B_miss": 0, "B_bypass": 0, "n_mrg": 0},
            {"B_hit": 0, "B_miss": 0, "B_bypass": 10, "n_mrg": 0}]},
        {"file_size": 10, "state_percentage": 0.0, "accesses": []},   # being fetched: no record yet
    ]
    c = cache.counts("\n".join(json.dumps(f) for f in files) + "\nnot json\n")
    assert (c["hits"], c["misses"]) == (3, 2)
    # served 100; fetched 50 kept + 10 passed through
    assert (c["hit_bytes"], c["miss_bytes"], c["hit_rate_bytes"]) == (40, 60, 0.4)
    empty = cache.counts("")
    assert (empty["hits"], empty["hit_rate_requests"], empty["hit_rate_bytes"]) == (0, None, None)
    assert render.cache_hits(cache.NOT_REPORTED)[0].startswith("hits/misses      not reported")
