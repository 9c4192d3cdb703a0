"""Default sizes from the host: Dask workers and threads from the cores, memory limits from RAM."""
from __future__ import annotations

from dataclasses import dataclass

from ..facility import Facility, parse_size

GiB = 1024 ** 3


@dataclass(frozen=True)
class DaskSize:
    workers: int
    threads: int
    memory_limit: int  # bytes per worker


def nprocesses_nthreads(n: int) -> tuple[int, int]:
    """The split LocalCluster uses (distributed.deploy.utils), restated so the CLI need not import
    distributed (a second of start-up): up to 4 cores one process each, beyond that the smallest
    factor of n that is >= sqrt(n) processes."""
    if n <= 4:
        return n, 1
    procs = min(f for f in range(1, n + 1) if n % f == 0 and f * f >= n)
    return procs, n // procs


def dask_size(fac: Facility, cpus: int, memory: int) -> DaskSize:
    auto_workers, auto_threads = nprocesses_nthreads(max(cpus, 1))
    workers = fac.dask.workers or auto_workers
    threads = fac.dask.threads_per_worker or max(1, cpus // workers if fac.dask.workers else auto_threads)
    if fac.dask.memory_limit == "auto":
        limit = int(memory * fac.dask.memory_fraction / workers)
    else:
        limit = parse_size(fac.dask.memory_limit)
    return DaskSize(workers, threads, limit)


def xcache_size(fac: Facility, disk_free: int, disk_total: int | None = None) -> int:
    """Cache high watermark in bytes: the profile's size, or half the free disk capped at 20 GiB; never
    more than 90% of the cache's filesystem (XrdPfc refuses watermarks beyond the filesystem's size)."""
    size = parse_size(fac.xcache.size) if fac.xcache.size != "auto" else max(1 * GiB, min(disk_free // 2, 20 * GiB))
    return min(size, int(disk_total * 0.9)) if disk_total else size
