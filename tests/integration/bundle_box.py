"""A fresh minimal Debian root for the bundle tests: made once with debootstrap (kept in a cache dir,
remade when missing), used through an overlay so every box starts pristine, entered with chroot in
its own mount, PID and network namespaces (only loopback: no route out), as a non-root user.
Killing the box's PID 1 ends every process in it; its mounts go with its mount namespace."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
USER, UID = "physicist", 1000
HOSTNAME = "afbox-box"


def cache_dir() -> Path:
    return Path(os.environ.get("AFBOX_TEST_CACHE", "/var/tmp/afbox-test-cache")) / "bundle"


def debootstrap(suite: str) -> Path:
    """A minbase root of suite (no python3 in it), made once; a half-made one is never used."""
    root = cache_dir() / f"root-{suite}"
    if (root / ".complete").exists():
        return root
    tmp = cache_dir() / f".root-{suite}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["debootstrap", "--variant=minbase", suite, str(tmp), MIRROR], capture_output=True,
                       text=True, timeout=900)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AssertionError(f"debootstrap {suite} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    (tmp / ".complete").write_text(time.ctime() + "\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


class Box:
    def __init__(self, lower: Path, work: Path):
        self.work = work
        self.root = work / "root"
        for d in ("upper", "work", "root"):
            (work / d).mkdir(parents=True, exist_ok=True)
        ready = work / "ready"
        setup = "\n".join([
            "set -e",
            f"mount -t overlay overlay -o lowerdir={lower},upperdir={work}/upper,workdir={work}/work {self.root}",
            f"mount -t proc proc {self.root}/proc",
            f"mount --rbind /dev {self.root}/dev",
            f"mount -t tmpfs -o mode=1777 tmpfs {self.root}/dev/shm",
            f"mount -t tmpfs -o mode=1777 tmpfs {self.root}/tmp",
            f"mount --rbind /sys {self.root}/sys",
            f"hostname {HOSTNAME}",
            "ip link set lo up",
            f"echo ready > {ready}",
            "exec sleep infinity",
        ])
        self.holder = subprocess.Popen(["unshare", "--mount", "--net", "--pid", "--uts", "--fork", "--kill-child",
                                        "--propagation", "private", "sh", "-c", setup],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the box did not start: {self.holder.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        children = Path(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children").read_text().split()
        self.init = int(children[0])  # PID 1 inside: the namespaces to enter
        # what an installed Debian has and debootstrap does not write: its own name in /etc/hosts
        self.run("\n".join([f"printf '127.0.0.1 localhost\\n127.0.1.1 {HOSTNAME}\\n::1 localhost ip6-localhost\\n' > /etc/hosts",
                            f"echo {HOSTNAME} > /etc/hostname",
                            f"echo '{USER}:x:{UID}:{UID}::/home/{USER}:/bin/sh' >> /etc/passwd",
                            f"echo '{USER}:x:{UID}:' >> /etc/group",
                            f"mkdir -p /home/{USER} && chown {UID}:{UID} /home/{USER}"]), user=False)

    def _argv(self, script: str, user: bool, env: dict[str, str]) -> list[str]:
        home = f"/home/{USER}" if user else "/root"
        envs = [f"{k}={v}" for k, v in {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                                         **env}.items()]
        spec = [f"--userspec={UID}:{UID}"] if user else []
        return ["nsenter", "-t", str(self.init), "-m", "-n", "-p", "-u", "--", "chroot", *spec, str(self.root),
                "/usr/bin/env", "-i", *envs, "/bin/sh", "-c", f"cd {home} && {script}"]

    def run(self, script: str, user: bool = True, timeout: float = 300, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run(self._argv(script, user, env or {}), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"in the box: {script}\nexit {p.returncode}\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
        return p

    def popen(self, script: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(self._argv(script, True, env or {}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)

    def put(self, src: Path, name: str) -> str:
        """Copy a host file into the user's home (as scp would); returns its path inside."""
        inside = f"/home/{USER}/{name}"
        subprocess.run(["nsenter", "-t", str(self.init), "-m", "--", "cp", str(src), f"{self.root}{inside}"],
                       check=True, timeout=120)
        subprocess.run(["nsenter", "-t", str(self.init), "-m", "--", "chown", f"{UID}:{UID}", f"{self.root}{inside}"],
                       check=True, timeout=30)
        return inside

    def processes(self) -> list[str]:
        """Command lines of every process in the box but its PID 1."""
        out = self.run("for p in /proc/[0-9]*; do [ \"${p#/proc/}\" = 1 ] && continue; "
                       "tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done", user=False).stdout
        return [ln.strip() for ln in out.splitlines() if ln.strip() and "/proc/[0-9]*" not in ln
                and not ln.startswith(("/bin/sh -c cd /root", "tr "))]

    def close(self) -> None:
        try:
            os.kill(self.init, signal.SIGKILL)  # PID 1 of the namespace: every process in it goes too
        except ProcessLookupError:
            pass
        self.holder.wait(timeout=30)
        shutil.rmtree(self.work, ignore_errors=True)
