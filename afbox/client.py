"""The notebook API: `afbox.client()`, `afbox.gateway()`, `afbox.data_env()`.

It runs in the facility's Jupyter kernels and also in named environments' kernels, which lack
afbox's own dependencies: so it reads the facility's record with the standard library only, and its
stable keys only (see afbox.record).
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

from .errors import AfboxError
from .state import FacilityState, known_facilities, resolve_name


def _record(name: str | None) -> dict | None:
    try:
        return json.loads(FacilityState(resolve_name(name)).record_file.read_text())
    except (OSError, ValueError):
        return None


def _locate(name: str | None, cluster: str | None) -> tuple[dict | None, str | None]:
    """The facility record and named cluster that (name, cluster) mean; the rule is in client()."""
    here = os.environ.get("AFBOX_FACILITY")  # set inside the facility's Jupyter
    if name and cluster is None:
        rec = _record(here) or {}
        if name in (rec.get("clusters") or {}):
            if name not in known_facilities():
                return rec, name
            return _ambiguous(name, here, rec)
    return _record(name or here), cluster


def _ambiguous(name: str, here: str | None, rec: dict) -> tuple[dict | None, str | None]:
    """`name` is a facility and a named cluster: in that cluster's own kernel ("Python (ENV)") the
    cluster, elsewhere the facility's default cluster; either way a warning that says which."""
    mine = os.environ.get("AFBOX_CLUSTER") == name
    which = "the named cluster (this kernel's)" if mine else f"the default cluster of facility {name!r}"
    warnings.warn(f"{name!r} names both a facility and a named cluster of facility {rec.get('facility') or here!r}; "
                  f"connecting to {which}. afbox.client(cluster={name!r}) always means the named cluster",
                  UserWarning, stacklevel=4)  # the caller of client() et al.
    return (rec, name) if mine else (_record(name), None)


def scheduler_address(name: str | None = None, cluster: str | None = None) -> str:
    """The Dask scheduler of a running facility: $AFBOX_SCHEDULER inside it, else its state record;
    with `cluster`, that named cluster's (afbox cluster up)."""
    if not name and not cluster and os.environ.get("AFBOX_SCHEDULER"):
        return os.environ["AFBOX_SCHEDULER"]
    return _address(*_locate(name, cluster))


def _address(rec: dict | None, cluster: str | None) -> str:
    if cluster:
        named = (rec or {}).get("clusters") or {}
        if cluster not in named:
            raise AfboxError(f"no named cluster {cluster!r}",
                             hint=f"start one: afbox cluster up --env ENV --cluster {cluster}")
        return named[cluster]["address"]
    sched = ((rec or {}).get("services") or {}).get("dask-scheduler")
    if not sched:
        raise AfboxError("no running facility with a Dask scheduler", hint="start one with: afbox up")
    return sched["urls"]["scheduler"]


def security(name: str | None = None, cluster: str | None = None):
    """The facility's Dask TLS credentials (distributed.Security); None for a plain-tcp facility.
    Inside the facility (Jupyter, workers) they come from the environment's Dask config.
    Named clusters use the facility's credentials too."""
    from distributed.security import Security

    if not name and not cluster and os.environ.get("AFBOX_SCHEDULER"):
        return Security()  # from DASK_DISTRIBUTED__COMM__TLS__* set by the facility
    return record_security(_locate(name, cluster)[0] or {})


def record_security(rec: dict):
    """distributed.Security from a facility's record (its `dask.tls` paths); None for plain tcp."""
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
    rec = _record(name)
    if not rec:
        raise AfboxError("no running facility", hint="start one with: afbox up")
    return record_data_env(rec)


def record_data_env(rec: dict) -> dict[str, str]:
    auth = rec.get("auth") or {}
    if not auth.get("token_file"):
        return {}
    return {"BEARER_TOKEN_FILE": auth["token_file"], "X509_CERT_DIR": auth["ca_dir"]}


