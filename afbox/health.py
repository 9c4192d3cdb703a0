"""Health checks: one function per kind; each returns (healthy, why-not) and never raises. And the
one way afbox waits for something: poll_until."""
from __future__ import annotations

import json
import socket
import ssl
import struct
import time
from pathlib import Path
from typing import Callable, TypeVar

import httpx

from .spec import HealthCheck

T = TypeVar("T")


def poll_until(ready: Callable[[], T], timeout: float, interval: float = 0.2) -> T | None:
    """Ask ready() until it answers something truthy, which is returned; None once timeout has passed
    (ready() is asked at least once, and once more at the end)."""
    end = time.monotonic() + timeout
    while True:
        answer = ready()
        if answer or time.monotonic() >= end:
            return answer or None
        time.sleep(min(interval, max(0.0, end - time.monotonic())))


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
        elif k == "bearer-file":
            out["Authorization"] = f"Bearer {Path(v).read_text().strip()}"
    return out


_clients: dict[str | None, httpx.Client] = {}


def _client(ca_file: str | None) -> httpx.Client:
    """One client per CA for the life of the process: building one costs tens of ms of CPU,
    which a console polling every second would pay again and again."""
    if ca_file not in _clients:
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        _clients[ca_file] = httpx.Client(verify=verify)
    return _clients[ca_file]


def _http(h: HealthCheck, timeout: float) -> tuple[bool, str]:
    r = _client(h.ca_file).get(h.url, headers=_headers(h), timeout=timeout)
    return r.is_success, f"HTTP {r.status_code}"


def _tcp(h: HealthCheck, timeout: float) -> tuple[bool, str]:
    with socket.create_connection((h.host, h.port), timeout=timeout):
        return True, ""


def _dask_worker(h: HealthCheck, timeout: float) -> tuple[bool, str]:
    name = dict(h.headers)["worker-name"]
    r = _client(None).get(h.url, headers=_headers(h), timeout=timeout)
    if r.status_code >= 500:
        # for about a heartbeat after a computation the scheduler cannot serialize its identity
        # (metrics keyed by tuples) and answers 500: ask once more before calling a worker missing
        time.sleep(1.0)
        r = _client(None).get(h.url, headers=_headers(h), timeout=timeout)
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
