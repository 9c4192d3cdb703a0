"""Every port a facility uses is port_base + a fixed offset, so two facilities differ by their base."""
from __future__ import annotations

OFFSETS = {"xcache": 0, "issuer": 1, "origin": 2, "gateway": 3, "gateway-scheduler": 4, "gateway-api": 5,
           "scheduler": 6, "dashboard": 7, "jupyter": 8, "walltime": 9,
           "hub": 10, "hub-api": 11, "hub-internal": 12}
# named clusters (afbox cluster up): cluster i uses base + NAMED_FIRST + NAMED_PER * i ...
NAMED_FIRST = 600
NAMED_PER = 20
# clusters the gateway creates on demand: ports from this window
# caches this facility keeps for other sites' data (afbox.sites): slot i uses base + PEER_CACHE_FIRST + i
PEER_CACHE_FIRST = 390
GATEWAY_FIRST = 400
GATEWAY_SIZE = 200
WORKER_FIRST = 20
PER_WORKER = 3  # nanny, worker, worker dashboard
# the facility's own workers (CPU and GPU) must stay below the gateway's window
MAX_WORKERS = (GATEWAY_FIRST - WORKER_FIRST) // PER_WORKER
# the range a facility may take: its named clusters (at most 20) come last
SPAN = NAMED_FIRST + NAMED_PER * 20


def port(base: int, what: str) -> int:
    return base + OFFSETS[what]


def worker_ports(base: int, index: int) -> dict[str, int]:
    first = base + WORKER_FIRST + PER_WORKER * index
    return {"nanny": first, "worker": first + 1, "worker-dashboard": first + 2}
