"""afbox: an analysis facility in a box — Dask, JupyterLab and an XCache, brought up with one command."""
from __future__ import annotations

import os

__version__ = "0.1.0"


def scheduler_address(name: str | None = None) -> str:
    """The Dask scheduler of a running facility: $AFBOX_SCHEDULER inside it, else its state record."""
    if not name and os.environ.get("AFBOX_SCHEDULER"):
        return os.environ["AFBOX_SCHEDULER"]
    from .errors import AfboxError
    from .naming import resolve_name
    from .state import FacilityState

    rec = FacilityState(resolve_name(name)).read()
    if not rec or "dask-scheduler" not in rec["services"]:
        raise AfboxError("no running facility with a Dask scheduler", hint="start one with: afbox up")
    return rec["services"]["dask-scheduler"]["urls"]["scheduler"]


def client(name: str | None = None, **kwargs):
    """A distributed.Client connected to the facility's Dask cluster: `client = afbox.client()`."""
    from distributed import Client

    return Client(scheduler_address(name), **kwargs)
