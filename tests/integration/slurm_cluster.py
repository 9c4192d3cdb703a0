"""A real two-node SLURM cluster on this one host, for tests: munged, slurmctld and `slurmd -N n1`,
`slurmd -N n2`, every file under a temp dir (SLURM_CONF points at it), nothing written to /etc.

Use `SlurmCluster(base).start()` ... `.stop()`; `.env` is what every SLURM command needs."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "salloc", "scontrol", "squeue", "scancel")
# AFBOX_TEST_SLURM_PORTS=26400 moves the whole block (controller, nodes, srun) to run beside another
PORT_BASE = int(os.environ.get("AFBOX_TEST_SLURM_PORTS") or 23400)
CTLD_PORT = PORT_BASE
NODE_PORTS = {"n1": PORT_BASE + 1, "n2": PORT_BASE + 2}
SRUN_PORTS = f"{PORT_BASE + 10}-{PORT_BASE + 49}"
NODE_CPUS = 2
NODE_MEMORY_MB = 2048


def missing() -> list[str]:
    return [b for b in BINARIES if not shutil.which(b)]


def skip_module_unless_runnable() -> None:
    """For a test module that starts this cluster and a facility: skip it whole, saying what is missing."""
    import pytest
    from harness import xrootd_available

    if missing():
        pytest.skip(f"SLURM not installed ({', '.join(missing())} missing: apt-get install slurm-wlm munge)",
                    allow_module_level=True)
    if not xrootd_available():
        pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)",
                    allow_module_level=True)


def slurm_conf(base: Path, host: str, munge_socket: Path) -> str:
    nodes = "\n".join(f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={p} CPUs={NODE_CPUS} "
                      f"RealMemory={NODE_MEMORY_MB} State=UNKNOWN" for n, p in NODE_PORTS.items())
    return f"""\
ClusterName=afboxtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={CTLD_PORT}
SrunPortRange={SRUN_PORTS}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={base}/ctld-state
SlurmdSpoolDir={base}/spool-%n
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd-%n.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
SchedulerType=sched/backfill
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=30
SlurmctldTimeout=30
SlurmdTimeout=60
{nodes}
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


class SlurmCluster:
    def __init__(self, base: Path):
        self.base = base
        self.conf = base / "slurm.conf"
        self.munge_socket = base / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        for k in [k for k in self.env if k.startswith("SLURM_") and k != "SLURM_CONF"]:
            del self.env[k]

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.base / f"{name}.out").open("ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def start(self, timeout: float = 30) -> "SlurmCluster":
        m = self.base / "munge"
        m.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = m / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._spawn("munged", ["munged", "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={m / 'munged.pid'}",
                               f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}"])
        _wait(lambda: self.munge_socket.exists(), 10, "munged socket", self.base / "munge" / "munged.log")
        (self.base / "ctld-state").mkdir(exist_ok=True)
        self.conf.write_text(slurm_conf(self.base, socket.gethostname(), self.munge_socket))
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        for n in NODE_PORTS:
            (self.base / f"spool-{n}").mkdir(exist_ok=True)
            self._spawn(f"slurmd-{n}", ["slurmd", "-D", "-N", n, "-f", str(self.conf)])
        _wait(self.nodes_idle, timeout, "both nodes idle in sinfo", self.base / "slurmctld.log")
        return self

    def run(self, *argv: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode:
            raise AssertionError(f"{' '.join(argv)} failed ({p.returncode}): {p.stdout}{p.stderr}")
        return p

    def nodes_idle(self) -> bool:
        p = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False)
        states = dict(line.split() for line in p.stdout.splitlines() if line.strip())
        return p.returncode == 0 and all(states.get(n) == "idle" for n in NODE_PORTS)

    def queue(self) -> list[str]:
        return self.run("squeue", "-h", "-o", "%i %j %T").stdout.splitlines()

    def steps(self) -> list[str]:
        return self.run("squeue", "-h", "-s", "-o", "%i %j").stdout.splitlines()

    def cancel_all(self) -> None:
        self.run("scancel", "--user", str(os.getuid()), check=False)

    def stop(self) -> None:
        if "slurmctld" in self.procs:
            self.cancel_all()
            _wait(lambda: not self.queue(), 20, "an empty queue", None, fail=False)
        for name in [*(n for n in self.procs if n.startswith("slurmd")), "slurmctld", "munged"]:
            p = self.procs.pop(name, None)
            if p and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)


def _wait(pred, timeout: float, what: str, log: Path | None, fail: bool = True) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.3)
    if not fail:
        return False
    tail = log.read_text(errors="replace").splitlines()[-30:] if log and log.exists() else []
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n" + "\n".join(tail))
