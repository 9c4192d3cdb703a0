"""Where environments and their Jupyter kernels live, and the names things there get."""
from __future__ import annotations

from pathlib import Path

from ..state import data_root, state_root

AFBOX = Path(__file__).resolve().parent.parent  # the afbox package itself


def envs_root() -> Path:
    return data_root() / "envs"


def jupyter_dir() -> Path:
    """On every facility's JUPYTER_PATH: kernelspecs written here show up in running Jupyters."""
    return envs_root() / "jupyter"


def facility_jupyter_dir(state_dir: Path) -> Path:
    """First on one facility's JUPYTER_PATH: kernelspecs of its named clusters, with their addresses."""
    return state_dir / "jupyter"


def facility_kernels(state_dir: Path) -> Path:
    return facility_jupyter_dir(state_dir) / "kernels"


def kernel_name(env_name: str) -> str:
    return f"afbox-{env_name}"


def pylib() -> Path:
    return envs_root() / "pylib"


def client_binds() -> tuple[str, ...]:
    """What an image's kernel or client needs of the host beyond apptainer's defaults ($HOME, the
    working dir): afbox.client (the link and its target) and the facilities' state (Jupyter's
    connection files, the Dask and data credentials)."""
    return (str(pylib()), str(AFBOX), str(state_root()))


# -- pure: what to build -------------------------------------------------------------------------
