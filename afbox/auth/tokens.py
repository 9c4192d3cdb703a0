"""Minting WLCG-profile tokens with the facility key, and reading one: its claims and what a facility
makes of it.

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
from .validate import ALGORITHMS, TokenRejected, Validator

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


def inspect(token: str, now: float | None = None, validator: Validator | None = None, where: str = "") -> dict:
    """Header and claims as written in the token, and what was checked (for `afbox token --inspect`).

    With a validator (a facility's: its own keys and its trusted issuers, `where` names it) the signature
    is verified and the claims checked as that facility's services would; without one nothing is."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise ValueError("not a JWT") from None
    now = time.time() if now is None else now
    exp = claims.get("exp")
    alg = header.get("alg")
    warnings = []
    if str(alg).lower() == "none":
        warnings.append("alg 'none': this token is not signed at all; anyone can write one, and no afbox "
                        "service accepts it")
    elif alg not in ALGORITHMS:
        warnings.append(f"alg {alg!r}: afbox accepts only {' and '.join(ALGORITHMS)} signatures")
    out = {"header": header, "claims": claims, "issuer": claims.get("iss"), "warnings": warnings,
           "expired": exp is None or exp <= now, "expires_in": None if exp is None else exp - now}
    if validator is None:
        return out | {"verified": None, "accepted": None,
                      "checked": "nothing: no running facility with auth to check it against"}
    signature = _signature(token, header, claims, validator)
    try:
        validator.validate(token)
        accepted, reason = True, None
    except TokenRejected as e:
        accepted, reason = False, e.reason
    trusted = [i for i in validator.trusted]
    return out | {"verified": signature.startswith("valid"), "signature": signature, "accepted": accepted,
                  "reason": reason,
                  "checked": f"signature, issuer, audience ({', '.join(validator.audience)}), expiry and "
                             f"not-before, as {where or 'the facility'} checks them; trusted issuers: "
                             + ", ".join(trusted)}


def _signature(token: str, header: dict, claims: dict, validator: Validator) -> str:
    """The signature alone: valid with which key of which issuer, invalid, or why it was not checked."""
    alg, kid, iss = header.get("alg"), header.get("kid"), claims.get("iss")
    if alg not in ALGORITHMS:
        return f"not checked: alg {str(alg)[:20]!r} is never accepted"
    source = validator.trusted.get(iss) if isinstance(iss, str) else None
    if source is None:
        return f"not checked: issuer {str(iss)[:80]!r} is not trusted here"
    if not isinstance(kid, str):
        return "not checked: the token names no key (kid)"
    try:
        key = source.key(kid)
        jwt.decode(token, key, algorithms=[alg], options={
            "verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False, "verify_iss": False})
    except TokenRejected as e:
        return f"not checked: {e.reason}"
    except jwt.InvalidSignatureError:
        return f"INVALID: does not match key {kid} of {iss}"
    except jwt.PyJWTError as e:
        return f"not checked: {type(e).__name__}"
    return f"valid: key {kid} of {iss}"
