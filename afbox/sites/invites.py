"""Invites: a one-time code one site's admin hands to another's, like a k3s join token.

The code carries where the inviting site is, the fingerprint of its CA (so the other side pins it
without asking) and what it offers. What the invited site is granted is kept here, not trusted from
the code: when the inviting site trusts the invited one back (`afbox site add ... --invite CODE`,
the command the other side prints), the grants come from this store and the invite is used up.
"""
from __future__ import annotations

import base64
import json
import secrets
import time

from pydantic import ValidationError

from ..errors import AfboxError
from .model import Invite, InviteCode, check_scope
from .store import SiteStore

PREFIX = "afbox-invite-"
MAX_LIFETIME = 7 * 86400


def create(store: SiteStore, url: str, ca_sha256: str, grants: list[str], max_workers: int,
           lifetime: float, now: float | None = None) -> str:
    if not 0 < lifetime <= MAX_LIFETIME:
        raise AfboxError("an invite expires after at most 7 days", hint="e.g. --expires 1h")
    try:
        grants = [check_scope(g) for g in grants]
    except ValueError as e:
        raise AfboxError(str(e)) from None
    now = time.time() if now is None else now
    invite = Invite(id=secrets.token_urlsafe(9), grants=grants, max_workers=max_workers, created=now,
                    expires=now + lifetime)
    invites = {k: v for k, v in store.invites().items() if v.expires > now and not v.used_by}  # forget stale ones
    invites[invite.id] = invite
    store.save_invites(invites)
    return encode(InviteCode(url=url, ca_sha256=ca_sha256, id=invite.id, grants=grants, max_workers=max_workers,
                             expires=invite.expires))


def encode(code: InviteCode) -> str:
    raw = json.dumps(code.model_dump(), separators=(",", ":")).encode()
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(text: str) -> InviteCode:
    text = text.strip()
    if not text.startswith(PREFIX):
        raise AfboxError("that is not an afbox invite code", hint=f"codes start with {PREFIX}")
    body = text[len(PREFIX):]
    try:
        return InviteCode.model_validate_json(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, ValidationError):
        raise AfboxError("the invite code is damaged (copied only in part?)") from None


def check_fresh(code: InviteCode, now: float | None = None) -> None:
    now = time.time() if now is None else now
    if code.expires <= now:
        raise AfboxError(f"the invite expired {_ago(now - code.expires)} ago: refused",
                         hint="ask the other site for a new one: afbox site invite --expires 1h")


def consume(store: SiteStore, code: InviteCode, peer: str, now: float | None = None) -> Invite:
    """Our own invite, used up by `peer`; refused when unknown, expired or used already."""
    now = time.time() if now is None else now
    invites = store.invites()
    invite = invites.get(code.id)
    if invite is None:
        raise AfboxError("this invite was not made here (or was made before the state was reset)")
    if invite.used_by and invite.used_by != peer:
        raise AfboxError(f"this invite was used already by {invite.used_by}: an invite is for one site",
                         hint="make another: afbox site invite")
    if invite.expires <= now:
        raise AfboxError(f"the invite expired {_ago(now - invite.expires)} ago: refused",
                         hint="make another: afbox site invite")
    invites[code.id] = invite.model_copy(update={"used_by": peer})
    store.save_invites(invites)
    return invite


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
