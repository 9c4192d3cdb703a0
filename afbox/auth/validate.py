"""The one token validator every afbox service uses (xrootd uses its own plugin: see .xrootd).

A token is accepted only if its alg is on the allow-list, its issuer is trusted, its `kid` names a
key in that issuer's JWKS and the signature verifies with that key, `aud` is ours, exp/nbf/iat
hold (within LEEWAY), and its scope grants the required one.  Every refusal raises TokenRejected
with a short reason for a log line; the token itself is never part of it.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import posixpath
import re
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import jwt

from .identity import PUBLIC_KEYS, Identity

log = logging.getLogger("afbox.auth")

ALGORITHMS = ("ES256", "RS256")  # asymmetric only: HS* would let a public key act as a secret
LEEWAY = 30  # seconds of clock skew between hosts
MAX_TOKEN_BYTES = 16384
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat"]
# WLCG profile: "any relying party". A token for everyone is refused: it would work at every site.
ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"


class TokenRejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    issuer: str
    subject: str
    audience: tuple[str, ...]
    scopes: tuple[str, ...]
    expires: int
    token_id: str | None
    raw: dict
    site: str | None = None     # the trusted site that issued it (afbox.auth.site_trust), if any

    @property
    def user(self) -> str:
        """The local name of its holder: a remote site's subject becomes `<site>-<sub>`."""
        return f"{self.site}-{self.subject}" if self.site else self.subject


class JwksSource(Protocol):
    def key(self, kid: str) -> jwt.PyJWK:
        """The verification key with this id; raises TokenRejected when there is none."""


def parse_jwks(jwks: dict) -> dict[str, jwt.PyJWK]:
    """Signing keys by kid; keys of other types or algorithms are skipped, not fatal."""
    out = {}
    for k in jwks.get("keys", []) if isinstance(jwks, dict) else []:
        if not isinstance(k, dict) or not isinstance(k.get("kid"), str) or k.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(k)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        if key.algorithm_name in ALGORITHMS:
            out[k["kid"]] = key
    return out


class LocalJwks:
    """This facility's own public keys (identity/public-keys.json, or the identity dir holding it),
    read again whenever a rotation replaces them."""

    def __init__(self, identity: Identity | Path):
        path = identity.dir if isinstance(identity, Identity) else Path(identity)
        self.file = path / PUBLIC_KEYS if path.is_dir() or not path.suffix else path
        self._loaded: tuple = (None, {}, {})  # (stamp, keys, until): replaced whole, so threads see one

    def key(self, kid: str) -> jwt.PyJWK:
        try:
            st = self.file.stat()
            current = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            raise TokenRejected("the facility's public keys are missing") from None
        if current != self._loaded[0]:
            entries = json.loads(self.file.read_text())
            until = {e["jwk"]["kid"]: math.inf if e["until"] is None else e["until"] for e in entries}
            self._loaded = (current, parse_jwks({"keys": [e["jwk"] for e in entries]}), until)
        _, keys, until = self._loaded
        if kid not in keys or until.get(kid, 0) <= time.time():
            raise TokenRejected("unknown key id")
        return keys[kid]


class RemoteJwks:
    """An issuer's keys via `<issuer>/.well-known/openid-configuration` -> `jwks_uri`, cached for
    `ttl` s.  An unknown kid refetches at most once per `min_refetch` s, so a stream of forged
    kids cannot hammer the issuer; if a refetch fails the cached keys stay in use."""

    def __init__(self, issuer: str, ca_file: str | Path | Iterable[str | Path] | None = None, ttl: float = 600,
                 min_refetch: float = 30, timeout: float = 5):
        if not issuer.startswith("https://"):
            raise ValueError(f"issuer must be an https URL: {issuer}")
        self.issuer, self.ttl, self.min_refetch, self.timeout = issuer, ttl, min_refetch, timeout
        self._verify = trust_context(ca_file)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._expires = -math.inf
        self._last_fetch = -math.inf
        self._error = ""
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = time.monotonic()
            if now >= self._expires or (kid not in self._keys and now - self._last_fetch >= self.min_refetch):
                self._refresh(now)
            if kid in self._keys:
                return self._keys[kid]
        raise TokenRejected(f"keys of issuer unavailable ({self._error})" if not self._keys else "unknown key id")

    def _refresh(self, now: float) -> None:
        self._last_fetch = now
        try:
            keys = self.fetch()
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            self._error = type(e).__name__
            self._expires = now + self.min_refetch
            log.warning("fetching the JWKS of %s failed: %s: %s", self.issuer, type(e).__name__, e)
            return
        self._keys, self._expires, self._error = keys, now + self.ttl, ""

    def fetch(self) -> dict[str, jwt.PyJWK]:
        return parse_jwks(self.fetch_jwks())

    def fetch_jwks(self) -> dict:
        """The issuer's JWKS document as published, found through its discovery document."""
        with httpx.Client(verify=self._verify, timeout=self.timeout) as client:
            doc = client.get(self.issuer.rstrip("/") + "/.well-known/openid-configuration").raise_for_status().json()
            if doc.get("issuer") != self.issuer:
                raise ValueError(f"discovery document names issuer {doc.get('issuer')!r}")
            if not str(doc["jwks_uri"]).startswith("https://"):
                raise ValueError("jwks_uri is not https")
            return client.get(doc["jwks_uri"]).raise_for_status().json()


