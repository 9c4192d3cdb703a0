"""A student's JupyterLab: jupyterhub-singleuser that also accepts the student's facility token.

    python -m afbox.hub.singleuser [jupyterhub-singleuser args]

`Authorization: Bearer <facility JWT>` with jupyter.access is accepted when its subject is the
server's owner ($JUPYTERHUB_USER); everything else goes through the hub's OAuth as usual.
"""
from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from jupyterhub.singleuser import extension

from ..auth.facility_auth import ValidatorFromEnv
from ..auth.tokens import JUPYTER
from ..auth.validate import TokenRejected, bearer
from ..state import replace_private

SOURCE_ENV = "AFBOX_TOKEN_SOURCE"  # k3s: the student's token Secret, mounted (afbox.hub.kube)


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


def copy_token(source: Path, dest: Path) -> bool:
    """A 0600 copy of the token the pod is given (a Secret's files are group-readable, and xrootd's
    token auth refuses those); True when it changed."""
    token = source.read_bytes()
    if dest.exists() and dest.read_bytes() == token:
        return False
    replace_private(dest, token)
    return True


def keep_token_copy(source: Path, dest: Path, every: float = 30.0) -> threading.Event:
    """Copy now, then follow the Secret as the hub renews it (the kubelet updates the mount) until
    the returned event is set."""
    copy_token(source, dest)
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(every):
            try:
                copy_token(source, dest)
            except OSError as e:
                print(f"afbox: could not renew the token copy {dest}: {e}", flush=True)
    threading.Thread(target=follow, name="afbox-token", daemon=True).start()
    return stop


def main() -> None:
    source = os.environ.get(SOURCE_ENV)
    if source and os.environ.get("BEARER_TOKEN_FILE"):
        keep_token_copy(Path(source), Path(os.environ["BEARER_TOKEN_FILE"]))
    # the extension names its identity provider when it loads its config: give it this one
    extension.JupyterHubIdentityProvider = StudentIdentityProvider
    from jupyterhub.singleuser import main as singleuser_main
    singleuser_main()


if __name__ == "__main__":
    main()
