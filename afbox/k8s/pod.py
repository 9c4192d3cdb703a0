"""What changes when a service runs in a pod rather than on the host: paths and addresses.

The services render for a pod Context (container paths, listening on 0.0.0.0); addresses that
point at another service (`127.0.0.1:PORT`, `https://0.0.0.0:PORT`) become that service's DNS name.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ..services.context import Context
from ..state import FacilityState

VENV_BIN = "/opt/afbox/venv/bin"        # where images/analysis installs afbox, dask and jupyter
STATE = Path("/var/lib/afbox/state")    # secrets (projected), run dirs (emptyDir)
WORKDIR = "/home/afbox/work"            # the workdir PVC
CACHE = Path("/var/cache/afbox/xcache")  # the xcache PVC
ORIGIN = Path("/var/lib/afbox/origin")  # the origin PVC
XROOTD_DIR = Path("/etc/afbox/xrootd")  # config from a ConfigMap, admin dir an emptyDir
XROOTD = "/usr/bin/xrootd"
UID = 1000                              # the user both images run as (see images/)


class PodState(FacilityState):
    """A facility's state dir as seen inside its pods."""

    @property
    def dir(self) -> Path:
        return STATE


def pod_context(ctx: Context) -> Context:
    fac = ctx.facility
    fac = fac.model_copy(update={"facility": fac.facility.model_copy(update={"bind": "0.0.0.0", "workdir": WORKDIR})})
    # xrootd is in the xcache image whether or not the host has it; no root inside, so no -R.
    return replace(ctx, facility=fac, state=PodState(fac.name), bin_dir=VENV_BIN, xrootd=XROOTD, xrootd_user=None,
                   cache_dir=CACHE, xrootd_dir=XROOTD_DIR, as_root=False, origin_dir=ORIGIN)


ADDRESS = re.compile(r"(?<![\w.-])(?P<scheme>[a-z][a-z0-9+.-]*://)?(?P<host>0\.0\.0\.0|127\.0\.0\.1|localhost)"
                     r":(?P<port>\d+)\b")


def translate(text: str, own_ports: set[int], owners: dict[int, str], namespace: str) -> str:
    """Point addresses of other services at their Service; a URL naming this service's own port
    (an issuer URL) gets its Service name too; a bare listen address of its own stays as it is."""
    def sub(m: re.Match) -> str:
        port = int(m["port"])
        scheme = m["scheme"] or ""
        if port in owners and (scheme or port not in own_ports):
            return f"{scheme}{owners[port]}.{namespace}.svc:{port}"
        return m[0]
    return ADDRESS.sub(sub, text)


def without_allow(config: str) -> str:
    """In the cluster NetworkPolicies say who may connect; xrootd's own host allow-list would
    refuse pod addresses, so it is left out."""
    return "".join(line for line in config.splitlines(keepends=True) if not line.startswith("xrd.allow"))
