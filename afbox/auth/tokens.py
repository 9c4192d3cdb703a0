"""Minting WLCG-profile tokens with the facility key, and reading one without verifying it.

Scopes used by the facility's services (space-separated in the `scope` claim):
  compute.create         start work on the Dask cluster (gateway)
  storage.read:/path     read /path and everything under it through the XCache
  jupyter.access         use the facility's JupyterLab / JupyterHub
"""
from __future__ import annotations

import time
import uuid

import jwt

from .identity import Identity

COMPUTE = "compute.create"
JUPYTER = "jupyter.access"
WLCG_VERSION = "1.0"
SITE_LIFETIME = 3600  # tokens for another site live at most this long (it refuses longer ones)


def storage_read(path: str = "/") -> str:
    return f"storage.read:{path}"


def mint(identity: Identity, issuer: str, sub: str, scope: str, audience: str | list[str],
         lifetime: float = 8 * 3600, now: float | None = None) -> str:
    if not scope.strip() or not sub or not audience:
        raise ValueError("a token needs a subject, a scope and an audience")
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    now = int(time.time() if now is None else now)
    claims = {
        "wlcg.ver": WLCG_VERSION, "iss": issuer, "sub": sub,
        "aud": audience if isinstance(audience, str) else list(audience),
        "scope": " ".join(scope.split()), "iat": now, "nbf": now, "exp": now + int(lifetime),
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, identity.signing_key, algorithm="ES256", headers={"kid": identity.kid, "typ": "JWT"})


def narrow(requested, offered) -> list[str]:
    """The requested scopes another site offered: each one the offer covers, and for one wider than
    the offer (storage.read:/ where storage.read:/store/public is offered) the offered ones under it."""
    from .validate import scope_allows
    out: list[str] = []
    for r in requested:
        out += [r] if scope_allows(offered, r) else [o for o in offered if scope_allows([r], o)]
    return list(dict.fromkeys(out))


def mint_for_site(identity: Identity, issuer: str, sub: str, audience: str, requested, offered,
                  lifetime: float = SITE_LIFETIME, now: float | None = None) -> str:
    """A token for another site: its audience, the requested scopes cut to what it offered, at most 1 h."""
    scopes = narrow(requested, offered)
    if not scopes:
        raise ValueError(f"{audience} offers none of {' '.join(requested)} (it offers: {' '.join(offered) or 'nothing'})")
    return mint(identity, issuer, sub, " ".join(scopes), audience, lifetime=min(lifetime, SITE_LIFETIME), now=now)


def inspect(token: str, now: float | None = None) -> dict:
    """Header and claims as written in the token; NOT verified (for `afbox token --inspect`)."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise ValueError("not a JWT") from None
    now = time.time() if now is None else now
    exp = claims.get("exp")
    return {"header": header, "claims": claims, "issuer": claims.get("iss"), "verified": False,
            "expired": exp is None or exp <= now, "expires_in": None if exp is None else exp - now}
