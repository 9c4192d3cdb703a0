"""Run inside a Dask worker's pod as its preStop hook: retire this worker at its scheduler (its
data and tasks move to the other workers) before Kubernetes stops it, as the dask-kubernetes
operator retires workers before it scales their pods down.

    python -m afbox.backends.k3s.retire SCHEDULER_ADDRESS TIMEOUT

The worker is the one named $POD_NAME; TLS comes from the pod's DASK_DISTRIBUTED__COMM__* settings.
Whatever happens, it exits 0: Kubernetes stops the pod anyway, and a hook that fails only delays it.
"""
from __future__ import annotations

import asyncio
import os
import sys


async def retire(scheduler: str, name: str, timeout: float) -> list[str]:
    """Retire the worker called `name`; returns the addresses retired (none: it was not there)."""
    from distributed import Client

    async with Client(scheduler, asynchronous=True, timeout=timeout) as client:
        done = await asyncio.wait_for(client.retire_workers(names=[name], close_workers=True), timeout)
    return list(done)


def main(argv: list[str]) -> int:
    scheduler, timeout = argv[0], float(argv[1]) if len(argv) > 1 else 60.0
    name = os.environ.get("POD_NAME", "")
    try:
        done = asyncio.run(retire(scheduler, name, timeout))
        print(f"retired {name}: {', '.join(done) or 'not known to the scheduler'}", flush=True)
    except Exception as e:  # noqa: BLE001 - the pod stops either way
        print(f"could not retire {name} at {scheduler}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
