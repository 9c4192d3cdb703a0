"""afbox images pull, and the SLURM side of up/scale (HPC mode)."""
from __future__ import annotations

COMMANDS: list = []


def submit_and_wait(fac, profile, config) -> None:
    from ..errors import AfboxError
    raise AfboxError("afbox up --slurm is not built yet")
