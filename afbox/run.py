"""The one place afbox runs other programs: logs argv, enforces a timeout, raises with output."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

from .errors import CommandError, MissingBinary

log = logging.getLogger("afbox.run")

# Which Debian package (or pip extra) provides a binary, for "missing binary" messages.
PROVIDERS = {
    "xrootd": "apt-get install xrootd-server xrootd-server-plugins",
    "xrdcp": "apt-get install xrootd-client",
    "xrdfs": "apt-get install xrootd-client",
    "xrdpfc_print": "apt-get install xrootd-server",
    "srun": "apt-get install slurm-client (or your site's SLURM)",
    "sbatch": "apt-get install slurm-client (or your site's SLURM)",
    "scontrol": "apt-get install slurm-client (or your site's SLURM)",
    "squeue": "apt-get install slurm-client (or your site's SLURM)",
    "scancel": "apt-get install slurm-client (or your site's SLURM)",
    "k3s": "afbox k3s install --bundle DIR (air-gap bundle), or afbox k3s install (get.k3s.io: needs network)",
    "curl": "apt-get install curl",
    "docker": "apt-get install docker.io",
    "apptainer": "apptainer from your site or https://apptainer.org (not in Debian 12)",
    "nvidia-smi": "the NVIDIA driver package (nvidia-driver / nvidia-utils)",
    "rocm-smi": "apt-get install rocm-smi",
    "supervisord": "pip install supervisor (installed with afbox)",
    "jupyter": "pip install jupyterlab (installed with afbox)",
    "dask": "pip install distributed (installed with afbox)",
    "tmux": "apt-get install tmux",
    "uv": "pip install uv (installed with afbox)",
    "bwrap": "apt-get install bubblewrap",
    "configurable-http-proxy": "./install.sh (npm install configurable-http-proxy@4; needs apt-get install nodejs npm)",
    "pixi": "pixi from https://pixi.sh (not in Debian 12)",
    "conda": "micromamba, mamba or conda (https://mamba.readthedocs.io; not in Debian 12)",
}


@dataclass
class Result:
    argv: list[str]
    code: int
    stdout: str
    stderr: str


def which(binary: str) -> str | None:
    """Find a binary on PATH, also looking next to the running interpreter (the venv's bin)."""
    import sys
    venv_bin = os.path.dirname(sys.executable)
    return shutil.which(binary) or shutil.which(binary, path=venv_bin)


def require(binary: str) -> str:
    path = which(binary)
    if not path:
        raise MissingBinary(f"`{binary}` not found on PATH",
                            hint=f"it is provided by: {PROVIDERS.get(binary, 'its package')}")
    return path


def run(argv: list[str], *, timeout: float = 60, check: bool = True, env: dict[str, str] | None = None,
        input: str | None = None, cwd: str | None = None) -> Result:
    """Run argv to completion. Raises MissingBinary, or CommandError on timeout / non-zero exit."""
    argv = [str(a) for a in argv]
    exe = argv[0] if os.sep in argv[0] else require(argv[0])
    log.debug("run: %s", " ".join(argv))
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                              env=full_env, input=input, cwd=cwd, stdin=None if input else subprocess.DEVNULL)
    except (FileNotFoundError, PermissionError) as e:
        raise MissingBinary(f"`{exe}` cannot be run: {e.strerror}",
                            hint=f"it is provided by: {PROVIDERS.get(os.path.basename(exe), 'its package')}") from None
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise CommandError(argv, None, out, err, timeout=timeout) from None
    log.debug("exit %s: %s", proc.returncode, argv[0])
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return Result(argv, proc.returncode, proc.stdout, proc.stderr)
