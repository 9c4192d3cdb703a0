"""Gateway clusters as local processes on loopback, on ports from the facility's range.

The stock local backend binds 0.0.0.0 on random ports; here each cluster takes a slot of
SLOT_SIZE ports: scheduler, dashboard, gateway API, then (worker, nanny) pairs.
"""
from __future__ import annotations

from dask_gateway_server.backends.local import UnsafeLocalBackend
from traitlets import Integer

from ..host import port_free

HOST = "127.0.0.1"
SLOT_SIZE = 20
FIRST_WORKER = 3


def _set(cmd: list[str], values: dict[str, str | None]) -> list[str]:
    """Replace each flag's value (None: drop the flag and its value); add flags that are missing."""
    out, i = [], 0
    seen = set()
    while i < len(cmd):
        if cmd[i] in values:
            seen.add(cmd[i])
            if values[cmd[i]] is not None:
                out += [cmd[i], values[cmd[i]]]
            i += 2
        else:
            out.append(cmd[i])
            i += 1
    for flag, value in values.items():
        if flag not in seen and value is not None:
            out += [flag, value]
    return out


class FacilityBackend(UnsafeLocalBackend):
    """Clusters run as the facility's user (it is a single-user facility)."""

    default_host = HOST
    port_first = Integer(0, help="first port of the window clusters take their ports from", config=True)
    port_count = Integer(200, help="size of that window", config=True)
    slot_size = Integer(SLOT_SIZE, help="ports per cluster: 3 and two per worker", config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._slots: dict[str, int] = {}
        self._workers: dict[str, dict[str, int]] = {}

    def _slot(self, cluster) -> int:
        if cluster.name not in self._slots:
            taken = set(self._slots.values())
            for first in range(self.port_first, self.port_first + self.port_count - self.slot_size + 1, self.slot_size):
                if first not in taken and all(port_free(first + k, HOST) for k in range(FIRST_WORKER)):
                    self._slots[cluster.name] = first
                    break
            else:
                raise RuntimeError(f"no free ports for another cluster in {self.port_first}-"
                                   f"{self.port_first + self.port_count - 1}")
        return self._slots[cluster.name]

    def get_scheduler_command(self, cluster):
        first = self._slot(cluster)
        return _set(super().get_scheduler_command(cluster), {
            "--port": str(first), "--host": HOST, "--dashboard-address": f"{HOST}:{first + 1}",
            "--dg-api-address": f"{HOST}:{first + 2}"})

    def get_worker_command(self, cluster, worker_name, scheduler_address=None):
        first = self._slot(cluster)
        used = self._workers.setdefault(cluster.name, {})
        if worker_name not in used:
            free = [i for i in range((self.slot_size - FIRST_WORKER) // 2) if i not in used.values()]
            if not free:
                raise RuntimeError(f"cluster {cluster.name} has its {len(used)} workers' ports all in use")
            used[worker_name] = free[0]
        port = first + FIRST_WORKER + 2 * used[worker_name]
        cmd = super().get_worker_command(cluster, worker_name, scheduler_address)
        return _set(cmd, {"--dashboard-address": None, "--host": HOST, "--worker-port": str(port),
                          "--nanny-port": str(port + 1)}) + ["--no-dashboard"]

    async def do_stop_worker(self, worker):
        await super().do_stop_worker(worker)
        self._workers.get(worker.cluster.name, {}).pop(worker.name, None)

    async def do_stop_cluster(self, cluster):
        await super().do_stop_cluster(cluster)
        self._slots.pop(cluster.name, None)
        self._workers.pop(cluster.name, None)
