"""What afbox keeps of its SLURM jobs (<state>/slurm.json), and SLURM batch scripts as text (pure):
the facility's own job and worker-only jobs that join it.

Rendered here rather than through dask-jobqueue's SLURMJob: that class renders a `dask worker`
per job but not afbox's per-node launcher, the runtime wrapper or a head job, and it wants a
scheduler object to be constructed. The shape follows it: an `#SBATCH` header, then the command."""
from __future__ import annotations

import fcntl
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from ...state import FacilityState


def job_file(state: FacilityState) -> Path:
    return state.dir / "slurm.json"


def read_job(state: FacilityState) -> dict:
    try:
        return json.loads(job_file(state).read_text())
    except (OSError, ValueError):
        return {}


def update_job(state: FacilityState, **changes) -> dict:
    """Merge changes into slurm.json; the watcher, the job's head and `scale` all write it, so under a lock."""
    state.dir.mkdir(parents=True, exist_ok=True)
    with open(state.dir / "slurm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {**read_job(state), **changes}
        tmp = job_file(state).with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(job_file(state))
    return data


@dataclass(frozen=True)
class Header:
    job_name: str
    nodes: int = 1
    time: str = ""
    partition: str = ""
    account: str = ""
    output: str = ""
    ntasks_per_node: int = 0
    cpus_per_task: int = 0
    extra: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"#SBATCH --job-name={self.job_name}", f"#SBATCH --nodes={self.nodes}"]
        for flag, value in (("time", self.time), ("partition", self.partition), ("account", self.account),
                            ("output", self.output), ("ntasks-per-node", self.ntasks_per_node),
                            ("cpus-per-task", self.cpus_per_task)):
            if value:
                out.append(f"#SBATCH --{flag}={value}")
        out += [f"#SBATCH {x}" for x in self.extra]
        return out


def script(header: Header, body: list[str], env: dict[str, str] | None = None) -> str:
    lines = ["#!/usr/bin/env bash", *header.lines(), "set -euo pipefail"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    return "\n".join([*lines, *body]) + "\n"


def head_job(header: Header, afbox: str, spec_file: str) -> str:
    """The facility in a job of its own: `afbox slurm-job` brings it up and holds it for the job's life."""
    return script(header, [f"exec {shlex.quote(afbox)} slurm-job --spec {shlex.quote(spec_file)}"])


def worker_job(header: Header, step: list[str], env: dict[str, str]) -> str:
    """Worker-only job: one srun step of workers that join a running scheduler."""
    return script(header, [shlex.join(step)], env)
