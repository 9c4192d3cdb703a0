"""Sites in network namespaces joined only through a userspace WAN (this kernel has no netem).

Each site gets its own namespace (`ip netns`) with one veth link to a `wan` namespace, which has no
forwarding: the only way from one site to another is the delay proxy (bench/wanproxy.py) that
listens in the wan namespace on an address of each site's link and connects to the other site. A
site reaches another by its name (`/etc/netns/<ns>/hosts`, bind-mounted by `ip netns exec`), which
is also the other site's public_host. The proxies count the bytes that cross.

    site-a (10.77.1.2) -- veth -- [wan: 10.77.1.1, B at 10.77.1.12]  proxy  [10.77.2.1, A at 10.77.2.11] -- veth -- site-b (10.77.2.2)
"""
from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.wanproxy import WanProxy  # noqa: E402

CLONE_NEWNET = 0x40000000
PREFIX = "afbx15"


def available() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "no `ip` (apt-get install iproute2)"
    probe = f"{PREFIX}-probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode:
        return f"ip netns add failed: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


def ip(*args: str, ns: str | None = None) -> None:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")


class NsProxy(WanProxy):
    """The delay proxy, its sockets made in the wan namespace (setns applies to its thread only)."""

    def __init__(self, ns: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ns = ns

    def _run(self):
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/var/run/netns/{self.ns}") as f:
            if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        super()._run()


@dataclass
class SiteNet:
    name: str          # the site's public name, also its facility name
    index: int
    ns: str

    @property
    def address(self) -> str:
        return f"10.77.{self.index}.2"

    def seen_from(self, other: "SiteNet") -> str:
        """Where `other` reaches this site: an address of the wan side of other's link."""
        return f"10.77.{other.index}.{10 + self.index}"


@dataclass
class Wan:
    names: list[str]
    ports: list[int]          # the ports each site serves to others
    delay_ms: float = 10
    mbit: float = 1000
    sites: dict[str, SiteNet] = field(default_factory=dict)
    proxies: dict[tuple[str, str, int], NsProxy] = field(default_factory=dict)  # (from, to, port)

    @property
    def wan(self) -> str:
        return f"{PREFIX}-wan"

    def __enter__(self) -> "Wan":
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _build(self) -> None:
        ip("netns", "add", self.wan)
        ip("link", "set", "lo", "up", ns=self.wan)
        for i, name in enumerate(self.names, 1):
            s = SiteNet(name, i, f"{PREFIX}-{name}")
            self.sites[name] = s
            ip("netns", "add", s.ns)
            ip("link", "set", "lo", "up", ns=s.ns)
            ip("link", "add", f"{PREFIX}s{i}", "netns", s.ns, "type", "veth", "peer", "name", f"{PREFIX}w{i}", "netns", self.wan)
            ip("addr", "add", f"{s.address}/24", "dev", f"{PREFIX}s{i}", ns=s.ns)
            ip("link", "set", f"{PREFIX}s{i}", "up", ns=s.ns)
            ip("addr", "add", f"10.77.{i}.1/24", "dev", f"{PREFIX}w{i}", ns=self.wan)
            ip("link", "set", f"{PREFIX}w{i}", "up", ns=self.wan)
        for s in self.sites.values():
            # xrootd resolves the machine's own name at start
            hosts = ["127.0.0.1 localhost", f"{s.address} {s.name} {socket.gethostname()}"]
            for o in self.sites.values():
                if o is not s:
                    ip("addr", "add", f"{o.seen_from(s)}/24", "dev", f"{PREFIX}w{s.index}", ns=self.wan)
                    hosts.append(f"{o.seen_from(s)} {o.name}")
            d = Path("/etc/netns") / s.ns
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts").write_text("\n".join(hosts) + "\n")
        for a in self.sites.values():
            for b in self.sites.values():
                if a is not b:
                    self.link(a.name, b.name)

    def link(self, src: str, dst: str) -> None:
        """Let src reach dst (its ports) through the delay proxy."""
        a, b = self.sites[src], self.sites[dst]
        for port in self.ports:
            p = NsProxy(self.wan, port, port, self.delay_ms, self.mbit, listen_host=b.seen_from(a),
                        target_host=b.address)
            p.__enter__()
            self.proxies[(src, dst, port)] = p

    def cut(self, src: str, dst: str) -> None:
        """src can no longer open connections to dst (as when dst is behind NAT)."""
        for key in [k for k in self.proxies if k[:2] == (src, dst)]:
            self.proxies.pop(key).__exit__(None, None, None)

    def bytes(self, src: str, dst: str, port: int | None = None) -> int:
        return sum(p.bytes for (a, b, q), p in self.proxies.items() if (a, b) == (src, dst) and port in (None, q))

    def run(self, site: str, argv: list[str], env: dict | None = None, timeout: float = 300, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run(["ip", "netns", "exec", self.sites[site].ns, *argv], env=env, capture_output=True,
                           text=True, timeout=timeout, input=input, stdin=None if input else subprocess.DEVNULL)
        if check and p.returncode:
            raise AssertionError(f"[{site}] {' '.join(argv[:4])}... failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def popen(self, site: str, argv: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.sites[site].ns, *argv], env=env, **kw)

    def close(self) -> None:
        for p in self.proxies.values():
            try:
                p.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - tearing down: the rest must still go
                pass
        self.proxies.clear()
        for s in self.sites.values():
            subprocess.run(["ip", "netns", "del", s.ns], capture_output=True, check=False)
            shutil.rmtree(Path("/etc/netns") / s.ns, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", self.wan], capture_output=True, check=False)
