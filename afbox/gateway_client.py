"""Client side of the facility's Dask gateway: dask_gateway sending `Authorization: Bearer <token>`."""
from __future__ import annotations

from dask_gateway.auth import GatewayAuth


class BearerAuth(GatewayAuth):
    def __init__(self, token: str | None = None, **kwargs):
        self.token = token

    def pre_request(self, resp):
        return ({"Authorization": f"Bearer {self.token}"} if self.token else {}), None
