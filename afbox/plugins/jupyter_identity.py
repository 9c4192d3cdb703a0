"""Jupyter accepts the facility's tokens: `Authorization: Bearer <JWT>` or `?token=<JWT>` in the
login URL (which then sets the session cookie, and the dashboards' cookie), beside Jupyter's own
random token."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.identity import IdentityProvider, User

from ..auth.facility_auth import ValidatorFromEnv
from .http_guard import COOKIE
from ..auth.tokens import JUPYTER
from ..auth.validate import TokenRejected


class FacilityIdentityProvider(ValidatorFromEnv, IdentityProvider):
    async def get_user_token(self, handler) -> User | None:
        user = await super().get_user_token(handler)
        if user is not None:
            return user
        token = self.get_token(handler)
        if not token or token.count(".") != 2:
            return None
        try:
            # a remote issuer's JWKS may need fetching: keep the event loop free meanwhile
            claims = await asyncio.get_running_loop().run_in_executor(
                None, self.validator.validate, token, JUPYTER)
        except TokenRejected as e:
            self.log.warning("refused a facility token from %s: %s", handler.request.remote_ip, e.reason)
            return None
        if handler.get_argument("token", "") == token:
            # a login link: the browser also gets the token for the facility's Dask dashboards
            # (cookies are per host, not per port)
            handler.set_cookie(COOKIE, token, path="/", httponly=True, samesite="Strict",
                               expires=claims.expires)
        return User(username=claims.user, name=claims.user, display_name=claims.user)
