"""Client side of the facility's Dask gateway: dask_gateway sending `Authorization: Bearer <token>`."""
from __future__ import annotations

import contextlib

from dask_gateway import Gateway
from dask_gateway.auth import GatewayAuth


class BearerAuth(GatewayAuth):
    def __init__(self, token: str | None = None, **kwargs):
        self.token = token

    def pre_request(self, resp):
        return ({"Authorization": f"Bearer {self.token}"} if self.token else {}), None


def _quiet_del(self, _del=Gateway.__del__):
    # dask_gateway closes a Gateway again when it is garbage collected, also one a GatewayCluster made
    # for itself; after an explicit close, distributed >= 2023.6 raises on the stopped loop, printing
    # a traceback for a cluster that was shut down correctly.
    with contextlib.suppress(RuntimeError):
        _del(self)


Gateway.__del__ = _quiet_del
