"""dask-gateway client auth with a facility token read from a file at each login, so a renewed token
file is picked up: what the Dask panel's "+ NEW" (and a bare dask_gateway.Gateway() in a kernel) use.

    DASK_GATEWAY__AUTH__TYPE=afbox.plugins.gateway_token.TokenFileAuth   (token: $BEARER_TOKEN_FILE)
"""
from __future__ import annotations

import os
from pathlib import Path

from dask_gateway.auth import GatewayAuth


class TokenFileAuth(GatewayAuth):
    def __init__(self, token_file: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.token_file = token_file or os.environ.get("BEARER_TOKEN_FILE", "")

    def pre_request(self, resp):
        if not self.token_file:
            raise RuntimeError("no facility token: BEARER_TOKEN_FILE is not set (afbox token --export sets it)")
        return {"Authorization": f"Bearer {Path(self.token_file).read_text().strip()}"}, None
