"""What services need of this host's filesystems before they start: dirs they can write, and
filesystems big enough for what they keep. Checked by `afbox doctor` and before `up` on a backend
that runs services on this host; each finding names the path, what is wrong and the fix."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from .spec import ServiceSpec
from .units import human_bytes

LOW_FREE = 0.02  # a writable volume on a filesystem with less free than this share gets a warning
SOCKET_PATH_MAX = 107  # bytes of a unix socket's path (sun_path holds 108 with the closing NUL)


@dataclass(frozen=True)
class Finding:
    service: str
    path: str
    problem: str
    fatal: bool = True    # the service cannot start (else: it starts, but something is off)

    def line(self) -> str:
        return f"{self.service}: {self.path}: {self.problem}"


def existing(path: str) -> str:
    """path, or its nearest parent that exists."""
    while not os.path.exists(path):
        parent = os.path.dirname(path.rstrip("/")) or "/"
        if parent == path:
            break
        path = parent
    return path


def writable(path: str) -> str | None:
    """Why this user cannot create or write path (None when it can)."""
    at = existing(path)
    if not os.path.isdir(at):
        return f"{at} is not a directory"
    if not os.access(at, os.W_OK | os.X_OK):
        st = os.statvfs(at)
        if st.f_flag & os.ST_RDONLY:
            return f"{at} is on a read-only filesystem"
        return f"{at} is not writable by this user (uid {os.geteuid()})"
    return None


def check(specs: list[ServiceSpec]) -> list[Finding]:
    """Every runnable spec's dirs and volumes, as this host has them now."""
    out: list[Finding] = []
    for s in specs:
        if s.unavailable:
            continue
        dirs = [*s.state_dirs, *(v.path for v in s.volumes if not v.read_only), *([s.cwd] if s.cwd else [])]
        for d in dict.fromkeys(dirs):
            if why := writable(d):
                out.append(Finding(s.name, d, why))
        for sock in s.sockets:
            if (n := len(os.fsencode(sock))) > SOCKET_PATH_MAX:
                out.append(Finding(s.name, sock, (
                    f"this unix socket's path is {n} bytes long, more than the {SOCKET_PATH_MAX} a socket "
                    f"takes, so {s.name} cannot start: give the facility a shorter name (--name) or its "
                    "state a shorter directory (XDG_CACHE_HOME)")))
        for v in s.volumes:
            if v.read_only:
                continue
            usage = shutil.disk_usage(existing(v.path))
            if v.min_filesystem and usage.total < v.min_filesystem:
                out.append(Finding(s.name, v.path, (
                    f"its filesystem holds {human_bytes(usage.total)} in all; {s.name} refuses to start on one "
                    f"smaller than {human_bytes(v.min_filesystem)}: put its {v.name} on a bigger one")))
            elif usage.free < usage.total * LOW_FREE:
                out.append(Finding(s.name, v.path, (
                    f"its filesystem has {human_bytes(usage.free)} free of {human_bytes(usage.total)}; "
                    f"{s.name} keeps its {v.name} there"), fatal=False))
    return out
