"""This facility's cache tokens: what its cache for a peer's data presents to that peer's XCache.

Minted by this facility's issuer for the peer's audience with exactly the paths the peer offered,
lasting at most an hour (the peer refuses longer ones), renewed when half of that is gone. Written
where the cache's xrootd (its own user, when afbox runs as root) reads it as BEARER_TOKEN_FILE.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..auth import token_file
from ..auth.identity import load
from ..auth.site_trust import SITE_TOKEN_LIFETIME
from ..auth.tokens import mint
from ..state import replace_private

log = logging.getLogger("afbox.sites")
SUBJECT = "xcache"


def refresh(doc: dict, identity_dir: Path, issuer: str) -> list[Path]:
    """Renew each stale cache token of the trust document; returns the files written."""
    written = []
    identity = None
    for site in doc.get("sites", []):
        cache = site.get("cache")
        if not cache:
            continue
        path = Path(cache["token_file"])
        if not token_file.stale(path, SITE_TOKEN_LIFETIME, issuer) and _scope(path) == cache["scope"]:
            continue
        identity = identity or load(identity_dir)
        token = mint(identity, issuer, SUBJECT, cache["scope"], site["audience"], lifetime=SITE_TOKEN_LIFETIME)
        _write(path, token, cache.get("owner"))
        written.append(path)
        log.info("renewed the cache token for site %s", site["name"])
    return written


def _scope(path: Path) -> str | None:
    import jwt
    try:
        return jwt.decode(path.read_text().strip(), options={"verify_signature": False}).get("scope")
    except (OSError, jwt.PyJWTError):
        return None


def _write(path: Path, token: str, owner) -> None:
    replace_private(path, token + "\n", owner)
