"""A student's JupyterLab: jupyterhub-singleuser that also accepts the student's facility token.

    python -m afbox.hub.singleuser [jupyterhub-singleuser args]

`Authorization: Bearer <facility JWT>` with jupyter.access is accepted when its subject is the
server's owner ($JUPYTERHUB_USER); everything else goes through the hub's OAuth as usual.
"""
from __future__ import annotations

import asyncio
import os

from jupyterhub.singleuser import extension

from ..auth.facility_auth import ValidatorFromEnv
from ..auth.tokens import JUPYTER
from ..auth.validate import TokenRejected, bearer


class StudentIdentityProvider(ValidatorFromEnv, extension.JupyterHubIdentityProvider):
    async def get_user(self, handler):
        token = bearer(handler.request.headers.get("Authorization"))
        if token and token.count(".") == 2:
            owner = os.environ.get("JUPYTERHUB_USER", "")
            try:
                claims = await asyncio.get_running_loop().run_in_executor(None, self.validator.validate, token, JUPYTER)
            except TokenRejected as e:
                self.log.warning("refused a facility token from %s: %s", handler.request.remote_ip, e.reason)
                return None
            if claims.subject != owner:
                self.log.warning("refused %s's facility token at %s's server", claims.subject, owner)
                return None
            handler._jupyterhub_user = extension.JupyterHubUser(
                {"name": owner, "kind": "user", "scopes": [f"access:servers!user={owner}"], "groups": []})
            return handler._jupyterhub_user
        return await super().get_user(handler)


def main() -> None:
    # the extension names its identity provider when it loads its config: give it this one
    extension.JupyterHubIdentityProvider = StudentIdentityProvider
    from jupyterhub.singleuser import main as singleuser_main
    singleuser_main()


if __name__ == "__main__":
    main()
