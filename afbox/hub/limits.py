"""Memory, CPU and task limits per student: one cgroup each, holding their server, kernels and Dask
cluster, so a student who allocates too much is stopped alone.

Hosts differ: cgroup v1 (one hierarchy per controller, e.g. this test host), or v2 (one unified
tree; on a systemd host the hub's own cgroup is where the students' ones are made, beside a leaf the
hub moves itself into, since v2 allows processes only in leaves). Writing cgroups needs root; as a
normal user only a systemd user session can give limits (`systemd-run --user --scope`), else there
are none and `why_none` says so (the class still runs, isolated by bubblewrap).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu", "pids")


@dataclass(frozen=True)
class Limits:
    memory: int            # bytes, swap included
    cpus: float
    tasks: int = 2048


@dataclass
class Cgroups:
    kind: str                                   # cgroup-v1, cgroup-v2, systemd-user, none
    roots: dict[str, Path] = field(default_factory=dict)  # controller (v2: "unified") -> dir under which groups go
    why_none: str = ""
    base: Path = Path("/")                      # v2: the hub's own cgroup, under which the groups go

    def dirs(self, group: str) -> list[Path]:
        return [root / group for root in self.roots.values()]

    def prepare(self, group: str, limits: Limits) -> None:
        """Make the group and set its limits (as root, in the hub)."""
        if self.kind == "cgroup-v1":
            for ctrl, root in self.roots.items():
                d = root / group
                d.mkdir(parents=True, exist_ok=True)
                if ctrl == "memory":
                    _write(d / "memory.limit_in_bytes", limits.memory)
                    if (d / "memory.memsw.limit_in_bytes").exists():
                        _write(d / "memory.memsw.limit_in_bytes", limits.memory)
                elif ctrl == "cpu":
                    _write(d / "cpu.cfs_period_us", PERIOD_US)
                    _write(d / "cpu.cfs_quota_us", int(limits.cpus * PERIOD_US))
                elif ctrl == "pids":
                    _write(d / "pids.max", limits.tasks)
        elif self.kind == "cgroup-v2":
            d = self.roots["unified"] / group
            rel = d.relative_to(self.base).parts
            for parent in (self.base.joinpath(*rel[:i]) for i in range(len(rel))):  # base .. d's parent
                parent.mkdir(exist_ok=True)
                _enable_controllers(parent)
            d.mkdir(parents=True, exist_ok=True)
            _write(d / "memory.max", limits.memory)
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", 0)
            _write(d / "cpu.max", f"{int(limits.cpus * PERIOD_US)} {PERIOD_US}")
            _write(d / "pids.max", limits.tasks)

    def procs_files(self, group: str) -> list[Path]:
        """What a process writes its pid to, to enter the group (none where limits come from a program)."""
        return [d / "cgroup.procs" for d in self.dirs(group)] if self.kind in ("cgroup-v1", "cgroup-v2") else []

    def enter(self, group: str) -> None:
        """Move the calling process into the group: called in a child before it drops privileges."""
        for procs in self.procs_files(group):
            _write(procs, os.getpid())

    def wrap(self, unit: str, limits: Limits, argv: list[str]) -> list[str]:
        """The command inside the limits where they come from a program rather than from `enter`."""
        if self.kind != "systemd-user":
            return argv
        return ["systemd-run", "--user", "--scope", "--quiet", "--collect", f"--unit={unit}",
                "-p", f"MemoryMax={limits.memory}", "-p", "MemorySwapMax=0",
                "-p", f"CPUQuota={int(limits.cpus * 100)}%", "-p", f"TasksMax={limits.tasks}", *argv]

    def usage(self, group: str) -> int | None:
        """Bytes of memory the group uses now (None where there are no groups)."""
        name = {"cgroup-v1": "memory.usage_in_bytes", "cgroup-v2": "memory.current"}.get(self.kind)
        root = self.roots.get("memory") or self.roots.get("unified")
        try:
            return int((root / group / name).read_text()) if name and root else None
        except (OSError, ValueError):
            return None

    def oom_kills(self, group: str) -> int:
        """Processes of the group the kernel killed for going over its memory limit."""
        name = {"cgroup-v1": "memory.oom_control", "cgroup-v2": "memory.events"}.get(self.kind)
        root = self.roots.get("memory") or self.roots.get("unified")
        try:
            text = (root / group / name).read_text() if name and root else ""
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self, group: str) -> None:
        """Remove the group once it holds no process (a no-op while it does)."""
        for d in self.dirs(group):
            try:
                d.rmdir()
            except OSError:
                pass


def _write(path: Path, value) -> None:
    path.write_text(f"{value}\n")


def _enable_controllers(d: Path) -> None:
    wanted = {"memory", "cpu", "pids"} & set((d / "cgroup.controllers").read_text().split())
    if wanted:
        _write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted)))


def mounts(text: str) -> tuple[dict[str, Path], Path | None]:
    """cgroup v1 controller mount points and the cgroup2 mount point, from /proc/self/mounts."""
    v1: dict[str, Path] = {}
    v2 = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        where, fstype, opts = parts[1], parts[2], parts[3].split(",")
        if fstype == "cgroup2":
            v2 = Path(where)
        elif fstype == "cgroup":
            for ctrl in V1_CONTROLLERS:
                if ctrl in opts:
                    v1[ctrl] = Path(where)
    return v1, v2


def own_cgroup(text: str) -> str:
    """This process's cgroup v2 path, from /proc/self/cgroup."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return "/"


def detect(as_root: bool, prefix: str) -> Cgroups:
    """Where this host keeps per-student groups, all under `prefix` (e.g. afbox/<facility>)."""
    v1, v2 = mounts(Path("/proc/self/mounts").read_text())
    if as_root and "memory" in v1:
        return Cgroups("cgroup-v1", {c: p / prefix for c, p in v1.items()})
    if as_root and v2 and (v2 / "cgroup.controllers").exists():
        base = v2 / own_cgroup(Path("/proc/self/cgroup").read_text()).lstrip("/")
        return Cgroups("cgroup-v2", {"unified": base / prefix}, base=base)
    if not as_root and shutil.which("systemd-run") and Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"),
                                                               "systemd", "private").exists():
        return Cgroups("systemd-user")
    why = ("no cgroup memory controller is mounted" if as_root else
           "limits need root or a systemd user session (this host has neither): students are isolated "
           "by bubblewrap but share the box's memory and cores")
    return Cgroups("none", why_none=why)


def v2_leave_root(c: Cgroups) -> None:
    """v2 lets only leaves hold processes once controllers are handed down: the hub moves itself
    into a leaf of its own before it makes the students' groups beside it."""
    if c.kind != "cgroup-v2" or c.base.parent == c.base:
        return  # the root cgroup is exempt
    leaf = c.base / "hub"
    leaf.mkdir(exist_ok=True)
    _write(leaf / "cgroup.procs", os.getpid())
