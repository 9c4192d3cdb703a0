"""Trust in other sites as the checkers apply it: grants, 1 h, no any-audience, removal and key
rotation through the trust file; tokens minted for a site; invites; what the XCache is told."""
from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import pytest

from afbox.auth.identity import ensure_identity, rotate_key
from afbox.auth.site_trust import SiteTrust
from afbox.auth.tokens import mint, mint_for_site, narrow
from afbox.auth.validate import ANY_AUDIENCE, LocalJwks, TokenRejected, Validator
from afbox.errors import AfboxError
from afbox.sites import invites, trust
from afbox.sites.model import Descriptor, Site, check_scope, tokenable
from afbox.sites.store import SiteStore
from afbox.state import FacilityState

B, A = "https://site-b:27001", "https://site-a:27001"


@pytest.fixture(scope="module")
def ids(tmp_path_factory):
    return SimpleNamespace(a=ensure_identity(tmp_path_factory.mktemp("a") / "identity"),
                           b=ensure_identity(tmp_path_factory.mktemp("b") / "identity"))


def site(identity, name="site-a", url=A, grants=(), offered=(), cache_index=-1, xrootd=True) -> Site:
    desc = Descriptor(site_id=name, issuer=url, jwks_uri=url + "/jwks.json", audiences=[url], ca_sha256="SHA256:x",
                      xrootd={"root": f"root://{name}:27000"} if xrootd else None)
    return Site(name=name, url=url, ca_sha256="SHA256:x", ca_pem="", descriptor=desc, jwks=identity.jwks(),
                fetched_at=0, added_at=0, grants=list(grants), offered=list(offered), cache_index=cache_index)


def write_trust(tmp_path, *sites) -> SiteTrust:
    ctx = SimpleNamespace(sites=sites, xrootd_user=None, xrootd_dir=tmp_path, public_host="site-b", base=27000)
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(trust.trust_doc(ctx)))
    return SiteTrust(path)


@pytest.fixture
def at_b(ids, tmp_path):
    """Site B's validator, trusting A with compute and /store/public."""
    sites = write_trust(tmp_path, site(ids.a, grants=["compute.create", "storage.read:/store/public"]))
    return Validator({B: LocalJwks(ids.b)}, B, sites=sites)


def test_a_site_token_is_accepted_for_what_was_granted(ids, at_b):
    claims = at_b.validate(mint(ids.a, A, "alice", "compute.create storage.read:/store/public/x", B, 600),
                           "storage.read:/store/public/x/f.root")
    assert claims.site == "site-a" and claims.user == "site-a-alice"
    assert at_b.validate(mint(ids.a, A, "alice", "compute.create", B, 600), "compute.create")
    # its own users keep their names
    assert at_b.validate(mint(ids.b, B, "bob", "compute.create", B, 600), "compute.create").user == "bob"


@pytest.mark.parametrize("scope,aud,lifetime,required,reason", [
    ("compute.create", A, 600, "compute.create", "wrong audience"),
    ("compute.create", [B, ANY_AUDIENCE], 600, "compute.create", "any-audience"),
    ("compute.create", B, 8 * 3600, "compute.create", "longer than 3600s"),
    ("jupyter.access", B, 600, "jupyter.access", "not granted jupyter.access"),
    ("storage.read:/store/private", B, 600, "storage.read:/store/private/f", "not granted"),
    ("storage.read:/", B, 600, "storage.read:/store/public/f", "not granted"),  # wider than the grant
])
def test_a_site_token_is_refused(ids, at_b, scope, aud, lifetime, required, reason):
    with pytest.raises(TokenRejected, match=reason):
        at_b.validate(mint(ids.a, A, "alice", scope, aud, lifetime), required)


def test_the_any_audience_is_refused_for_own_tokens_too(ids, at_b):
    with pytest.raises(TokenRejected, match="any-audience"):
        at_b.validate(mint(ids.b, B, "bob", "compute.create", [B, ANY_AUDIENCE], 600), "compute.create")


