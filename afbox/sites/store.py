"""Where a facility keeps the sites it trusts and its invites: <state>/sites/ (0700), each file 0600.

Kept across `down`/`up` like the facility's identity; only `afbox site remove` deletes a site.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from ..errors import AfboxError
from ..state import FacilityState, replace_private
from .model import NAME, Invite, Site

CACHE_SLOTS = 10  # caches kept here for peers' data (ports.PEER_CACHE_FIRST onwards)


class SiteStore:
    def __init__(self, state: FacilityState):
        self.state = state
        self.dir = state.dir / "sites"

    @property
    def trust_file(self) -> Path:
        """What every token checker reads (written by afbox.sites.trust only)."""
        return self.dir / "trust.json"

    @property
    def invites_file(self) -> Path:
        return self.dir / "invites.json"

    def ensure(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    def path(self, name: str) -> Path:
        if not NAME.match(name):
            raise AfboxError(f"{name!r} is not a site name", hint="site names are facility names: a-z, 0-9, -")
        return self.dir / f"{name}.json"

    def sites(self) -> list[Site]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in sorted(self.dir.glob("*.json")):
            if p.stem in ("trust", "invites"):
                continue
            try:
                out.append(Site.model_validate_json(p.read_text()))
            except (OSError, ValidationError) as e:
                raise AfboxError(f"{p}: not a site record ({type(e).__name__})",
                                 hint=f"remove it with: afbox site remove {p.stem}") from None
        return out

    def get(self, name: str) -> Site | None:
        p = self.path(name)
        return Site.model_validate_json(p.read_text()) if p.exists() else None

    def require(self, name: str) -> Site:
        site = self.get(name)
        if site is None:
            known = ", ".join(s.name for s in self.sites()) or "none"
            raise AfboxError(f"no site {name!r} is trusted here (sites: {known})",
                             hint="add one with: afbox site add https://HOST:PORT --invite CODE")
        return site

    def save(self, site: Site) -> None:
        self.ensure()
        write_private(self.path(site.name), site.model_dump_json(indent=1))

    def remove(self, name: str) -> bool:
        p = self.path(name)
        if not p.exists():
            return False
        p.unlink()
        return True

    def free_cache_slot(self, exclude: str = "") -> int:
        taken = {s.cache_index for s in self.sites() if s.name != exclude}
        free = [i for i in range(CACHE_SLOTS) if i not in taken]
        if not free:
            raise AfboxError(f"this facility already keeps caches for {CACHE_SLOTS} sites",
                             hint="remove a site first: afbox site remove NAME")
        return free[0]

    def invites(self) -> dict[str, Invite]:
        if not self.invites_file.exists():
            return {}
        return {k: Invite.model_validate(v) for k, v in json.loads(self.invites_file.read_text()).items()}

    def save_invites(self, invites: dict[str, Invite]) -> None:
        self.ensure()
        write_private(self.invites_file, json.dumps({k: v.model_dump() for k, v in invites.items()}, indent=1))


def write_private(path: Path, text: str) -> None:
    replace_private(path, text)
