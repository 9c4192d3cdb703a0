"""How students are kept apart, by the privilege afbox has; never silently not at all.

- users (root): one unix user per student; their processes drop to it and enter their cgroup
  (afbox.hub.limits), so they cannot read another's home or their processes' environment.
- bwrap (a normal user): each student's processes in bubblewrap with their own PID namespace, seeing
  only the system, afbox's Python, their home and the read-only class data.
Where neither works the hub refuses to start the class, saying why.
"""
from __future__ import annotations

import grp
import os
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import AfboxError
from ..run import run, which

BWRAP_HINT = "install bubblewrap (apt-get install bubblewrap), or run afbox as root for one unix user per student"
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/opt")


def choose(setting: str, as_root: bool, bwrap: str | None) -> tuple[str, str]:
    """(mode, "") or ("", why the class cannot be isolated here)."""
    if setting in ("auto", "users") and as_root:
        return "users", ""
    if setting == "users":
        return "", "isolation = \"users\" creates a unix user per student, which needs root"
    if bwrap:
        return "bwrap", ""
    return "", f"students cannot be isolated: not root and no bubblewrap; {BWRAP_HINT}"


def unix_name(facility: str, student: str) -> str:
    """The student's unix user: per facility, so two classes on one box never share a user."""
    return f"{facility}-{student}"[:32]


def ensure_user(name: str, home: Path, comment: str) -> tuple[int, int]:
    """The unix user (created when missing, with no login shell and no password); (uid, gid)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin",
             "--user-group", "--comment", comment, name], timeout=30)
        pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def remove_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    run(["userdel", name], timeout=30)
    try:
        grp.getgrnam(name)
        run(["groupdel", name], timeout=30, check=False)
    except KeyError:
        pass
    return True


def drop_to(uid: int, gid: int, home: str, enter=None):
    """A preexec function: into the student's cgroup (while still root), then their user."""
    def preexec():
        if enter:
            enter()
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        os.chdir(home)
    return preexec


@dataclass(frozen=True)
class Sandbox:
    """What a student's bubblewrap shows: their home (writable), the rest read-only."""
    home: str
    read_only: tuple[str, ...] = ()     # class data, their token dir, the public keys
    writable: tuple[str, ...] = ()      # e.g. a gateway cluster's work dir

    def argv(self, command: list[str]) -> list[str]:
        out = [which("bwrap") or "bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
               "--unshare-uts", "--unshare-cgroup-try", "--proc", "/proc", "--dev", "/dev",
               "--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/home", "--tmpfs", "/var"]
        for d in SYSTEM_DIRS:
            out += ["--ro-bind-try", d, d]
        for d in python_dirs():
            out += ["--ro-bind", d, d]
        for d in self.read_only:
            out += ["--ro-bind-try", d, d]
        for d in (self.home, *self.writable):
            out += ["--bind", d, d]
        return [*out, "--setenv", "HOME", self.home, "--chdir", self.home, "--", *command]


def python_dirs() -> list[str]:
    """afbox's interpreter, its packages and afbox's own source, outside the system dirs."""
    import afbox
    dirs = {sys.prefix, sys.base_prefix, str(Path(afbox.__file__).resolve().parents[1])}
    return sorted(d for d in dirs if not any(d == s or d.startswith(s + "/") for s in SYSTEM_DIRS))


def closed_to_others(path: str) -> str | None:
    """The first dir on the way to path (symlinks followed) that other users cannot pass; None if open."""
    real = Path(os.path.realpath(path))
    for d in reversed(real.parents):
        if not os.stat(d).st_mode & 0o001:
            return str(d)
    return None if os.stat(real).st_mode & 0o001 else str(real)


def check_python_for_students() -> None:
    """Students' servers run afbox's Python as the students: it must be where they can run it."""
    closed = closed_to_others(sys.executable)
    if closed:
        raise AfboxError(f"afbox's Python ({os.path.realpath(sys.executable)}) is inside {closed}, which the "
                         "students' unix users cannot enter",
                         hint="reinstall afbox with a system Python: PYTHON=/usr/bin/python3 ./install.sh "
                              "(after removing .venv)")


def check_bwrap() -> None:
    """bubblewrap present and allowed to make namespaces here (some hosts forbid user namespaces)."""
    exe = which("bwrap")
    if not exe:
        raise AfboxError("bubblewrap (bwrap) is not installed", hint=BWRAP_HINT)
    r = run([exe, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-user-try", "--proc", "/proc", "true"],
            timeout=20, check=False)
    if r.code != 0:
        raise AfboxError("bubblewrap cannot isolate students on this host: " + (r.stderr.strip() or f"exit {r.code}"),
                         hint="allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
                              "user.max_user_namespaces > 0), or run afbox as root")
