"""The facility's token issuer over HTTPS (the xrootd scitokens plugin accepts only https issuers).

    python -m afbox.auth.issuer_app --identity-dir D --issuer https://127.0.0.1:PORT [--port PORT]

Serves <issuer>/.well-known/openid-configuration, <issuer>/jwks.json (re-read when a key rotation
replaces the key files, so no restart is needed) and <issuer>/health.  With --site-descriptor it
also serves <issuer>/.well-known/afbox-site and exchanges this facility's tokens for tokens for a
trusted site (afbox.sites.routes): only a token in, only a narrower one out. Tokens are otherwise
minted through the Python API.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import ssl
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import tornado.ioloop
import tornado.web

from .identity import load, stamp
from .tokens import COMPUTE, JUPYTER

JWKS_MAX_AGE = 300  # clients refetch on an unknown kid anyway


def discovery(issuer: str) -> dict:
    return {
        "issuer": issuer,
        "jwks_uri": issuer.rstrip("/") + "/jwks.json",
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": [COMPUTE, JUPYTER, "storage.read:/"],
        "claims_supported": ["wlcg.ver", "iss", "sub", "aud", "scope", "exp", "iat", "nbf", "jti"],
    }


class Keys:
    """The published JWKS, rebuilt only when the identity files change."""

    def __init__(self, dir: Path):
        self.dir, self._stamp, self._ident = dir, None, None

    def jwks(self) -> dict:
        current = stamp(self.dir)
        if current != self._stamp:
            self._ident, self._stamp = load(self.dir), current
        return self._ident.jwks()  # filtered each time: rotated keys drop out when their time is up


class JsonHandler(tornado.web.RequestHandler):
    def initialize(self, body, max_age: int = 0):
        self.body, self.max_age = body, max_age

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", f"public, max-age={self.max_age}" if self.max_age else "no-store")
        self.finish(json.dumps(self.body() if callable(self.body) else self.body))


def make_app(identity_dir: Path, issuer: str, site=None) -> tornado.web.Application:
    """site: an afbox.sites.routes.SiteService, to serve the site descriptor and token exchange too."""
    keys = Keys(Path(identity_dir))
    keys.jwks()  # fail at start, not on the first request, when the identity is missing
    prefix = urlsplit(issuer).path.rstrip("/")
    started = time.time()
    extra = []
    if site is not None:
        from ..sites.routes import routes
        extra = routes(prefix, site)
    return tornado.web.Application([
        (f"{prefix}/.well-known/openid-configuration", JsonHandler, {"body": discovery(issuer), "max_age": 3600}),
        (f"{prefix}/jwks.json", JsonHandler, {"body": keys.jwks, "max_age": JWKS_MAX_AGE}),
        (f"{prefix}/health", JsonHandler, {"body": lambda: {"status": "ok", "keys": len(keys.jwks()["keys"]),
                                                              "uptime": round(time.time() - started)}}),
        *extra,
    ])


def tls_context(identity_dir: Path) -> ssl.SSLContext:
    ident = load(Path(identity_dir))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(ident.cert_file, ident.key_file)
    return ctx


TOKEN_CHECK_EVERY = 60.0


def keep_token_fresh(token_file: Path, identity_dir: Path, issuer: str, sub: str, lifetime: float):
    """A periodic callback re-minting the owner's token file; its errors are logged, never fatal."""
    from . import token_file as tf

    def check() -> None:
        try:
            if tf.refresh(token_file, identity_dir, issuer, sub, lifetime):
                logging.getLogger("afbox.issuer").info("renewed the token file %s", token_file)
        except Exception as e:  # noqa: BLE001 - the issuer keeps serving keys whatever happens here
            logging.getLogger("afbox.issuer").error("could not renew the token file %s: %s", token_file, e)

    check()
    return tornado.ioloop.PeriodicCallback(check, TOKEN_CHECK_EVERY * 1000)


def keep_cache_tokens_fresh(trust_file: Path, identity_dir: Path, issuer: str):
    """A periodic callback renewing this facility's cache tokens for other sites (afbox.sites)."""
    from ..sites.cache_token import refresh
    from .site_trust import SiteTrust
    trust = SiteTrust(trust_file)

    def check() -> None:
        try:
            refresh(trust.document(), identity_dir, issuer)
        except Exception as e:  # noqa: BLE001 - the issuer keeps serving keys whatever happens here
            logging.getLogger("afbox.issuer").error("could not renew the cache tokens: %s", e)

    check()
    return tornado.ioloop.PeriodicCallback(check, TOKEN_CHECK_EVERY * 1000)


async def serve(identity_dir: Path, issuer: str, port: int, host: str, token: dict | None = None,
                site: dict | None = None) -> None:
    service = None
    if site:
        from ..sites.routes import SiteService
        service = SiteService(identity_dir, issuer, site["descriptor"], site["trust"])
        keep_cache_tokens_fresh(site["trust"], identity_dir, issuer).start()
    server = make_app(identity_dir, issuer, service).listen(port, address=host, ssl_options=tls_context(identity_dir))
    if token:
        keep_token_fresh(identity_dir=identity_dir, issuer=issuer, **token).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"issuer {issuer} listening on https://{host}:{port}", flush=True)
    await stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m afbox.auth.issuer_app", description=__doc__.splitlines()[0])
    p.add_argument("--identity-dir", required=True, type=Path)
    p.add_argument("--issuer", required=True, help="the issuer URL written in tokens (https://host:port[/path])")
    p.add_argument("--port", type=int, help="default: the issuer URL's port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--token-file", type=Path, help="keep this owner's token file fresh (BEARER_TOKEN_FILE)")
    p.add_argument("--token-subject", default="", help="the token file's subject")
    p.add_argument("--token-lifetime", type=float, default=8 * 3600, help="seconds")
    p.add_argument("--site-descriptor", type=Path, help="serve this site descriptor (and token exchange) for federation")
    p.add_argument("--sites-trust", type=Path, help="the trust file of other sites (afbox.sites.trust)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    url = urlsplit(a.issuer)
    if url.scheme != "https":
        p.error("--issuer must be an https URL")
    try:
        token = (dict(token_file=a.token_file, sub=a.token_subject, lifetime=a.token_lifetime)
                 if a.token_file else None)
        site = dict(descriptor=a.site_descriptor, trust=a.sites_trust) if a.site_descriptor and a.sites_trust else None
        asyncio.run(serve(a.identity_dir, a.issuer, a.port or url.port or 443, a.host, token, site))
    except OSError as e:  # missing identity, port in use: one line for the service log
        sys.exit(f"afbox issuer: {e}")


if __name__ == "__main__":
    main()
