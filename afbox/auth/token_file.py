"""The facility owner's token file (BEARER_TOKEN_FILE for kernels and workers), kept fresh.

Re-minted when less than half its lifetime is left, so a reader never meets an expired token while
the facility runs; written by rename so a reader never sees half a file.
"""
from __future__ import annotations

import time
from pathlib import Path

import jwt

from ..state import replace_private
from .identity import load
from .tokens import COMPUTE, JUPYTER, mint, storage_read

SCOPE = f"{COMPUTE} {JUPYTER} {storage_read('/')}"


def write(path: Path, identity_dir: Path, issuer: str, sub: str, lifetime: float, scope: str = SCOPE) -> None:
    replace_private(path, mint(load(identity_dir), issuer, sub, scope, issuer, lifetime=lifetime) + "\n")


def stale(path: Path, lifetime: float, issuer: str, now: float | None = None) -> bool:
    """Missing, unreadable, from another issuer, or past half its life."""
    try:
        claims = jwt.decode(path.read_text().strip(), options={"verify_signature": False})
    except (OSError, jwt.PyJWTError):
        return True
    now = time.time() if now is None else now
    return claims.get("iss") != issuer or claims.get("exp", 0) - now < lifetime / 2


def refresh(path: Path, identity_dir: Path, issuer: str, sub: str, lifetime: float) -> bool:
    if not stale(path, lifetime, issuer):
        return False
    write(path, identity_dir, issuer, sub, lifetime)
    return True
