"""The one place trust in other sites is written into every checker.

From the sites this facility trusts (afbox.sites.store) it makes:
- the trust file every Python checker reads (Jupyter, the gateway, the Dask dashboards; see
  afbox.auth.site_trust): each site's issuer, stored keys, grants and gateway limit;
- the XCache's SciTokens sections: a site's issuer opens only the paths it was granted (none: no
  section, so nothing), and its keys in the plugin's key cache;
- for each site whose data is cached here, what that cache needs: the paths it offered, its CA to
  verify it, and this facility's short-lived cache token for it (aud = the site, scope = what it
  offered), renewed by the issuer (afbox.sites.cache_token).
`apply` (afbox.lifecycle.sites) rewrites them on a running facility; services read the trust file
again when it changes, the xrootd servers are restarted with their new sections.
"""
from __future__ import annotations

import hashlib
import json
import os
import pwd
from pathlib import Path

from ..auth.site_trust import SITE_TOKEN_LIFETIME
from ..auth.xrootd import hashed_ca_dir, restricted_sections
from ..ports import PEER_CACHE_FIRST
from .model import Site
from .store import SiteStore, write_private


def section(site: Site) -> str:
    return f"site-{site.name}"


def xcache_sections(sites) -> str:
    """SciTokens sections of the facility's XCache: each site's tokens open only its granted paths."""
    return restricted_sections({section(s): (s.url, s.granted_paths) for s in sites})


def stored_keys(sites) -> dict[str, dict]:
    return {s.url: s.jwks for s in sites}


def digest(sites) -> str:
    """Changes whenever what an xrootd server checks changes: its spec changes with it, so an update
    restarts it (libXrdAccSciTokens reads its sections only at start and once a minute)."""
    what = [(s.name, s.url, s.grants, s.offered, s.jwks, s.cache_index) for s in sites]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


# -- caches kept here for peers' data --------------------------------------------------------------
def cached_sites(sites) -> list[Site]:
    """Sites whose data this facility caches: they offered it paths, and serve data."""
    return [s for s in sites if s.cache_index >= 0 and s.offered_paths and s.descriptor.xrootd]


def cache_port(base: int, site: Site) -> int:
    return base + PEER_CACHE_FIRST + site.cache_index


def cache_dir(xrootd_dir: Path, site: Site) -> Path:
    """The peer cache's config, token and the site's CA (for its TLS) live here."""
    return Path(xrootd_dir) / section(site)


def cache_token_file(xrootd_dir: Path, site: Site) -> Path:
    return cache_dir(xrootd_dir, site) / "cache.token"


def cache_ca_dir(xrootd_dir: Path, site: Site) -> Path:
    return cache_dir(xrootd_dir, site) / "site-ca"


def cache_scope(site: Site) -> str:
    return " ".join(f"storage.read:{p}" for p in site.offered_paths)


# -- writing --------------------------------------------------------------------------------------
def trust_doc(ctx) -> dict:
    owner = _xrootd_owner(ctx)
    out = []
    for s in ctx.sites:
        entry = {"name": s.name, "issuer": s.url, "audience": s.audience, "grants": s.grants, "offered": s.offered,
                 "max_workers": s.max_workers, "max_lifetime": SITE_TOKEN_LIFETIME, "jwks": s.jwks}
        if s in cached_sites(ctx.sites):
            entry["cache"] = {"token_file": str(cache_token_file(ctx.xrootd_dir, s)), "scope": cache_scope(s),
                              "url": f"root://{ctx.public_host}:{cache_port(ctx.base, s)}", "owner": owner}
        out.append(entry)
    return {"version": 1, "sites": out}


def write(ctx) -> Path:
    """The trust file, and what each peer cache needs before it starts (its token, the site's CA)."""
    from .cache_token import refresh
    store = SiteStore(ctx.state)
    store.ensure()
    doc = trust_doc(ctx)
    write_private(store.trust_file, json.dumps(doc, indent=1))
    for s in cached_sites(ctx.sites):
        d = cache_dir(ctx.xrootd_dir, s)
        d.mkdir(parents=True, exist_ok=True)
        ca = d / "site-ca.pem"
        ca.write_text(s.ca_pem)
        hashed_ca_dir(ca, cache_ca_dir(ctx.xrootd_dir, s))
        owner = _xrootd_owner(ctx)
        for p in (d, cache_ca_dir(ctx.xrootd_dir, s), *cache_ca_dir(ctx.xrootd_dir, s).iterdir()):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)  # CA certificates are public
            if owner:
                os.chown(p, *owner)
    refresh(doc, ctx.identity_dir, issuer_of(ctx))
    return store.trust_file


def issuer_of(ctx) -> str:
    from .descriptor import issuer_url
    return issuer_url(ctx)


def _xrootd_owner(ctx) -> list[int] | None:
    if not ctx.xrootd_user:
        return None
    pw = pwd.getpwnam(ctx.xrootd_user)
    return [pw.pw_uid, pw.pw_gid]