def trust_context(ca_files: str | Path | Iterable[str | Path] | None) -> ssl.SSLContext:
    """The system's CAs (public OIDC issuers such as CILogon) plus the given ones (facility CAs)."""
    ctx = ssl.create_default_context()
    for f in [ca_files] if isinstance(ca_files, (str, Path)) else ca_files or ():
        ctx.load_verify_locations(cafile=str(f))
    return ctx


class Validator:
    def __init__(self, trusted: Mapping[str, JwksSource | None], audience: str | Iterable[str],
                 ca_file: str | Path | Iterable[str | Path] | None = None, sites=None):
        self.audience = [audience] if isinstance(audience, str) else sorted(audience)
        self.ca_file = ca_file
        self.sites = sites  # other facilities trusted with what they were granted (auth.site_trust.SiteTrust)
        self.trusted: dict[str, JwksSource] = {}
        for issuer, source in trusted.items():
            self.trust(issuer, source)

    def trust(self, issuer: str, source: JwksSource | None = None) -> None:
        """Accept tokens of `issuer`, verified with `source` (default: its JWKS over https)."""
        self.trusted[issuer] = source or RemoteJwks(issuer, self.ca_file)

    def validate(self, token: str | None, required_scope: str | None = None) -> Claims:
        """The claims of a token valid here (granting `required_scope` if given), or TokenRejected."""
        if not token:
            raise TokenRejected("no token")
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected("token too large")
        header, payload = _peek(token)
        iss = payload.get("iss")
        if header.get("alg") not in ALGORITHMS:
            raise TokenRejected(f"algorithm {_short(header.get('alg'))} not allowed")
        if not isinstance(header.get("kid"), str):
            raise TokenRejected("token has no key id")
        _refuse_any_audience(payload.get("aud"))
        source = self.trusted.get(iss) if isinstance(iss, str) else None
        site = self.sites.get(iss) if source is None and self.sites is not None and isinstance(iss, str) else None
        source = source or site
        if source is None:
            raise TokenRejected(f"untrusted issuer {_short(iss)}")
        key = source.key(header["kid"])
        try:
            claims = jwt.decode(token, key, algorithms=[header["alg"]], audience=self.audience, issuer=iss,
                                leeway=LEEWAY, options={"require": REQUIRED_CLAIMS})
        except jwt.PyJWTError as e:
            raise TokenRejected(_reason(e)) from None
        scopes = tuple(str(claims.get("scope", "")).split())
        if required_scope and not scope_allows(scopes, required_scope):
            raise TokenRejected(f"scope does not grant {_short(required_scope)}")
        if site is not None:
            scopes = site.check(claims, scopes, required_scope)
        aud = claims["aud"]
        return Claims(iss, str(claims["sub"]), (aud,) if isinstance(aud, str) else tuple(aud), scopes,
                      int(claims["exp"]), claims.get("jti"), claims, site=site.name if site else None)


def bearer(authorization: str | None) -> str | None:
    """The token in an `Authorization: Bearer <token>` header value, or None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def scope_allows(scopes: Iterable[str], required: str) -> bool:
    """WLCG semantics: `storage.read:/a` grants /a and /a/b but not /ab; scopes without a path
    grant only the same scope without a path."""
    name, path = _split(required)
    for s in scopes:
        n, p = _split(s)
        if n == name and (p is None) == (path is None) and (p is None or p == "/" or path == p
                                                              or path.startswith(p + "/")):
            return True
    return False


def _refuse_any_audience(aud) -> None:
    if aud == ANY_AUDIENCE or (isinstance(aud, list) and ANY_AUDIENCE in aud):
        raise TokenRejected("the WLCG any-audience is not accepted: ask for a token for this site")


def _peek(token: str) -> tuple[dict, dict]:
    """Header and claims, unverified: only to pick the issuer and key; PyJWT then verifies."""
    segments = token.split(".")
    try:
        parts = [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in segments[:2]]
    except (ValueError, RecursionError):
        raise TokenRejected("malformed token") from None
    if len(segments) != 3 or not all(isinstance(p, dict) for p in parts):
        raise TokenRejected("malformed token")
    return parts[0], parts[1]


def _split(scope: str) -> tuple[str, str | None]:
    name, sep, path = scope.partition(":")
    return name, posixpath.normpath(re.sub("/+", "/", "/" + path)) if sep else None


_REASONS = [(jwt.ExpiredSignatureError, "token expired"), (jwt.ImmatureSignatureError, "token not yet valid"),
            (jwt.InvalidAudienceError, "wrong audience"), (jwt.InvalidIssuerError, "wrong issuer"),
            (jwt.InvalidSignatureError, "bad signature"), (jwt.InvalidAlgorithmError, "algorithm does not match key"),
            (jwt.DecodeError, "malformed token")]


def _reason(e: jwt.PyJWTError) -> str:
    if isinstance(e, jwt.MissingRequiredClaimError):
        return f"missing claim {e.claim}"
    return next((r for t, r in _REASONS if isinstance(e, t)), "invalid token")


def _short(value) -> str:
    """Attacker-chosen header/claim values, cut to log size."""
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."
