"""The facility's auth settings as services see them: issuer URL, audience, identity dir, trust.

Services get these through AFBOX_AUTH_* environment variables (paths and URLs, never a secret)
and build the one shared Validator from them.
"""
from __future__ import annotations

import os
from pathlib import Path

from .identity import PUBLIC_KEYS
from .validate import LocalJwks, RemoteJwks, Validator

ENV_ISSUER, ENV_KEYS, ENV_TRUSTED, ENV_CA = (
    "AFBOX_AUTH_ISSUER", "AFBOX_AUTH_KEYS", "AFBOX_AUTH_TRUSTED", "AFBOX_AUTH_CA_FILE")
ENV_SITES = "AFBOX_AUTH_SITES"  # the trust file of other facilities (afbox.auth.site_trust)


def issuer_url(bind: str, port: int) -> str:
    return f"https://{bind}:{port}"


def ca_paths(identity_dir: Path, trusted_ca_files=()) -> list[str]:
    """The facility CA and the CAs of trusted issuers' HTTPS certificates."""
    return [str(identity_dir / "ca.pem"), *(str(Path(f).expanduser()) for f in trusted_ca_files)]


def service_env(issuer: str, identity_dir: Path, trusted: list[str],
                trusted_ca_files: list[str] = ()) -> tuple[tuple[str, str], ...]:
    cas = ca_paths(identity_dir, trusted_ca_files)
    # the public keys only: a service that checks tokens never reads the signing key
    return ((ENV_ISSUER, issuer), (ENV_KEYS, str(identity_dir / PUBLIC_KEYS)), (ENV_TRUSTED, ",".join(trusted)),
            (ENV_CA, os.pathsep.join(cas)))


def ca_files(environ=os.environ) -> list[str]:
    return [f for f in environ.get(ENV_CA, "").split(os.pathsep) if f]


def validator_from_env(environ=os.environ) -> Validator:
    """The facility's own issuer is read from its key files; trusted ones through their JWKS."""
    issuer = environ[ENV_ISSUER]
    trusted: dict = {issuer: LocalJwks(Path(environ[ENV_KEYS]))}
    for other in filter(None, environ.get(ENV_TRUSTED, "").split(",")):
        trusted[other] = RemoteJwks(other, ca_file=ca_files(environ))
    # a token for this facility names it (its issuer URL) as audience
    return Validator(trusted, audience=issuer, ca_file=ca_files(environ), sites=site_trust(environ))


def site_trust(environ=os.environ):
    from .site_trust import SiteTrust
    return SiteTrust(environ[ENV_SITES]) if environ.get(ENV_SITES) else None


class ValidatorFromEnv:
    """Mixin for a service's auth class: the shared validator, built from the environment on first use."""
    _validator: Validator | None = None

    @property
    def validator(self) -> Validator:
        if self._validator is None:
            self._validator = validator_from_env()
        return self._validator
