"""What `afbox site ...` does: invite, add (with the handshake's checks), refresh, remove, tokens.

Trust is explicit and per direction. `add` makes this facility trust a site: its tokens are then
accepted here for what `grants` says (nothing by default); what that site grants this facility is
learnt from the site itself once it trusts us back (else from its invite). The command to trust us
back is printed for the other side; running it there with the same invite gives our site what the
invite promised, once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import events as ev, record
from ..auth.identity import load
from ..auth.tokens import mint, mint_for_site
from ..errors import AfboxError
from ..record import FacilityRecord
from ..state import FacilityState, resolve_name
from . import descriptor, invites
from .model import Site, check_scope, tokenable
from .store import SiteStore

ASK_SCOPE = "compute.read"  # the token with which we ask a site what it granted us carries nothing useful


@dataclass
class Local:
    """This facility as other sites see it."""
    name: str
    rec: FacilityRecord
    store: SiteStore

    @property
    def url(self) -> str:
        return self.rec.auth.issuer

    @property
    def identity_dir(self) -> Path:
        return Path(self.rec.auth.identity_dir)

    @property
    def ca_sha256(self) -> str:
        return descriptor.fingerprint((self.identity_dir / "ca.pem").read_text())


@dataclass
class Added:
    site: Site
    reverse: str = ""                      # the command the other site runs to trust us back
    events: list[ev.Event] = field(default_factory=list)


def local(name: str | None) -> Local:
    state = FacilityState(resolve_name(name))
    rec = record.read(state)
    if not rec or not rec.auth:
        raise AfboxError(f"facility {state.name!r} is not running with auth", hint="start it with: afbox up")
    if not rec.spec.facility.public_host:
        raise AfboxError(f"facility {state.name!r} has no public host, so no other site can reach it",
                         hint='set [facility] public_host = "NAME-OTHERS-REACH" in your facility file, then afbox up')
    return Local(state.name, rec, SiteStore(state))


def invite(name: str | None, grants: list[str], max_workers: int, lifetime: float) -> str:
    me = local(name)
    return invites.create(me.store, me.url, me.ca_sha256, grants, max_workers, lifetime)


def add(name: str | None, url: str, code: str | None = None, pin: str | None = None, grants=(),
        max_workers: int | None = None, confirm: Callable[[str], bool] | None = None) -> Added:
    me = local(name)
    url = descriptor.check_url(url)
    if url == me.url:
        raise AfboxError("that is this facility's own address")
    try:
        grants = [check_scope(g) for g in grants]
    except ValueError as e:
        raise AfboxError(str(e)) from None
    inv = invites.decode(code) if code else None
    ours = inv is not None and inv.url == me.url   # we invited them: they ran `add` with our invite first
    if inv and not ours:
        invites.check_fresh(inv)
        if inv.url != url:
            raise AfboxError(f"the invite is for {inv.url}, not {url}")
        if pin and descriptor.normal_fingerprint(pin) != inv.ca_sha256:
            raise AfboxError("--fingerprint and the invite name different CAs: refused")
        pin = inv.ca_sha256
    ca_pem = None
    if not pin:
        if confirm is None:
            raise AfboxError(f"nothing to check {url}'s CA against", hint="pass --invite CODE or --fingerprint SHA256:...")
        doc, _, ca_pem = descriptor.fetch(url, pin=None)
        if not confirm(descriptor.fingerprint(ca_pem)):
            raise AfboxError("not trusted: the fingerprint was not confirmed")
        pin = descriptor.fingerprint(ca_pem)
    doc, jwks, ca_pem = descriptor.fetch(url, pin=pin, ca_pem=ca_pem)
    if doc.site_id == me.name:
        raise AfboxError(f"{url} is a facility named {doc.site_id!r} too: site names must differ",
                         hint="rename one of them ([facility] name)")
    existing = me.store.get(doc.site_id)
    if existing and existing.url != url:
        raise AfboxError(f"a site named {doc.site_id!r} is trusted already at {existing.url}",
                         hint=f"remove it first: afbox site remove {doc.site_id}")
    if ours:
        promised = invites.consume(me.store, inv, doc.site_id)
        grants, max_workers = list(dict.fromkeys([*promised.grants, *grants])), max_workers or promised.max_workers
    offered = _granted_to_us(me, url, doc, ca_pem)
    if offered is None:
        offered = inv.grants if inv and not ours else existing.offered if existing else []
    now = time.time()
    site = Site(name=doc.site_id, url=url, ca_sha256=descriptor.fingerprint(ca_pem), ca_pem=ca_pem, descriptor=doc,
                jwks=jwks, fetched_at=now, added_at=existing.added_at if existing else now, grants=grants,
                max_workers=max_workers if max_workers is not None else existing.max_workers if existing else 0,
                offered=offered, invite=inv.id if ours else "")
    site = site.model_copy(update={"cache_index": _cache_slot(me.store, site, existing)})
    me.store.save(site)
    return Added(site, "" if ours else reverse_command(me, code), _apply(me))


def refresh(name: str | None, site_name: str) -> Added:
    """Fetch the site's descriptor and keys again (its CA must be the one pinned): a key it rotated,
    what it grants us now."""
    me = local(name)
    old = me.store.require(site_name)
    doc, jwks, ca_pem = descriptor.fetch(old.url, pin=old.ca_sha256, ca_pem=old.ca_pem)
    offered = _granted_to_us(me, old.url, doc, ca_pem)
    site = old.model_copy(update={"descriptor": doc, "jwks": jwks, "fetched_at": time.time(),
                                  "offered": old.offered if offered is None else offered})
    site = site.model_copy(update={"cache_index": _cache_slot(me.store, site, old)})
    me.store.save(site)
    return Added(site, events=_apply(me))


def remove(name: str | None, site_name: str) -> list[ev.Event]:
    state = FacilityState(resolve_name(name))
    store = SiteStore(state)
    if not store.remove(site_name):
        raise AfboxError(f"no site {site_name!r} is trusted here")
    from ..lifecycle.sites import apply
    return list(apply(state.name))


def site_token(name: str | None, site_name: str, subject: str, scope: str, lifetime: float) -> str:
    """A token of ours for the site's audience: scopes cut to what it offered, at most 1 h."""
    me = local(name)
    site = me.store.require(site_name)
    try:
        return mint_for_site(load(me.identity_dir), me.url, subject, site.audience, scope.split(),
                             tokenable(site.offered, site.grants), lifetime=lifetime)
    except ValueError as e:
        raise AfboxError(f"no token for site {site_name}: {e}",
                         hint=f"what it grants is learnt on `afbox site refresh {site_name}` once it trusts this facility") from None


def reverse_command(me: Local, code: str | None) -> str:
    cmd = f"afbox site add {me.url} --fingerprint {me.ca_sha256}"
    return cmd + (f" --invite {code}" if code else "")


def _granted_to_us(me: Local, url: str, doc, ca_pem: str) -> list[str] | None:
    token = mint(load(me.identity_dir), me.url, f"afbox-site-{me.name}", ASK_SCOPE, doc.audiences[0], lifetime=60)
    return descriptor.granted(url, ca_pem, token)


def _cache_slot(store: SiteStore, site: Site, old: Site | None) -> int:
    """Its data is cached here when it offered us paths of it and serves data."""
    if not (site.offered_paths and site.descriptor.xrootd):
        return -1
    return old.cache_index if old and old.cache_index >= 0 else store.free_cache_slot(site.name)


def _apply(me: Local) -> list[ev.Event]:
    from ..lifecycle.sites import apply
    return list(apply(me.name))
