"""One task of the workers' srun step: completes the `dask worker` command for this node and task.

    python -m afbox.backends.slurm.worker_task --scheduler ADDR [--gpus G] [--name-prefix P] [--interface IF] -- CMD...

CMD is `dask worker ADDR ...` (possibly inside `apptainer exec`); this adds what differs per task:
a name with the job, SLURM node and local task id; the address of this node's interface that
reaches the scheduler; node-local scratch; and, for the first G tasks of a node, one GPU each.
A named cluster's tasks carry its name first (--name-prefix cluster-agc-)."""
from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import urlsplit


def task_args(env: dict, scheduler_host: str, gpus: int, interface: str, ip_of,
              prefix: str = "") -> tuple[list[str], dict]:
    """(arguments to append, environment to add) for the task SLURM describes in env. Pure but for
    ip_of(scheduler_host, interface), which finds this node's address."""
    node = env.get("SLURMD_NODENAME", "node")
    local = int(env.get("SLURM_LOCALID", "0"))
    job = env.get("SLURM_JOB_ID", "0")
    ip = ip_of(scheduler_host, interface)
    scratch = env.get("SLURM_TMPDIR") or env.get("TMPDIR") or "/tmp"
    args = ["--host", ip, "--dashboard-address", f"{ip}:0",
            "--local-directory", os.path.join(scratch, f"afbox-{prefix}{job}-{node}-{local}")]
    extra_env: dict[str, str] = {"AFBOX_SLURM_NODE": node}
    if local < gpus:
        visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
        extra_env["CUDA_VISIBLE_DEVICES"] = visible[local] if local < len(visible) else str(local)
        args += ["--name", f"{job}-{node}-gpu-{local}", "--nthreads", "1", "--resources", "GPU=1"]
    else:
        args += ["--name", f"{prefix}{job}-{node}-{local}"]
    return args, extra_env


def ip_of(scheduler_host: str, interface: str) -> str:
    from distributed.utils import get_ip, get_ip_interface
    return get_ip_interface(interface) if interface else get_ip(scheduler_host)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="afbox.backends.slurm.worker_task")
    p.add_argument("--scheduler", required=True)
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument("--interface", default="")
    p.add_argument("--name-prefix", default="")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        p.error("no command after --")
    args, env = task_args(dict(os.environ), urlsplit(a.scheduler).hostname or "127.0.0.1", a.gpus, a.interface,
                          ip_of, a.name_prefix)
    os.environ.update(env)
    os.execvp(cmd[0], [*cmd, *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
