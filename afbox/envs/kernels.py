"""Jupyter kernels of environments, and `import afbox` (its client part) inside them."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..state import write_private
from .paths import AFBOX, client_binds, jupyter_dir, kernel_name, pylib
from .store import Env


def kernelspec(env: "Env", extra_env: dict[str, str] | None = None, binds: tuple[str, ...] = ()) -> dict:
    """A Jupyter kernelspec running the environment's own python. With no cluster of its own the
    kernel must not reach for the facility's default cluster, whose versions may differ. An image's
    kernel runs in the container, seeing binds (Jupyter's connection file, credentials, afbox.client)."""
    env_vars = {"AFBOX_ENV": env.name, "AFBOX_SCHEDULER": "", "DASK_SCHEDULER_ADDRESS": ""} | (extra_env or {})
    if env.image:
        env_vars["PYTHONPATH"] = str(pylib())  # `import afbox` in the image: its client part only
    return {"argv": list(env.python_argv(binds)) + ["-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": display_name(env.name, env_vars.get("AFBOX_CLUSTER")), "language": "python",
            "env": env_vars,
            "metadata": {"afbox": {"env": env.name, "digest": env.digest}}}


def display_name(env_name: str, cluster: str | None = None) -> str:
    """What the launcher shows: a kernel of the user's afbox environment (any facility of theirs shows
    it), or one bound to a named cluster of this facility."""
    return f"Python ({env_name}, cluster {cluster})" if cluster else f"Python ({env_name}, afbox env)"


# -- the environments on disk ---------------------------------------------------------------------
def link_afbox(prefix: Path | None) -> None:
    """`import afbox` in the environment: its top level (afbox.client) needs only the standard library
    and distributed, so a notebook in the environment's kernel finds its cluster by name without
    afbox's own dependencies (or their versions) entering the user's stack. An image's python finds
    it through PYTHONPATH (its kernelspec) instead of a .pth file (prefix None)."""
    lib = pylib()
    lib.mkdir(parents=True, exist_ok=True)
    link, target = lib / "afbox", AFBOX
    if not link.is_symlink() or link.resolve() != target:
        tmp = lib / f".afbox-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    for site in prefix.glob("lib/python3*/site-packages") if prefix else ():
        (site / "afbox-client.pth").write_text(f"{lib}\n")


def write_kernelspec(env: Env, kernels: Path | None = None, extra_env: dict[str, str] | None = None,
                     binds: tuple[str, ...] = ()) -> Path | None:
    """binds: what an image's kernel sees of the host besides client_binds() (a facility's dirs)."""
    d = (kernels or jupyter_dir() / "kernels") / kernel_name(env.name)
    if env.image and "ipykernel" not in env.meta.get("packages", {}):
        return None  # said at create time: the image cannot run a kernel
    d.mkdir(parents=True, exist_ok=True)
    spec = kernelspec(env, extra_env, tuple(dict.fromkeys((*client_binds(), *binds))) if env.image else ())
    # it may carry a scheduler address; no secrets, but no reason for others to read it either
    write_private(d / "kernel.json", json.dumps(spec, indent=1))
    return d
