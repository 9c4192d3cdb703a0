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


def security(name: str | None = None):
    """The facility's Dask TLS credentials (distributed.Security); None for a plain-tcp facility.
    Inside the facility (Jupyter, workers) they come from the environment's Dask config."""
    from distributed.security import Security

    if not name and os.environ.get("AFBOX_SCHEDULER"):
        return Security()  # from DASK_DISTRIBUTED__COMM__TLS__* set by the facility
    from .naming import resolve_name
    from .state import FacilityState

    return record_security(FacilityState(resolve_name(name)).read() or {})


def record_security(rec: dict):
    """distributed.Security from a facility's state record (its `dask.tls` paths); None for plain tcp."""
    from distributed.security import Security

    tls = (rec.get("dask") or {}).get("tls")
    if not tls:
        return None
    return Security(tls_ca_file=tls["ca"], tls_client_cert=tls["cert"], tls_client_key=tls["key"],
                    require_encryption=True)


def client(name: str | None = None, **kwargs):
    """A distributed.Client connected to the facility's Dask cluster: `client = afbox.client()`."""
    from distributed import Client

    kwargs.setdefault("security", security(name))
    return Client(scheduler_address(name), **kwargs)