def client(name: str | None = None, cluster: str | None = None, site: str | None = None, **kwargs):
    """A distributed.Client connected to the facility's Dask cluster: `client = afbox.client()`.

    `afbox.client(cluster="agc")` connects to the named cluster "agc" (afbox cluster up) of the
    facility; `afbox.client("agc")` does too when no facility is called "agc" but a named cluster is.
    When both are, it warns and means the named cluster inside that cluster's own kernel, the
    facility elsewhere. `afbox.client("fac", cluster="agc")` names both.
    `afbox.client(site="B")` starts a Dask cluster AT the trusted site B, through B's gateway, as this
    user (`workers=N`, default 2); see afbox.sites.remote."""
    if site:
        from .sites.remote import client as at_site
        return at_site(site, name, **kwargs)
    from distributed import Client

    if not name and not cluster and os.environ.get("AFBOX_STUDENT") and os.environ.get("AFBOX_GATEWAY"):
        return _student_client(**kwargs)
    if not name and not cluster and os.environ.get("AFBOX_SCHEDULER"):
        kwargs.setdefault("security", security())
        return Client(os.environ["AFBOX_SCHEDULER"], **kwargs)
    rec, cluster = _locate(name, cluster)  # once: an ambiguous name warns once
    kwargs.setdefault("security", record_security(rec or {}))
    return Client(_address(rec, cluster), **kwargs)


_student_clusters: list = []  # keeps the student's cluster object alive as long as the kernel


def _student_client(**kwargs):
    """In a class (afbox.hub) a student's own small cluster from the gateway: the running one, else
    a new one; it outlives the kernel until it idles out or their server stops."""
    gw = gateway()
    running = gw.list_clusters()
    if running:
        cluster = gw.connect(running[0].name, shutdown_on_close=False)
    else:
        cluster = gw.new_cluster(shutdown_on_close=False)
        cluster.scale(int(os.environ.get("AFBOX_STUDENT_WORKERS", "1")))
    _student_clusters.append(cluster)
    return cluster.get_client(set_as_default=kwargs.pop("set_as_default", True))


def gateway(name: str | None = None, token: str | None = None):
    """A dask_gateway.Gateway to the facility's gateway, authenticated with a facility token:
    `cluster = afbox.gateway().new_cluster(); cluster.scale(2); client = cluster.get_client()`.
    The token is `token`, else $BEARER_TOKEN_FILE's (set inside the facility), else the owner's."""
    from dask_gateway import Gateway

    if not name and os.environ.get("AFBOX_GATEWAY"):  # a student's kernel (afbox.hub): no record to read
        urls = {"gateway": os.environ["AFBOX_GATEWAY"], "proxy": os.environ.get("AFBOX_GATEWAY_PROXY", "")}
        svc, rec = {"urls": urls}, {}
    else:
        rec = _record(name) or {}
        svc = (rec.get("services") or {}).get("gateway")
    if not svc:
        raise AfboxError("no running facility with a Dask gateway", hint="start one with: afbox up")
    if token is None:
        path = (os.environ.get("BEARER_TOKEN_FILE") if not name else None) or record_data_env(rec).get(
            "BEARER_TOKEN_FILE")
        with open(path) as f:
            token = f.read().strip()
    address = svc["urls"]["gateway"]
    if address.startswith("https://") and (rec.get("auth") or {}).get("identity_dir"):
        # a federating facility's gateway speaks HTTPS with the facility's own CA
        from .sites.remote import pin_ca
        pin_ca(address, (Path(rec["auth"]["identity_dir"]) / "ca.pem").read_text())
    return Gateway(address, proxy_address=svc["urls"]["proxy"], auth=_bearer_auth(token))


def _bearer_auth(token: str):
    """dask_gateway auth sending `Authorization: Bearer <token>`."""
    from dask_gateway.auth import GatewayAuth

    class BearerAuth(GatewayAuth):
        def pre_request(self, resp):
            return {"Authorization": f"Bearer {token}"}, None

    _quiet_gateway_del()
    return BearerAuth()


def _quiet_gateway_del() -> None:
    """dask_gateway closes a Gateway again when it is garbage collected, also one a GatewayCluster
    made for itself; after an explicit close, distributed >= 2023.6 raises on the stopped loop,
    printing a traceback for a cluster that was shut down correctly."""
    from dask_gateway import Gateway

    if getattr(Gateway.__del__, "afbox_quiet", False):
        return
    original = Gateway.__del__

    def quiet_del(self):
        with contextlib.suppress(RuntimeError):
            original(self)
    quiet_del.afbox_quiet = True
    Gateway.__del__ = quiet_del
