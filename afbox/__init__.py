"""afbox: an analysis facility in a box — Dask, JupyterLab and an XCache, brought up with one command."""
from __future__ import annotations

import os

__version__ = "0.1.0"


def _locate(name: str | None, cluster: str | None) -> tuple[dict | None, str | None]:
    """The facility record and named cluster that (name, cluster) mean; the rule is in client()."""
    from .naming import resolve_name
    from .state import FacilityState, known_facilities

    here = os.environ.get("AFBOX_FACILITY")  # set inside the facility's Jupyter
    if name and cluster is None and name not in known_facilities():
        rec = FacilityState(resolve_name(here)).read() or {}
        if name in (rec.get("clusters") or {}):
            return rec, name
    return FacilityState(resolve_name(name or here)).read(), cluster


def scheduler_address(name: str | None = None, cluster: str | None = None) -> str:
    """The Dask scheduler of a running facility: $AFBOX_SCHEDULER inside it, else its state record;
    with `cluster`, that named cluster's (afbox cluster up)."""
    if not name and not cluster and os.environ.get("AFBOX_SCHEDULER"):
        return os.environ["AFBOX_SCHEDULER"]
    from .errors import AfboxError

    rec, cluster = _locate(name, cluster)
    if cluster:
        named = (rec or {}).get("clusters") or {}
        if cluster not in named:
            raise AfboxError(f"no named cluster {cluster!r}",
                             hint=f"start one: afbox cluster up --env ENV --cluster {cluster}")
        return named[cluster]["address"]
    if not rec or "dask-scheduler" not in rec["services"]:
        raise AfboxError("no running facility with a Dask scheduler", hint="start one with: afbox up")
    return rec["services"]["dask-scheduler"]["urls"]["scheduler"]


def security(name: str | None = None, cluster: str | None = None):
    """The facility's Dask TLS credentials (distributed.Security); None for a plain-tcp facility.
    Inside the facility (Jupyter, workers) they come from the environment's Dask config.
    Named clusters use the facility's credentials too."""
    from distributed.security import Security

    if not name and not cluster and os.environ.get("AFBOX_SCHEDULER"):
        return Security()  # from DASK_DISTRIBUTED__COMM__TLS__* set by the facility
    return record_security(_locate(name, cluster)[0] or {})


def record_security(rec: dict):
    """distributed.Security from a facility's state record (its `dask.tls` paths); None for plain tcp."""
    from distributed.security import Security

    tls = (rec.get("dask") or {}).get("tls")
    if not tls:
        return None
    return Security(tls_ca_file=tls["ca"], tls_client_cert=tls["cert"], tls_client_key=tls["key"],
                    require_encryption=True)


def data_env(name: str | None = None) -> dict[str, str]:
    """The environment a process on this host needs to read root:// through the facility's XCache:
    `os.environ.update(afbox.data_env())` before the first read. Empty when auth is off.
    Inside the facility (kernels, workers) it is set already."""
    from .errors import AfboxError
    from .naming import resolve_name
    from .state import FacilityState

    rec = FacilityState(resolve_name(name)).read()
    if not rec:
        raise AfboxError("no running facility", hint="start one with: afbox up")
    return record_data_env(rec)


def record_data_env(rec: dict) -> dict[str, str]:
    auth = rec.get("auth") or {}
    if not auth.get("token_file"):
        return {}
    return {"BEARER_TOKEN_FILE": auth["token_file"], "X509_CERT_DIR": auth["ca_dir"]}


def client(name: str | None = None, cluster: str | None = None, **kwargs):
    """A distributed.Client connected to the facility's Dask cluster: `client = afbox.client()`.

    `afbox.client(cluster="agc")` connects to the named cluster "agc" (afbox cluster up) of the
    facility; `afbox.client("agc")` does too when no facility is called "agc" but a named cluster is
    (a facility of that name wins). `afbox.client("fac", cluster="agc")` names both."""
    from distributed import Client

    kwargs.setdefault("security", security(name, cluster))
    return Client(scheduler_address(name, cluster), **kwargs)


def gateway(name: str | None = None, token: str | None = None):
    """A dask_gateway.Gateway to the facility's gateway, authenticated with a facility token:
    `cluster = afbox.gateway().new_cluster(); cluster.scale(2); client = cluster.get_client()`.
    The token is `token`, else $BEARER_TOKEN_FILE's (set inside the facility), else the owner's."""
    from dask_gateway import Gateway

    from .gateway_client import BearerAuth
    from .errors import AfboxError
    from .naming import resolve_name
    from .state import FacilityState

    rec = FacilityState(resolve_name(name)).read() or {}
    svc = (rec.get("services") or {}).get("gateway")
    if not svc:
        raise AfboxError("no running facility with a Dask gateway", hint="start one with: afbox up")
    if token is None:
        path = (os.environ.get("BEARER_TOKEN_FILE") if not name else None) or record_data_env(rec).get(
            "BEARER_TOKEN_FILE")
        with open(path) as f:
            token = f.read().strip()
    return Gateway(svc["urls"]["gateway"], proxy_address=svc["urls"]["proxy"], auth=BearerAuth(token))
