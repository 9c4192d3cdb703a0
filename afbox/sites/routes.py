"""What the issuer serves for federation.

GET  <issuer>/.well-known/afbox-site   the site descriptor (public, like openid-configuration); a
                                       trusted site asking with its token also learns its grants here
POST <issuer>/token                    RFC 8693 token exchange: a token of this facility in, a token
                                       for a trusted site out (that site's audience, scopes cut to what
                                       it offered, at most 1 h and never past the token given)
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import tornado.web

from ..auth.identity import load
from ..auth.site_trust import SITE_TOKEN_LIFETIME, SiteTrust
from ..auth.tokens import mint_for_site
from ..auth.validate import LocalJwks, TokenRejected, Validator, bearer
from .descriptor import WELL_KNOWN, fingerprint
from .model import tokenable

log = logging.getLogger("afbox.sites")
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
STATS_EVERY = 30.0  # seconds between walks of the cache dir for the fill figure


class SiteService:
    def __init__(self, identity_dir: Path, issuer: str, descriptor_file: Path, trust_file: Path):
        self.identity_dir, self.issuer = Path(identity_dir), issuer
        base = json.loads(Path(descriptor_file).read_text())
        self.local = base.pop("_local", {})
        self.ca_pem = (self.identity_dir / "ca.pem").read_text()
        self.base = {**base, "ca_pem": self.ca_pem, "ca_sha256": fingerprint(self.ca_pem)}
        self.trust = SiteTrust(trust_file)
        self.peers = Validator({}, audience=issuer, sites=self.trust)
        self.own = Validator({issuer: LocalJwks(self.identity_dir)}, audience=issuer)
        self._fill: tuple[float, float | None] = (-STATS_EVERY, None)

    def descriptor(self, authorization: str | None) -> dict:
        doc = dict(self.base)
        caches = {s["name"]: s["cache"]["url"] for s in self.trust.document().get("sites", []) if s.get("cache")}
        doc["caches"] = caches
        doc["resources"] = {**doc.get("resources", {}), "cache_fill": self.cache_fill()}
        if token := bearer(authorization):
            try:
                claims = self.peers.validate(token)
                doc["granted"] = list(self.trust.get(claims.issuer).grants)
            except TokenRejected as e:
                log.warning("a descriptor request carried a token that is not accepted: %s", e.reason)
        return doc

    def cache_fill(self) -> float | None:
        when, fill = self._fill
        if time.monotonic() - when >= STATS_EVERY and self.local.get("cache_dir"):
            from ..cache import stats
            fill = stats(Path(self.local["cache_dir"]), int(self.local.get("cache_size") or 0))["fill"]
            self._fill = (time.monotonic(), fill)
        return fill

    def exchange(self, form: dict[str, str]) -> dict:
        """RFC 8693: returns the response body, or raises ExchangeRefused(error, description)."""
        if form.get("grant_type") != EXCHANGE:
            raise ExchangeRefused("unsupported_grant_type", "only token exchange is offered here")
        try:
            claims = self.own.validate(form.get("subject_token"))
        except TokenRejected as e:
            raise ExchangeRefused("invalid_grant", f"subject token refused: {e.reason}") from None
        audience = form.get("audience", "")
        site = next((s for s in self.trust.document().get("sites", []) if audience in (s["audience"], s["issuer"])),
                    None)
        if site is None:
            raise ExchangeRefused("invalid_target", f"{audience or 'no audience'} is not a site trusted here")
        requested = form.get("scope", "").split() or list(claims.scopes)
        lifetime = min(SITE_TOKEN_LIFETIME, claims.expires - time.time())
        try:
            token = mint_for_site(load(self.identity_dir), self.issuer, claims.subject, site["audience"], requested,
                                  tokenable(site.get("offered", []), site.get("grants", [])), lifetime=lifetime)
        except ValueError as e:
            raise ExchangeRefused("invalid_scope", str(e)) from None
        log.info("exchanged a token of %s for site %s", claims.subject, site["name"])
        return {"access_token": token, "issued_token_type": ACCESS_TOKEN, "token_type": "Bearer",
                "expires_in": int(lifetime)}


class ExchangeRefused(Exception):
    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error, self.description = error, description


class DescriptorHandler(tornado.web.RequestHandler):
    def initialize(self, service: SiteService):
        self.service = service

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self.service.descriptor(self.request.headers.get("Authorization"))))


class ExchangeHandler(tornado.web.RequestHandler):
    def initialize(self, service: SiteService):
        self.service = service

    def post(self):
        form = {k: self.get_body_argument(k, "") for k in ("grant_type", "subject_token", "audience", "scope")}
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        try:
            body = self.service.exchange(form)
        except ExchangeRefused as e:
            log.warning("refused a token exchange from %s: %s", self.request.remote_ip, e.description)
            self.set_status(400)
            body = {"error": e.error, "error_description": e.description}
        self.finish(json.dumps(body))


def routes(prefix: str, service: SiteService) -> list:
    return [(prefix + WELL_KNOWN, DescriptorHandler, {"service": service}),
            (prefix + "/token", ExchangeHandler, {"service": service})]
