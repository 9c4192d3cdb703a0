"""Named software environments: content-addressed Python stacks that named Dask clusters and
Jupyter kernels run in (afbox env create/list/rm).

An environment lives in `<data>/afbox/envs/<digest>/`, where the digest covers the normalized
requirements (or the lock file's bytes), the Python version and what afbox adds, so the same
request reuses the same environment. Names point at digests (`names/<name>.json`). A uv build
happens in a temporary dir that is renamed into place only once it works (a relocatable venv), so
a failed build leaves nothing behind; conda/pixi prefixes cannot move, so they are built in place
and marked complete only at the end (a dir without its marker is never used and is rebuilt).
A container image is an environment too: pulled once into its dir as a .sif (content-addressed by
the reference), or a .sif / sandbox dir used where it is; its python runs through `apptainer exec`.
"""
from __future__ import annotations

from .build import Step, create, lock_prefix, lock_steps, uv_steps
from .kernels import display_name, kernelspec, link_afbox, write_kernelspec
from .paths import client_binds, envs_root, facility_jupyter_dir, facility_kernels, jupyter_dir, kernel_name, pylib
from .source import DASHBOARD_CHECK, NEEDED, RECIPE, Source, additions, digest, parse_requirements
from .store import KEY_PACKAGES, Env, all_envs, check_name, get, remove, tree_size, users

__all__ = ["DASHBOARD_CHECK", "KEY_PACKAGES", "NEEDED", "RECIPE", "Env", "Source", "Step", "additions", "all_envs",
           "check_name", "client_binds", "create", "digest", "display_name", "envs_root", "facility_jupyter_dir",
           "facility_kernels", "get",
           "jupyter_dir", "kernel_name", "kernelspec", "link_afbox", "lock_prefix", "lock_steps", "parse_requirements",
           "pylib", "remove", "tree_size", "users", "uv_steps", "write_kernelspec"]
