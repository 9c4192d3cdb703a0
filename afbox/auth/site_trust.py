"""Other facilities (sites) this one trusts, as every token checker sees them.

`afbox site add` (afbox.sites.trust) writes the trust file; each service reads it again whenever it
changes, so trust given or taken back holds at once, without a restart. A site's tokens are checked
against the keys stored when it was added or refreshed (never fetched behind the admin's back: a key
rotation at the site is taken on `afbox site refresh`), and then against what it was granted here:

- the token lives at most `max_lifetime` (1 h: site tokens are short);
- the scope a door asks for must be one the site was granted (WLCG path semantics), and each token
  scope is cut down to the granted ones, so a site granted nothing is refused everywhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import jwt

from .validate import LEEWAY, TokenRejected, parse_jwks, scope_allows

SITE_TOKEN_LIFETIME = 3600  # the longest token another site may present here


@dataclass(frozen=True)
class SitePolicy:
    name: str
    issuer: str
    grants: tuple[str, ...] = ()
    max_lifetime: float = SITE_TOKEN_LIFETIME
    max_workers: int = 0
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)

    def key(self, kid: str) -> jwt.PyJWK:
        if kid not in self.keys:
            raise TokenRejected(f"unknown key id for site {self.name} (a rotated key is taken on "
                                f"`afbox site refresh {self.name}`)")
        return self.keys[kid]

    def check(self, claims: dict, scopes: tuple[str, ...], required: str | None) -> tuple[str, ...]:
        """The token's scopes this site was granted here; refuses a long-lived token, or one whose
        required scope was not granted."""
        lifetime = int(claims["exp"]) - int(claims["iat"])
        if lifetime > self.max_lifetime + LEEWAY:
            raise TokenRejected(f"token of site {self.name} lives {lifetime}s, longer than {int(self.max_lifetime)}s")
        granted = tuple(s for s in scopes if scope_allows(self.grants, s))
        if required and not scope_allows(granted, required):
            raise TokenRejected(f"site {self.name} was not granted {required}")
        return granted


class SiteTrust:
    """The trust file, read again when it changes (replaced by rename, so never seen half-written)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._loaded: tuple = (None, {}, {})

    def get(self, issuer: str) -> SitePolicy | None:
        return self.policies().get(issuer)

    def policies(self) -> dict[str, SitePolicy]:
        return self._load()[1]

    def document(self) -> dict:
        """The trust file as written (also what this facility was offered by each site)."""
        return self._load()[2]

    def _load(self) -> tuple:
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return (None, {}, {})
        if stamp != self._loaded[0]:
            doc = json.loads(self.path.read_text())
            self._loaded = (stamp, parse(doc), doc)
        return self._loaded


def parse(doc: dict) -> dict[str, SitePolicy]:
    out = {}
    for s in doc.get("sites", []):
        out[s["issuer"]] = SitePolicy(
            name=s["name"], issuer=s["issuer"], grants=tuple(s.get("grants", ())),
            max_lifetime=float(s.get("max_lifetime") or SITE_TOKEN_LIFETIME),
            max_workers=int(s.get("max_workers") or 0), keys=parse_jwks(s.get("jwks") or {}))
    return out
