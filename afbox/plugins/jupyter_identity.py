"""Jupyter accepts the facility's tokens, and only those: `Authorization: Bearer <JWT>`, `?token=<JWT>`
in the login link, or pasted into the login form (each sets the session cookie, and the cookie the
Dask dashboards accept). Jupyter's own shared token is never made or accepted."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import default

from ..auth.facility_auth import ValidatorFromEnv
from ..auth.tokens import JUPYTER
from ..auth.validate import Claims, TokenRejected
from .http_guard import COOKIE


class FacilityIdentityProvider(ValidatorFromEnv, IdentityProvider):
    # a second credential beside the facility's tokens would be one too many
    need_token = False

    @default("token")
    def _token_default(self) -> str:
        return ""

    async def get_user_token(self, handler) -> User | None:
        token = self.get_token(handler)
        claims = await self._check(token, handler)
        if claims is None:
            return None
        if handler.get_argument("token", "") == token:
            # a login link: the browser also gets the token for the facility's Dask dashboards
            self._dashboards_cookie(handler, token, claims)
        return self._user(claims)

    def process_login_form(self, handler) -> User | None:
        """A facility token pasted into the login form. Jupyter calls this synchronously: the facility's
        own keys are local files; a trusted remote issuer's JWKS is fetched once and then cached."""
        token = handler.get_argument("password", default="").strip()
        try:
            claims = self.validator.validate(token, JUPYTER)
        except TokenRejected as e:
            self.log.warning("refused a login from %s: %s", handler.request.remote_ip, e.reason)
            return None
        self._dashboards_cookie(handler, token, claims)
        return self._user(claims)

    async def _check(self, token: str | None, handler) -> Claims | None:
        if not token or token.count(".") != 2:
            return None
        try:
            # a remote issuer's JWKS may need fetching: keep the event loop free meanwhile
            return await asyncio.get_running_loop().run_in_executor(None, self.validator.validate, token, JUPYTER)
        except TokenRejected as e:
            self.log.warning("refused a facility token from %s: %s", handler.request.remote_ip, e.reason)
            return None

    @staticmethod
    def _dashboards_cookie(handler, token: str, claims: Claims) -> None:
        """The dashboards, served under JupyterLab's own host and path, check this cookie."""
        handler.set_cookie(COOKIE, token, path="/", httponly=True, samesite="Strict", expires=claims.expires)

    @staticmethod
    def _user(claims: Claims) -> User:
        return User(username=claims.user, name=claims.user, display_name=claims.user)
