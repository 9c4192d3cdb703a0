"""Using a trusted site from here: a token for it, and a Dask cluster at it through its gateway.

Compute goes to the data: the cluster runs at the site, behind its gateway's one port (HTTPS for
the API, the scheduler by SNI on the same port), so only connections from here to there are needed
(this side may be behind NAT) and a cluster never stretches across the WAN. The token is this
facility's own, exchanged at its issuer for one with the site's audience and what the site offered
(at most 1 h); the workers there get it to read data with, never the site owner's.
"""
from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from .. import record
from ..errors import AfboxError
from ..state import FacilityState, resolve_name
from .model import Site
from .routes import EXCHANGE
from .store import SiteStore

DEFAULT_WORKERS = 2
_PINNED: dict[str, ssl.SSLContext] = {}  # gateway address -> its site's CA alone


def here(name: str | None = None):
    """This facility's record and the trusted site named `site`."""
    state = FacilityState(resolve_name(name or os.environ.get("AFBOX_FACILITY")))
    rec = record.read(state)
    if not rec or not rec.auth:
        raise AfboxError(f"facility {state.name!r} is not running with auth", hint="start it with: afbox up")
    return rec, SiteStore(state)


def site_of(site: str, name: str | None = None) -> Site:
    return here(name)[1].require(site)


def own_token(rec) -> str:
    """The token of whoever runs this: $BEARER_TOKEN_FILE inside the facility, else the owner's."""
    path = os.environ.get("BEARER_TOKEN_FILE") or rec.auth.token_file
    try:
        return Path(path).read_text().strip()
    except OSError as e:
        raise AfboxError(f"no token to exchange: {path}: {e.strerror}") from None


def token_for(site: str, name: str | None = None, scope: str = "") -> str:
    """Exchange our token at our issuer for one for `site` (RFC 8693)."""
    rec, store = here(name)
    s = store.require(site)
    form = {"grant_type": EXCHANGE, "subject_token": own_token(rec), "audience": s.audience, "scope": scope,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}
    req = urllib.request.Request(rec.auth.issuer + "/token", data=urllib.parse.urlencode(form).encode(), method="POST")
    ctx = ssl.create_default_context(cafile=str(Path(rec.auth.identity_dir) / "ca.pem"))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=15) as r:
            return json.loads(r.read())["access_token"]
    except urllib.error.HTTPError as e:
        why = json.loads(e.read() or b"{}").get("error_description", e.reason)
        raise AfboxError(f"no token for site {site}: {why}",
                         hint=f"what it grants is learnt on `afbox site refresh {site}` once it trusts this facility") from None
    except OSError as e:
        raise AfboxError(f"this facility's issuer did not answer: {e}") from None


def gateway(site: str, name: str | None = None, token: str | None = None):
    """A dask_gateway.Gateway to the site's gateway, its CA pinned, as this user."""
    from dask_gateway import Gateway
    s = site_of(site, name)
    if not s.descriptor.gateway:
        raise AfboxError(f"site {site} runs no gateway reachable from other sites")
    pin_ca(s.descriptor.gateway.api, s.ca_pem)
    return Gateway(s.descriptor.gateway.api, proxy_address=s.descriptor.gateway.proxy,
                   auth=BearerAuth(token or token_for(site, name)))


def client(site: str, name: str | None = None, workers: int = DEFAULT_WORKERS, timeout: float = 120, **kwargs):
    """A distributed.Client of a new Dask cluster at `site`, with `workers` workers; the cluster
    stops when the client's cluster object is closed (or this process ends)."""
    token = token_for(site, name)
    gw = gateway(site, name, token=token)
    cluster = gw.new_cluster(shutdown_on_close=True)
    try:
        cluster.scale(workers)
        c = cluster.get_client(**kwargs)
        c.register_plugin(SiteToken(token), name=SiteToken.name)
        c.wait_for_workers(workers, timeout=timeout)
    except BaseException:
        cluster.shutdown()
        raise
    return c


def BearerAuth(token: str):  # noqa: N802 - builds the class on first use: dask_gateway is imported lazily
    from dask_gateway.auth import GatewayAuth

    class Bearer(GatewayAuth):
        def pre_request(self, resp):
            return {"Authorization": f"Bearer {token}"}, None
    return Bearer()


class SiteToken(WorkerPlugin):
    """The user's token for the site, for the workers there to read data with (BEARER_TOKEN_FILE)."""
    name = "afbox-site-token"

    def __init__(self, token: str):
        self.token = token

    def setup(self, worker) -> None:
        path = Path(worker.local_directory) / "site.token"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.token + "\n")
        os.environ["BEARER_TOKEN_FILE"] = str(path)


def pin_ca(address: str, ca_pem: str) -> None:
    """dask_gateway builds its own Gateway for each cluster and has no TLS setting: requests to this
    address verify against the site's CA only (its other addresses are untouched)."""
    import dask_gateway.client as dgc

    _PINNED[address.rstrip("/")] = ssl.create_default_context(cadata=ca_pem)
    if getattr(dgc.Gateway.__init__, "afbox_pinned", False):
        return
    original = dgc.Gateway.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if ctx := _PINNED.get(self.address):
            self._request_kwargs["ssl"] = ctx
    init.afbox_pinned = True
    dgc.Gateway.__init__ = init
