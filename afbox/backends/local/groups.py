"""The process groups a facility's supervisor started, kept on disk so that the facility's processes
can be found and stopped even after the supervisor itself has died (OOM killer, kill -9).

supervisord daemonizes into a session of its own and starts every program in a process group of
its own (pgid = the program's pid). Both are written to <state>/run/groups.json as `up` sees them.
A process is the facility's when it is alive, started after that supervisord, and is in its session
or in a recorded group, or descends from such a process (Jupyter starts kernels, the gateway its
clusters, in sessions of their own). Nothing is ever found by its name.
"""
from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ...health import poll_until

CLOCK_SLACK = 1.0  # seconds: psutil's start times are rounded to clock ticks


@dataclass
class Groups:
    supervisord: int = 0          # its pid, which is also its session id
    started: float = 0.0          # its start time: pids are reused, start times are not
    services: dict[str, int] = field(default_factory=dict)   # service -> the pgid it last ran in

    @classmethod
    def read(cls, path: Path) -> "Groups":
        try:
            data = json.loads(path.read_text())
            return cls(int(data["supervisord"]), float(data["started"]),
                       {str(k): int(v) for k, v in data.get("services", {}).items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls()

    def write(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"supervisord": self.supervisord, "started": self.started,
                                   "services": self.services}, sort_keys=True))
        tmp.replace(path)


def supervisor_started(path: Path, pidfile: Path) -> Groups:
    """Record a supervisord that has just started (its pid file written); groups start empty."""
    pid = int(pidfile.read_text())
    g = Groups(pid, psutil.Process(pid).create_time())
    g.write(path)
    return g


def note(path: Path, infos: list[dict]) -> None:
    """Add the groups of the programs supervisord reports running (its getAllProcessInfo)."""
    g = Groups.read(path)
    if not g.supervisord:
        return
    fresh = {i["name"]: i["pid"] for i in infos if i.get("pid")}
    if any(g.services.get(n) != p for n, p in fresh.items()):
        g.services.update(fresh)
        g.write(path)


def _ours(p: psutil.Process, g: Groups, pgids: set[int]) -> bool:
    try:
        if p.create_time() < g.started - CLOCK_SLACK or p.status() == psutil.STATUS_ZOMBIE:
            return False  # a zombie has exited: only its parent's wait is missing
        return os.getsid(p.pid) == g.supervisord or os.getpgid(p.pid) in pgids
    except (psutil.Error, OSError):
        return False


def members(g: Groups) -> list[psutil.Process]:
    """Every live process of the facility (the supervisor included), parents before children."""
    if not g.supervisord:
        return []
    pgids = set(g.services.values()) | {g.supervisord}
    me = os.getpid()
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter():
        if p.pid != me and p.pid not in found and _ours(p, g, pgids):
            found[p.pid] = p
            try:
                for c in p.children(recursive=True):
                    found.setdefault(c.pid, c)
            except psutil.Error:
                pass
    return [p for p in found.values() if p.pid != me and _live(p)]


def _live(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def by_service(g: Groups, procs: list[psutil.Process]) -> dict[str, list[psutil.Process]]:
    """The live processes in each recorded service's group."""
    names = {pgid: name for name, pgid in g.services.items()}
    out: dict[str, list[psutil.Process]] = {}
    for p in procs:
        try:
            name = names.get(os.getpgid(p.pid))
        except OSError:
            continue
        if name:
            out.setdefault(name, []).append(p)
    return out


def stop(procs: list[psutil.Process], grace: float = 10) -> list[psutil.Process]:
    """TERM to each process group the processes are in, then KILL to what is left after grace
    seconds; returns what still lives (nothing, unless a process ignores KILL)."""
    groups = set()
    for p in procs:
        try:
            groups.add(os.getpgid(p.pid))
        except OSError:
            pass
    groups.discard(os.getpgid(0))  # never this command's own group (afbox run from a Jupyter terminal)
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    alive = wait_gone(procs, grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    return wait_gone(alive, 5)


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Until every process has exited (a zombie has: its reaping is its parent's business)."""
    left = list(procs)

    def gone() -> bool:
        left[:] = [p for p in left if _live(p)]
        return not left
    poll_until(gone, timeout, 0.1)
    return left


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass  # gone already, or not ours to signal
