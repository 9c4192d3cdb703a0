"""dask-gateway-server accepts the facility's tokens: `Authorization: Bearer <JWT>` with compute.create,
checked by the same validator as Jupyter and the XCache."""
from __future__ import annotations

import asyncio

from aiohttp import web
from dask_gateway_server.auth import Authenticator
from dask_gateway_server.models import User

from ..auth.facility_auth import ValidatorFromEnv
from ..auth.tokens import COMPUTE
from ..auth.validate import TokenRejected, bearer


class FacilityAuthenticator(ValidatorFromEnv, Authenticator):
    async def authenticate(self, request):
        token = bearer(request.headers.get("Authorization"))
        try:
            # a trusted remote issuer's JWKS may need fetching: keep the event loop free meanwhile
            claims = await asyncio.get_running_loop().run_in_executor(None, self.validator.validate, token, COMPUTE)
        except TokenRejected as e:
            self.log.warning("refused a request from %s: %s", request.remote, e.reason)
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="afbox"'},
                                       reason="a facility token with compute.create is required") from None
        # another site's user is <site>-<sub> here, in a group that gets its site's limits (plugins.site_limits)
        return User(claims.user, groups=[f"site:{claims.site}"] if claims.site else [])
