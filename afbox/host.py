"""What this host offers: cores, memory, disk, programs, batch context. Detection only, no decisions."""
from __future__ import annotations

import errno
import os
import shutil
import socket
from dataclasses import asdict, dataclass, field

import psutil

from .run import PROVIDERS, which

TOOLS = ("xrootd", "xrdcp", "k3s", "docker", "apptainer", "srun", "nvidia-smi")


@dataclass
class Host:
    hostname: str
    cpus: int
    memory: int
    tools: dict[str, str | None] = field(default_factory=dict)
    slurm_job: str | None = None
    slurm_nodes: str | None = None
    is_root: bool = False

    def has(self, tool: str) -> bool:
        return bool(self.tools.get(tool))

    def missing(self) -> list[tuple[str, str]]:
        """(tool, the package that provides it) for each tool not found."""
        return [(t, PROVIDERS.get(t, "")) for t, p in self.tools.items() if not p]

    def to_dict(self) -> dict:
        return asdict(self)


def _cgroup_memory_limit() -> int | None:
    try:
        raw = open("/sys/fs/cgroup/memory.max").read().strip()
        return None if raw == "max" else int(raw)
    except (OSError, ValueError):
        return None


def detect() -> Host:
    cpus = len(os.sched_getaffinity(0))
    mem = psutil.virtual_memory().total
    limit = _cgroup_memory_limit()
    if limit and limit < mem:
        mem = limit
    return Host(
        hostname=socket.gethostname(),
        cpus=cpus,
        memory=mem,
        tools={t: which(t) for t in TOOLS},
        slurm_job=os.environ.get("SLURM_JOB_ID"),
        slurm_nodes=os.environ.get("SLURM_JOB_NODELIST"),
        is_root=os.geteuid() == 0,
    )


def disk_free(path: str) -> int:
    """Free bytes on the filesystem that holds path (or its nearest existing parent)."""
    return _usage(path).free


def disk_total(path: str) -> int:
    """Size in bytes of the filesystem that holds path (or its nearest existing parent)."""
    return _usage(path).total


def _usage(path: str):
    while not os.path.exists(path):
        path = os.path.dirname(path) or "/"
    return shutil.disk_usage(path)


def port_owner(port: int) -> str | None:
    """Which process listens on a TCP port, as 'name (pid N)', when we may see it."""
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
                if c.pid:
                    try:
                        return f"{psutil.Process(c.pid).name()} (pid {c.pid})"
                    except psutil.Error:
                        return f"pid {c.pid}"
                return "another process"
    except psutil.Error:
        pass
    return None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    # With SO_REUSEADDR like the servers themselves (TIME_WAIT is no conflict); also probe the
    # wildcard, since xrootd binds every interface.
    for addr in (host, "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError as e:
                if e.errno in (errno.EADDRINUSE, errno.EACCES):
                    return False
                raise
    return True
