"""Health checks: one function per kind; each returns (healthy, why-not) and never raises."""
from __future__ import annotations

import json
import socket
import ssl
import struct
from pathlib import Path

import httpx

from .spec import HealthCheck


def check(h: HealthCheck, timeout: float = 1.0) -> tuple[bool, str]:
    try:
        return CHECKS[h.kind](h, timeout)
    except (OSError, httpx.HTTPError, ValueError) as e:
        return False, f"{type(e).__name__}: {e}"


def _headers(h: HealthCheck) -> dict[str, str]:
    out = {}
    for k, v in h.headers:
        if k == "token-file":  # tokens are passed by reference, read only at check time
            out["Authorization"] = f"token {Path(v).read_text().strip()}"
    return out


def _http(h: HealthCheck, timeout: float) -> tuple[bool, str]:
    verify = ssl.create_default_context(cafile=h.ca_file) if h.ca_file else True
    r = httpx.get(h.url, headers=_headers(h), timeout=timeout, verify=verify)
    return r.is_success, f"HTTP {r.status_code}"


def _tcp(h: HealthCheck, timeout: float) -> tuple[bool, str]:
    with socket.create_connection((h.host, h.port), timeout=timeout):
        return True, ""


def _dask_worker(h: HealthCheck, timeout: float) -> tuple[bool, str]:
    name = dict(h.headers)["worker-name"]
    r = httpx.get(h.url, timeout=timeout)
    workers = json.loads(r.text).get("workers", {}) if r.is_success else {}
    names = {w.get("id") or w.get("name") for w in workers.values()}
    return (name in names, "" if name in names else "not yet registered with the scheduler")


# XRootD initial handshake (protocol spec 4.1): 12 zero bytes, then 4 and 2012; kXR_protocol follows.
_HANDSHAKE = struct.pack(">iiiii", 0, 0, 0, 4, 2012)


def _xrootd(h: HealthCheck, timeout: float) -> tuple[bool, str]:
    with socket.create_connection((h.host, h.port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(_HANDSHAKE)
        head = s.recv(8)
        if len(head) < 8:
            return False, "closed during handshake"
        _, status, dlen = struct.unpack(">2sHi", head)
        return status == 0, "" if status == 0 else f"handshake status {status}"


CHECKS = {"http": _http, "https": _http, "tcp": _tcp, "dask-worker": _dask_worker, "xrootd": _xrootd}