def test_nothing_granted_nothing_accepted_and_removal_takes_effect(ids, tmp_path):
    sites = write_trust(tmp_path, site(ids.a))
    v = Validator({}, B, sites=sites)
    token = mint(ids.a, A, "alice", "compute.create", B, 600)
    with pytest.raises(TokenRejected, match="not granted"):
        v.validate(token, "compute.create")
    write_trust(tmp_path, site(ids.a, grants=["compute.create"]))
    assert v.validate(token, "compute.create")
    write_trust(tmp_path)  # afbox site remove
    with pytest.raises(TokenRejected, match="untrusted issuer"):
        v.validate(token, "compute.create")


def test_a_rotated_key_needs_a_refresh(tmp_path):
    a = ensure_identity(tmp_path / "rot" / "identity")
    write_trust(tmp_path, site(a, grants=["compute.create"]))
    v = Validator({}, B, sites=SiteTrust(tmp_path / "trust.json"))
    a = rotate_key(a.dir, keep_for=60)
    token = mint(a, A, "alice", "compute.create", B, 600)
    with pytest.raises(TokenRejected, match="site refresh"):
        v.validate(token, "compute.create")
    write_trust(tmp_path, site(a, grants=["compute.create"]))  # refreshed: the new keys stored
    assert v.validate(token, "compute.create").site == "site-a"


def test_tokens_for_a_site_are_narrowed_and_short(ids):
    offered = ["compute.create", "storage.read:/store/public"]
    assert narrow(["compute.create", "jupyter.access", "storage.read:/"], offered) == offered
    assert narrow(["storage.read:/store/public/x"], offered) == ["storage.read:/store/public/x"]
    token = mint_for_site(ids.a, A, "alice", B, ["compute.create", "storage.read:/"], offered, lifetime=8 * 3600)
    import jwt
    c = jwt.decode(token, options={"verify_signature": False})
    assert c["aud"] == B and c["scope"] == "compute.create storage.read:/store/public" and c["exp"] - c["iat"] == 3600
    with pytest.raises(ValueError, match="offers none"):
        mint_for_site(ids.a, A, "alice", B, ["jupyter.access"], offered)
    # our own data it caches may be read there with our token
    assert tokenable(offered, ["storage.read:/demo", "compute.create"]) == [*offered, "storage.read:/demo"]


def test_scopes_that_can_be_granted():
    assert check_scope("storage.read:/store/public") and check_scope("compute.create")
    for bad in ("storage.read:store", "root", "storage.read:/a/../b", "compute.create extra"):
        with pytest.raises(ValueError):
            check_scope(bad)


def test_invites_expire_and_are_used_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    store = SiteStore(FacilityState("site-b"))
    code = invites.create(store, B, "SHA256:" + "0" * 64, ["compute.create"], 4, 3600)
    inv = invites.decode(code)
    assert (inv.url, inv.grants, inv.max_workers) == (B, ["compute.create"], 4)
    invites.check_fresh(inv)
    with pytest.raises(AfboxError, match="expired"):
        invites.check_fresh(inv, now=time.time() + 7200)
    with pytest.raises(AfboxError, match="damaged"):
        invites.decode(code[:-10])
    assert invites.consume(store, inv, "site-a").grants == ["compute.create"]
    assert invites.consume(store, inv, "site-a")  # the same site again (re-adding it)
    with pytest.raises(AfboxError, match="used already by site-a"):
        invites.consume(store, inv, "site-c")
    assert oct(os.stat(store.invites_file).st_mode & 0o777) == "0o600"
    assert oct(os.stat(store.dir).st_mode & 0o777) == "0o700"


def test_the_xcache_opens_only_granted_paths(ids):
    sections = trust.xcache_sections([site(ids.a, grants=["compute.create", "storage.read:/store/public"]),
                                      site(ids.b, "site-c", "https://site-c:1", grants=["compute.create"])])
    assert "[Issuer site-site-a]" in sections and "restricted_path = /store/public" in sections
    assert "site-c" not in sections  # granted no storage: no section, so its tokens open nothing


def test_a_cache_is_kept_for_sites_that_offer_data(ids):
    offering = site(ids.a, offered=["storage.read:/demo"], cache_index=0)
    assert trust.cached_sites([offering, site(ids.b, "site-c", "https://site-c:1", offered=["compute.create"])]) \
        == [offering]
    assert trust.cache_scope(offering) == "storage.read:/demo"
    assert trust.digest([offering]) != trust.digest([offering.model_copy(update={"grants": ["compute.create"]})])
