"""Helpers for integration tests: an isolated facility environment, the real CLI, a test origin."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent


def afbox(*args: str, env: dict, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(BIN / "afbox"), *args], env=env, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"afbox {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def status(env: dict, name: str) -> dict:
    return json.loads(afbox("status", "--json", "--name", name, env=env).stdout)


def service(st: dict, name: str) -> dict:
    return next(s for s in st["services"] if s["name"] == name)


def dask_client(env: dict, name: str = "ci", **kw):
    """A distributed.Client with the facility's TLS credentials, read from its state record."""
    from distributed import Client

    from afbox import record_security

    rec = json.loads(Path(env["XDG_STATE_HOME"], "afbox", name, "facility.json").read_text())
    return Client(rec["services"]["dask-scheduler"]["urls"]["scheduler"], security=record_security(rec),
                  timeout=20, **kw)


SHARED_CA_DIR = Path(tempfile.mkdtemp(prefix="afbox-test-ca-"))


def use_facility_data(env: dict, name: str) -> dict:
    """Let this process (uproot, xrdcp) read root:// through the facility's token-checking XCache.
    XrdCl makes its TLS context once per process, so every facility's CA goes into one shared dir
    (OpenSSL looks CAs up there by hash, when needed)."""
    from afbox import record_data_env

    rec = json.loads(Path(env["XDG_STATE_HOME"], "afbox", name, "facility.json").read_text())
    d = record_data_env(rec)
    if not d:
        return {}
    for f in Path(d["X509_CERT_DIR"]).glob("*.0"):
        shutil.copy(f, SHARED_CA_DIR / f.name)
    out = {"BEARER_TOKEN_FILE": d["BEARER_TOKEN_FILE"], "X509_CERT_DIR": str(SHARED_CA_DIR)}
    os.environ.update(out)
    return out


def wait_for(pred, timeout: float = 30, interval: float = 0.3, what: str = "condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def isolated_env(base: Path, port_base: int) -> dict:
    """State, cache and data under base; base must be traversable by xrootd's user when running as root."""
    env = dict(os.environ)
    env.update(XDG_STATE_HOME=str(base / "state"), XDG_CACHE_HOME=str(base / "cache"),
               XDG_DATA_HOME=str(base / "data"), XDG_RUNTIME_DIR=str(base / "runtime"),
               AFBOX_TEST_PORT_BASE=str(port_base))
    env.pop("AFBOX_SCHEDULER", None)
    env.pop("AFBOX_FACILITY", None)  # commands would act on it (as inside a facility's JupyterLab)
    return env


def shared_tmpdir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)  # xrootd drops to its own user when started as root
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_root_file(path: Path, n: int = 200_000, seed: int = 0) -> float:
    import uproot
    x = np.random.default_rng(seed).normal(size=n)
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        f["Events"] = {"x": x}
    path.chmod(0o644)
    return float(x.sum())


class Origin:
    """A plain xrootd data server standing in for a remote site's storage."""

    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.proc: subprocess.Popen | None = None
        self.adm = root.parent / "origin-admin"
        self.log = root.parent / "origin.log"

    @property
    def url(self) -> str:
        return f"root://localhost:{self.port}"

    def start(self) -> None:
        self.adm.mkdir(exist_ok=True)
        cfg = self.root.parent / "origin.cfg"
        cfg.write_text(f"xrd.port {self.port}\nxrd.allow host localhost\nall.export /\n"
                       f"oss.localroot {self.root}\nall.adminpath {self.adm}\nall.pidpath {self.adm}\n")
        argv = ["xrootd", "-c", str(cfg)]
        if os.geteuid() == 0:
            argv[1:1] = ["-R", "xrootd"]
            pw = pwd.getpwnam("xrootd")
            os.chown(self.adm, pw.pw_uid, pw.pw_gid)
        self.proc = subprocess.Popen(argv, stdout=self.log.open("a"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(lambda: _connects(self.port), 15, what=f"origin xrootd on {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def xrootd_available() -> bool:
    return shutil.which("xrootd") is not None
