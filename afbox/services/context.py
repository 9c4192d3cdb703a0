"""Everything a service's rendering may depend on, gathered once so rendering stays pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..facility import Facility
from ..gpu.model import Device
from ..ports import port
from ..state import FacilityState
from .sizing import DaskSize


@dataclass(frozen=True)
class Context:
    facility: Facility
    state: FacilityState
    dask: DaskSize
    bin_dir: str               # where the venv's console scripts live (dask, jupyter, supervisord)
    xrootd: str | None         # path of the xrootd binary, None when not installed
    xrootd_user: str | None    # when running as root, the user xrootd drops to
    cache_dir: Path            # cached data only
    xrootd_dir: Path           # xrootd's config and admin files, readable by its user
    cache_size: int
    as_root: bool = False
    gpus: tuple[Device, ...] = ()  # devices that get a GPU worker each
    origin_dir: Path = Path("/nonexistent")  # data the facility's own origin serves
    # the backend's own facts about where the facility runs (a SLURM allocation); kept in the record
    site: dict[str, Any] = field(default_factory=dict)
    # where people reach exposed ports when not at bind:port (k3s: the ingress host)
    ingress_host: str = ""
    bwrap: str | None = None   # path of bubblewrap, None when not installed (a class's isolation without root)
    sites: tuple = ()          # other facilities this one trusts (afbox.sites.model.Site)

    @property
    def dask_tls(self) -> dict[str, str] | None:
        """CA, cert and key that scheduler, workers and clients present to each other (mutual TLS)."""
        if not self.facility.auth.enabled:
            return None
        d = self.identity_dir
        return {"ca": str(d / "ca.pem"), "cert": str(d / "dask.pem"), "key": str(d / "dask-key.pem")}

    @property
    def identity_dir(self) -> Path:
        """The facility's signing key, CA and certificates (see afbox.auth.identity)."""
        return self.state.secrets / "identity"

    @property
    def token_file(self) -> Path:
        return self.state.token_file

    @property
    def data_env(self) -> tuple[tuple[str, str], ...]:
        """What a process reading root:// through the XCache needs: where the XCache is, and with
        auth the token the WLCG way and the facility CA as a hashed dir (xrootd clients read only
        those) to verify the XCache's TLS."""
        where = (("AFBOX_XCACHE", f"root://{self.bind}:{port(self.base, 'xcache')}"),) \
            if self.facility.xcache.enabled else ()
        if not self.facility.auth.enabled:
            return where
        return (*where, ("BEARER_TOKEN_FILE", str(self.token_file)), ("X509_CERT_DIR", str(self.ca_dir)))

    @property
    def ca_dir(self) -> Path:
        """The facility CA as a hashed dir: xrootd clients read only those, not a CA file."""
        return self.identity_dir / "ca-hashed"

    @property
    def base(self) -> int:
        return self.facility.facility.port_base

    @property
    def bind(self) -> str:
        return self.facility.facility.bind

    @property
    def public_host(self) -> str:
        """Where other sites reach this facility ([facility] public_host); else its bind address."""
        return self.facility.facility.public_host or self.bind

    @property
    def jupyter_token_file(self) -> Path:
        return self.state.secrets / "jupyter_token"

    def public_url(self, port: int, subdomain: str = "", path: str = "") -> str:
        """The address a person's browser opens for a port (exposed with this subdomain)."""
        if self.ingress_host:
            host = f"{subdomain}.{self.ingress_host}" if subdomain else self.ingress_host
            return f"https://{host}{path}"
        return f"http://{self.bind}:{port}{path}"
