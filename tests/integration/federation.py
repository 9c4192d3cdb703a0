"""Two real facilities, each in its own network namespace, joined by a delayed WAN (netns.Wan):
what the federation tests and bench/bench_federation.py share."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from harness import BIN, isolated_env, shared_tmpdir
from netns import Wan

from afbox.auth.identity import load
from afbox.auth.tokens import SITE_LIFETIME, mint

PORT_BASE = 27000                 # the same in every namespace: they are separate networks
ISSUER, XCACHE, GATEWAY, ORIGIN = PORT_BASE + 1, PORT_BASE, PORT_BASE + 3, PORT_BASE + 2
PEER_CACHES = [PORT_BASE + 390 + i for i in range(2)]
SERVED = [XCACHE, ISSUER, GATEWAY, *PEER_CACHES]  # what a site serves to others


class Facility:
    def __init__(self, world: "World", name: str, jupyter: bool, workers: int = 1):
        self.world, self.name = world, name
        self.base = world.base / name
        self.env = isolated_env(self.base, PORT_BASE)
        self.env["XDG_DATA_HOME"] = str(self.base / "data")
        (self.base / "runtime").mkdir(parents=True, mode=0o700, exist_ok=True)
        self.config = self.base / "afbox.toml"
        self.config.write_text(f'[facility]\npublic_host = "{name}"\n[jupyter]\nenabled = {str(jupyter).lower()}\n'
                               '[xcache]\nsize = "512MiB"\n')
        self.workers = workers

    @property
    def url(self) -> str:
        return f"https://{self.name}:{ISSUER}"

    def up_argv(self) -> list[str]:
        return [str(BIN / "afbox"), "up", "--profile", "ci", "--name", self.name, "--port-base", str(PORT_BASE),
                "--workers", str(self.workers), "--config", str(self.config), "--workdir", str(self.base / "work")]

    def record(self) -> dict:
        return json.loads(Path(self.env["XDG_STATE_HOME"], "afbox", self.name, "facility.json").read_text())

    @property
    def identity(self):
        return load(Path(self.record()["auth"]["identity_dir"]))

    def afbox(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.world.wan.run(self.name, [str(BIN / "afbox"), *args, "--name", self.name], env=self.env,
                                  check=check, timeout=timeout)

    def python(self, code: str, timeout: float = 300, env: dict | None = None) -> dict:
        """Run code in this site's namespace (as a notebook there would); it prints one JSON line last."""
        p = self.world.wan.run(self.name, [sys.executable, "-c", textwrap.dedent(code)], timeout=timeout,
                               env={**self.env, "AFBOX_FACILITY": self.name, **(env or {})})
        return json.loads(p.stdout.strip().splitlines()[-1])

    def token(self, aud: str, scope: str, sub: str = "alice", **kw) -> str:
        """A token of this site, for another site by default as `afbox token --site` makes it: 1 h."""
        return mint(self.identity, self.url, sub, scope, aud, **{"lifetime": SITE_LIFETIME, **kw})

    def write(self, rel: str, data: bytes) -> Path:
        """A file of this site's own namespace (its origin's data dir)."""
        path = Path(self.record()["origin_dir"]) / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        for p in [path, *path.parents]:
            if p == Path(self.record()["origin_dir"]).parent:
                break
            p.chmod(0o755 if p.is_dir() else 0o644)
        return path

    def log(self, service: str) -> Path:
        return Path(self.record()["services"][service]["log"])


class World:
    """site-a (no Jupyter: its notebook is a python run in its namespace) and site-b."""

    def __init__(self, delay_ms: float = 10, prefix: str = "afbox-fed-", workers: int = 1):
        self.base = shared_tmpdir(prefix)
        self.wan = Wan(["site-a", "site-b"], SERVED, delay_ms=delay_ms)
        self.a = Facility(self, "site-a", jupyter=False, workers=workers)
        self.b = Facility(self, "site-b", jupyter=True, workers=workers)
        self.timings: dict[str, float] = {}

    def __enter__(self) -> "World":
        try:
            self.wan.__enter__()
            t0 = time.monotonic()
            procs = {f.name: (f, self.wan.popen(f.name, f.up_argv(), env=f.env, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL))
                     for f in (self.a, self.b)}
            for name, (f, p) in procs.items():
                out, _ = p.communicate(timeout=400)
                if p.returncode:
                    raise AssertionError(f"afbox up of {name} failed:\n{out}")
            self.timings["up_both"] = time.monotonic() - t0
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for f in (self.a, self.b):
            if self.wan.sites:
                self.wan.run(f.name, [str(BIN / "afbox"), "down", "--name", f.name], env=f.env, check=False)
        self.wan.close()
        if not os.environ.get("AFBOX_KEEP_FED"):
            shutil.rmtree(self.base, ignore_errors=True)

    def handshake(self, grants_b_to_a=("compute.create", "jupyter.access", "storage.read:/store/public"),
                  grants_a_to_b=("storage.read:/store/shared", "storage.read:/demo"), max_workers: int = 2) -> str:
        """B invites A; A adds B; B runs what A printed; A refreshes (learns what B granted). The code."""
        code = self.b.afbox("site", "invite", *(f"--grant={g}" for g in grants_b_to_a), "--max-workers",
                            str(max_workers), "--expires", "1h").stdout.strip()
        t0 = time.monotonic()
        out = self.a.afbox("site", "add", self.b.url, "--invite", code, *(f"--grant={g}" for g in grants_a_to_b)).stdout
        self.timings["site_add"] = time.monotonic() - t0
        reverse = next(line.strip() for line in out.splitlines() if line.strip().startswith("afbox site add"))
        self.b.afbox(*reverse.split()[1:])
        self.a.afbox("site", "refresh", "site-b")
        self.invite = code
        return code
