"""Gateway clusters as local processes on loopback, on ports from the facility's range.

The stock local backend binds 0.0.0.0 on random ports; here each cluster takes a slot of
SLOT_SIZE ports: scheduler, dashboard, gateway API, then (worker, nanny) pairs. Their processes are
forked from a warm interpreter (afbox.plugins.forkserver) the backend starts with the gateway, so a
cluster does not wait on a second of imports per process; where it cannot be used they start as
plain subprocesses, as the stock backend does.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from dask_gateway_server.backends.local import UnsafeLocalBackend
from traitlets import Bool, Integer

from ..host import port_free
from ..state import replace_private
from . import forkserver

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
    use_forkserver = Bool(True, help="fork schedulers and workers from a warm interpreter", config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._slots: dict[str, int] = {}
        self._workers: dict[str, dict[str, int]] = {}
        self._forkserver: asyncio.subprocess.Process | None = None
        self._socket_dir = ""

    async def do_setup(self):
        await super().do_setup()
        if self.use_forkserver:
            # a unix socket's path has at most 107 bytes: a private temp dir where the clusters' is long
            base = self.clusters_directory
            self._socket_dir = (os.path.join(base, ".forkserver") if base and len(base) < 80
                                else tempfile.mkdtemp(prefix="afbox-forkserver-"))
            os.makedirs(self._socket_dir, 0o700, exist_ok=True)
            bare = {k: os.environ[k] for k in self.inherited_environment if k in os.environ}
            self._forkserver = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "afbox.plugins.forkserver", self._clusters_root(), self._socket_path(),
                str(os.getpid()),
                env=bare, stdin=asyncio.subprocess.DEVNULL)

    async def do_cleanup(self):
        if self._forkserver and self._forkserver.returncode is None:
            self._forkserver.terminate()
            await self._forkserver.wait()
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        await super().do_cleanup()

    def _clusters_root(self) -> str:
        """Where the clusters' work dirs go (the stock backend makes them under the temp dir otherwise)."""
        return self.clusters_directory or tempfile.gettempdir()

    def _socket_path(self) -> str:
        return os.path.join(self._socket_dir, "sock")

    async def _forkserver_ready(self, timeout: float = 10.0) -> bool:
        """Wait for the warm interpreter to listen (just after the gateway starts); False if it is gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._forkserver and self._forkserver.returncode is None and loop.time() < deadline:
            if os.path.exists(self._socket_path()):
                return True
            await asyncio.sleep(0.02)
        return False

    def process_owner(self, cluster) -> tuple[tuple[int, int] | None, list[str]] | None:
        """For a forked process: the (uid, gid) to drop to and the cgroup.procs files to enter first;
        None where only a subprocess will do."""
        return None, []

    async def start_process(self, cluster, cmd, env, name):
        dask_cmd = forkserver.command_of(list(cmd))
        owner = self.process_owner(cluster) if dask_cmd and self._forkserver else None
        if owner is not None and await self._forkserver_ready():
            workdir = cluster.state["workdir"]
            req = forkserver.Request(command=dask_cmd[0], args=dask_cmd[1], cwd=workdir,
                                     env_file=os.path.join(workdir, f".{name}.env"),
                                     log=os.path.join(self.get_logs_directory(workdir), name + ".log"),
                                     user=owner[0], cgroups=owner[1])
            try:
                replace_private(Path(req.env_file), json.dumps(dict(env)), owner[0])
                return await forkserver.request(self._socket_path(), req)
            except (OSError, RuntimeError, ValueError) as e:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(req.env_file)
                if os.path.exists(req.log) and not os.path.getsize(req.log):
                    os.unlink(req.log)  # made before the fork failed: the subprocess makes its own
                self.log.warning("forkserver could not start %s of %s (%s): starting a new interpreter",
                                 name, cluster.name, e)
        return await super().start_process(cluster, cmd, env, name)

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
